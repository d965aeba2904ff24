"""``pacsguard verify PATH``: exit 0 when clean, 1 when anything identifying is found."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pacsguard.core.errors import InputError
from pacsguard.core.io import atomic_write_text
from pacsguard.verify.report import to_html, to_json
from pacsguard.verify.scan import verify

SHOWN = 50  # findings printed on the terminal; the reports hold them all


def verify_command(
    path: Path = typer.Argument(..., help="A DICOM file, a folder or a zip archive to check."),
    mapping: Path | None = typer.Option(
        None,
        "--mapping",
        help="Re-identification CSV (kind,original,pseudonym): originals must not reappear.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    html_out: Path | None = typer.Option(
        None, "--html", help="Write a self-contained HTML report."
    ),
    show_phi: bool = typer.Option(
        False, "--show-phi", help="Show each finding's value (the reports then hold PHI)."
    ),
    no_ocr: bool = typer.Option(
        False, "--no-ocr", help="Do not read the pixels of images at risk."
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Check on a Dask cluster: its scheduler (tcp://HOST:8786), or local[:N] to start "
        "N worker processes here. The files and --mapping must be on storage workers share.",
    ),
) -> None:
    """Prove that nothing identifying is left: every element, private ones included, and the
    pixels of images at risk (OCR). Exit code 1 when anything is found."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if mapping is not None and not mapping.is_file():
        raise InputError(f"mapping {mapping} does not exist")
    report = verify(path, mapping=mapping, ocr=not no_ocr, cluster=cluster)
    mode = 0o600 if show_phi else 0o644
    if json_out is not None:
        atomic_write_text(json_out, to_json(report, show_phi=show_phi), mode)
    if html_out is not None:
        atomic_write_text(html_out, to_html(report, show_phi=show_phi), mode)
    console = Console(highlight=False, soft_wrap=True)
    for finding in report.findings[:SHOWN]:
        console.print(finding.describe(show_phi=show_phi), markup=False)
    if len(report.findings) > SHOWN:
        console.print(f"… and {len(report.findings) - SHOWN} more (see --json or --html)")
    summary = (
        f"{report.files_checked} DICOM file(s) checked, {report.ocr_checked} read by OCR, "
        f"{report.files_skipped} other file(s) skipped: "
    )
    if report.clean:
        console.print(summary + "[bold green]clean[/]")
        return
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts_by_kind().items())
    console.print(summary + f"[bold red]{len(report.findings)} finding(s)[/] ({counts})")
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.command("verify")(verify_command)
