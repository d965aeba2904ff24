"""CLI commands of pacsguard.scan (registered by pacsguard.cli).

``pacsguard scan TARGET...`` runs a scan (the default command of the ``scan`` group);
``pacsguard scan diff`` and ``pacsguard scan history`` read the scan history.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from pacsguard.scan.engine import ScanOptions, scan
from pacsguard.scan.errors import TargetError
from pacsguard.scan.history import DEFAULT_DB, History
from pacsguard.scan.model import SEVERITY_RANK
from pacsguard.scan.products import CALLING_AE, COMMON_AE_TITLES
from pacsguard.scan.render import RichProgress, print_diff, print_history, print_result
from pacsguard.scan.reports import write_csv, write_html, write_json, write_sarif
from pacsguard.scan.targets import DEFAULT_PORTS, parse_ports

DEFAULT_PORT_TEXT = ",".join(str(p) for p in DEFAULT_PORTS)
DB_TEXT = "pacsguard/scan.sqlite in XDG_DATA_HOME, else in ~/.local/share"


class ScanGroup(TyperGroup):
    """``scan`` runs ``scan run`` unless the first word names another subcommand."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [self.default_command, *args]
            ctx.meta["pacsguard.scan.default"] = True
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if ctx.meta.get("pacsguard.scan.default") and name == self.default_command:
            return "", command, rest  # usage and errors read "pacsguard scan ...", not "scan run"
        return name, command, rest


class _DefaultContext(TyperCommand.context_class):  # type: ignore[valid-type,misc]
    @property
    def command_path(self) -> str:
        return str(super().command_path).rstrip()


class RunCommand(TyperCommand):
    """The default command: its usage reads ``pacsguard scan [OPTIONS] TARGET...``; its help
    lists the other scan commands as commands, not in a footnote."""

    context_class = _DefaultContext

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(
                [
                    ("pacsguard scan TARGET...", "Scan (the options above)."),
                    ("pacsguard scan diff", "What is new, fixed or worse since the last scan."),
                    ("pacsguard scan history", "List the recorded scans."),
                ]
            )


