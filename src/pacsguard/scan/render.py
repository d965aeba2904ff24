"""Rich rendering for the CLI: progress while scanning, tables afterwards."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pacsguard.scan.engine import Progress as ScanProgress
from pacsguard.scan.history import Change, Diff, ScanRow
from pacsguard.scan.model import Finding, ScanResult

STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


class RichProgress(ScanProgress):
    """Ports swept and services examined, as a Rich progress bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("scan", total=None, status="")
        self._lock = threading.Lock()
        self._services = 0

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start(self, hosts: int, ports_per_host: int) -> None:
        self._progress.update(self._task, total=hosts * ports_per_host, status=f"{hosts} hosts")

    def port_checked(self, host: str, port: int) -> None:
        self._progress.advance(self._task)

    def service_found(self, host: str, port: int) -> None:
        with self._lock:
            self._services += 1
            count = self._services
        self._progress.update(self._task, status=f"{count} open · examining {host}:{port}")


def _count(value: int | None, capped: bool) -> str:
    if value is None:
        return "–"
    return f"≥{value}" if capped else str(value)


def print_result(console: Console, result: ScanResult) -> None:
    table = Table(
        title=f"{len(result.findings)} open services on {result.hosts} hosts", show_lines=False
    )
    for column in (
        "host",
        "port",
        "service",
        "product",
        "severity",
        "access",
        "AE",
        "patients",
        "studies",
        "instances",
    ):
        table.add_column(
            column,
            justify="right" if column in ("port", "patients", "studies", "instances") else "left",
        )
    for finding in result.findings:
        table.add_row(*_cells(finding))
    console.print(table)
    counts = result.by_severity()
    console.print(" · ".join(f"[{STYLES[k]}]{k}[/]: {v}" for k, v in counts.items()))
    if result.scan_id is not None:
        console.print(f"recorded as scan {result.scan_id}; compare later with: pacsguard scan diff")


def _cells(finding: Finding) -> list[str]:
    e = finding.exposed
    return [
        finding.host,
        str(finding.port),
        finding.service,
        finding.product or "",
        f"[{STYLES[finding.severity]}]{finding.severity}[/]",
        finding.access,
        ",".join(finding.ae_titles),
        _count(e.patients, e.capped),
        _count(e.studies, e.capped),
        _count(e.instances, e.capped),
    ]


def _changes(console: Console, title: str, changes: Sequence[Change]) -> None:
    if not changes:
        return
    table = Table(title=title)
    for column in ("host", "port", "service", "product", "before", "after"):
        table.add_column(column)
    for change in changes:
        row = change.to_dict()
        table.add_row(
            str(row["host"]),
            str(row["port"]),
            str(row["service"]),
            str(row["product"] or ""),
            str(row["severity_before"] or "–"),
            str(row["severity_after"] or "–"),
        )
    console.print(table)


def print_diff(console: Console, diff: Diff) -> None:
    base = f"scan {diff.base}" if diff.base is not None else "nothing"
    console.print(f"scan {diff.head} compared with {base}")
    _changes(console, "new", diff.new)
    _changes(console, "fixed", diff.fixed)
    _changes(console, "worse", diff.worse)
    _changes(console, "changed exposure", diff.changed)
    console.print(
        f"new: {len(diff.new)} · fixed: {len(diff.fixed)} · worse: {len(diff.worse)} · "
        f"changed: {len(diff.changed)} · unchanged: {diff.unchanged}"
    )


def print_history(console: Console, scans: Sequence[ScanRow]) -> None:
    table = Table(title="scans")
    for column in ("id", "started", "targets", "hosts", "findings"):
        table.add_column(column)
    for row in scans:
        table.add_row(
            str(row.id), row.started, ", ".join(row.targets), str(row.hosts), str(row.findings)
        )
    console.print(table)
