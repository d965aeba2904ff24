"""Rich rendering for the CLI: progress while scanning, tables afterwards.

Every cell and line is a ``Text``: what a host answered (a product's version name, an AE
title, a page title in a summary) is shown as it is, never read as Rich markup.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pacsguard.core.progress import Bar
from pacsguard.scan.engine import Progress as ScanProgress
from pacsguard.scan.history import Change, Diff, ScanRow
from pacsguard.scan.model import SEVERITY_RANK, Finding, ScanResult

STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


class RichProgress(ScanProgress):
    """Ports swept and services examined, on the shared progress bar (stderr): the total
    (hosts x ports) is known before the first connection; rate, live ETA."""

    def __init__(self, console: Console) -> None:
        self.bar = Bar(
            "scanning",
            unit="ports",
            console=console,
            stopping="abandoning the sweep; nothing is recorded in the history",
        )
        self._lock = threading.Lock()
        self._services = 0

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.__exit__(kind, exc, tb)

    def start(self, hosts: int, ports_per_host: int) -> None:
        self.bar.update(total=hosts * ports_per_host, description=f"scanning {hosts} hosts")

    def port_checked(self, host: str, port: int) -> None:
        self.bar.advance()

    def service_found(self, host: str, port: int) -> None:
        with self._lock:
            self._services += 1
            count = self._services
        self.bar.update(description=f"{count} open · examining {host}:{port}")


def _count(value: int | None, capped: bool) -> str:
    if value is None:
        return "–"
    return f"≥{value}" if capped else str(value)


def by_severity(findings: Sequence[Finding]) -> list[Finding]:
    """Worst first; then by host and port (the order the sweep reported them in)."""
    order = {id(f): index for index, f in enumerate(findings)}
    return sorted(findings, key=lambda f: (SEVERITY_RANK[f.severity], order[id(f)]))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _where(finding: Finding) -> str:
    return f"{finding.host}:{finding.port}"


def print_result(console: Console, result: ScanResult) -> None:
    """One line per finding, worst first: severity, host:port, service and product, what
    it exposes to whom; under it, the product's own fix. Wraps to the console's width."""
    counts = result.by_severity()
    found = f"{_plural(len(result.findings), 'open service')} on {_plural(result.hosts, 'host')}"
    line = Text.assemble((found, "bold"), "  ")
    line.append(Text(" · ").join(Text(f"{k} {v}", STYLES[k]) for k, v in counts.items() if v))
    console.print(line)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=8)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for finding in by_severity(result.findings):
        what = f"{finding.service} {finding.product or ''}".strip()
        grid.add_row(
            Text(finding.severity.upper(), style=STYLES[finding.severity]),
            Text(_where(finding)),
            Text(f"{what} · {finding.summary}" if finding.summary else what),
        )
        for fix in finding.remediation if finding.severity != "info" else []:
            grid.add_row("", "", Text.assemble(("fix:", "dim"), " ", fix))
    if result.findings:
        console.print(grid)
    if result.scan_id is not None:
        console.print(
            Text(f"recorded as scan {result.scan_id}; compare later with: pacsguard scan diff")
        )


def _changes(console: Console, title: str, changes: Sequence[Change]) -> None:
    if not changes:
        return
    console.print(Text(title, style="bold"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    for change in changes:
        row = change.to_dict()
        before, after = row["severity_before"] or "–", row["severity_after"] or "–"
        grid.add_row(
            Text(f"  {row['host']}:{row['port']}"),
            Text(f"{row['service']} {row['product'] or ''}".strip()),
            Text(f"{before} → {after}"),
        )
    console.print(grid)


def print_diff(console: Console, diff: Diff) -> None:
    base = f"scan {diff.base}" if diff.base is not None else "nothing"
    console.print(Text(f"scan {diff.head} compared with {base} (on the host:ports both swept)"))
    _changes(console, "new", diff.new)
    _changes(console, "fixed", diff.fixed)
    _changes(console, "worse", diff.worse)
    _changes(console, "changed exposure", diff.changed)
    _changes(console, f"not rescanned (state unknown since {base})", diff.not_rescanned)
    _changes(console, "first scanned (not swept before)", diff.first_scanned)
    console.print(
        Text(
            f"new: {len(diff.new)} · fixed: {len(diff.fixed)} · worse: {len(diff.worse)} · "
            f"changed: {len(diff.changed)} · unchanged: {diff.unchanged} · "
            f"not rescanned: {len(diff.not_rescanned)} · first scanned: {len(diff.first_scanned)}"
        )
    )


def print_history(console: Console, scans: Sequence[ScanRow]) -> None:
    table = Table(title="scans")
    for column in ("id", "started", "targets", "hosts", "findings"):
        table.add_column(column)
    for row in scans:
        cells = (row.id, row.started, ", ".join(row.targets), row.hosts, row.findings)
        table.add_row(*(Text(str(cell)) for cell in cells))
    console.print(table)