scan_app = typer.Typer(
    cls=ScanGroup,
    help="Audit PACS exposure: DICOM, DICOM-TLS, DICOMweb and PACS web APIs (see also: scan diff).",
    add_completion=False,
)


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@scan_app.command(
    "run",
    cls=RunCommand,
)
def run_command(
    targets: list[str] = typer.Argument(
        None,
        metavar="TARGET...",
        help="Hosts and CIDR ranges (e.g. 10.1.2.0/24).",
        show_default=False,
    ),
    ports: str = typer.Option(
        DEFAULT_PORT_TEXT,
        "--ports",
        metavar="PORTS",
        help="Comma-separated ports and ranges (e.g. 104,4242,8000-8010).",
        show_default=", ".join(str(p) for p in DEFAULT_PORTS),
    ),
    scope: Path | None = typer.Option(
        None, "--scope", help="File of targets, one per line (# comments)."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Hosts or CIDR ranges to skip (repeat or comma-separate)."
    ),
    check_default_credentials: bool = typer.Option(
        False,
        "--check-default-credentials",
        help="Also try published default accounts (e.g. orthanc:orthanc).",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write findings as JSON."),
    html_out: Path | None = typer.Option(
        None, "--html", help="Write a self-contained HTML report."
    ),
    sarif_out: Path | None = typer.Option(None, "--sarif", help="Write SARIF 2.1.0."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write one CSV row per finding."),
    db: Path = typer.Option(
        DEFAULT_DB, "--db", help="Scan history database (SQLite).", show_default=DB_TEXT
    ),
    no_history: bool = typer.Option(
        False, "--no-history", help="Do not record this scan in the history."
    ),
    calling_ae: str = typer.Option(CALLING_AE, "--calling-ae", help="Our calling AE title."),
    ae_titles: str = typer.Option(
        ",".join(COMMON_AE_TITLES),
        "--ae-titles",
        metavar="TITLES",
        help="Comma-separated called AE titles to try after ANY-SCP.",
        show_default=", ".join(COMMON_AE_TITLES),
    ),
    timeout: float = typer.Option(
        5.0,
        "--timeout",
        min=0.1,
        help="Seconds to wait for a connection or an answer (a whole query or request: 10 times).",
    ),
    rate: float = typer.Option(
        200.0, "--rate", min=0.1, help="New connections per second, whole scan."
    ),
    host_rate: float = typer.Option(
        50.0, "--host-rate", min=0.1, help="New connections per second, per host."
    ),
    max_hosts: int = typer.Option(32, "--max-hosts", min=1, help="Hosts scanned at the same time."),
    cap: int = typer.Option(
        10_000, "--cap", min=1, help="Most records counted per query; above it reads 'at least'."
    ),
    fail_on: str | None = typer.Option(
        None,
        "--fail-on",
        metavar="SEVERITY",
        help=f"Exit 1 if a finding is at least this severe ({', '.join(SEVERITY_RANK)}).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Scan hosts for exposed DICOM, DICOM-TLS, DICOMweb and PACS web services."""
    if not targets and scope is None:
        raise TargetError("give at least one target (host or CIDR range) or --scope FILE")
    if fail_on is not None and fail_on not in SEVERITY_RANK:
        raise TargetError(f"--fail-on takes one of {', '.join(SEVERITY_RANK)}")
    options = ScanOptions(
        ports=parse_ports(ports),
        scope=scope,
        exclude=_split(exclude),
        check_default_credentials=check_default_credentials,
        calling_ae=calling_ae,
        ae_titles=_split([ae_titles]),
        timeout=timeout,
        rate=rate,
        host_rate=host_rate,
        max_hosts=max_hosts,
        cap=cap,
        db=None if no_history else db,
    )
    console = Console(stderr=True)
    progress = RichProgress(console)
    if quiet:
        result = scan(targets or [], options)
    else:
        with progress:
            result = scan(targets or [], options, progress=progress)
    written = []
    for path, writer in (
        (json_out, write_json),
        (html_out, write_html),
        (sarif_out, write_sarif),
        (csv_out, write_csv),
    ):
        if path is not None:
            writer(result, path)
            written.append(str(path))
    if not quiet:
        print_result(Console(), result)
        reports = [f"reports: {', '.join(written)}"] if written else []
        console.print(f"swept {progress.bar.end_line(reports)}", highlight=False, soft_wrap=True)
    if fail_on is not None:
        failing = [
            f for f in result.findings if SEVERITY_RANK[f.severity] <= SEVERITY_RANK[fail_on]
        ]
        if failing:
            console.print(
                f"exit 1: {len(failing)} finding(s) at {fail_on} or worse (--fail-on {fail_on})",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)


@scan_app.command("diff")
def diff_command(
    db: Path = typer.Option(
        DEFAULT_DB, "--db", help="Scan history database (SQLite).", show_default=DB_TEXT
    ),
    base: int | None = typer.Option(
        None, "--base", help="Scan id to compare from (default: the previous one)."
    ),
    head: int | None = typer.Option(
        None, "--head", help="Scan id to compare (default: the latest)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the differences as JSON."),
) -> None:
    """What is new, fixed or worse since the previous scan of the same targets."""
    if not db.exists():
        raise TargetError(f"no scan history at {db}; run pacsguard scan first")
    with History(db) as history:
        result = history.diff(base, head)
    if json_out is not None:
        from pacsguard.core.io import atomic_write_text

        atomic_write_text(json_out, json.dumps(result.to_dict(), indent=2) + "\n")
    print_diff(Console(), result)


@scan_app.command("history")
def history_command(
    db: Path = typer.Option(
        DEFAULT_DB, "--db", help="Scan history database (SQLite).", show_default=DB_TEXT
    ),
) -> None:
    """List the recorded scans."""
    if not db.exists():
        raise TargetError(f"no scan history at {db}; run pacsguard scan first")
    with History(db) as history:
        print_history(Console(), history.scans())


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.add_typer(scan_app, name="scan")
