"""``pacsguard verify PATH``: exit 1 on an identifier finding (on any finding with ``--strict``)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from pacsguard.core.errors import InputError
from pacsguard.core.io import atomic_write_text
from pacsguard.core.remote import path_or_url
from pacsguard.core.say import live_bar, say
from pacsguard.verify.report import to_html, to_json
from pacsguard.verify.scan import verify

SHOWN = 50  # findings printed on the terminal; the reports hold them all


def verify_command(
    target: str = typer.Argument(
        ...,
        metavar="PATH",
        help="A DICOM file, a folder or a zip archive to check, or an fsspec URL "
        "(s3://bucket/prefix) with pacsguard[cloud].",
    ),
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
    strict: bool = typer.Option(
        False, "--strict", help="Review findings (free text not proven safe) fail the run too."
    ),
    no_ner: bool = typer.Option(
        False, "--no-ner", help="Do not load spaCy's model for the names left in doubt."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Worker processes (default: the cores this process may use).",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        metavar="ADDRESS",
        help="Check the files on a Dask cluster: tcp://HOST:8786, or local[:N] to start one.",
    ),
) -> None:
    """Prove that nothing identifying is left: every element, private ones included, and the
    pixels of images at risk (OCR). Exit code 1 on an identifier finding (and, with
    --strict, on a review finding); review findings are listed with their reason."""
    path = path_or_url(target)
    if isinstance(path, Path) and not path.exists():
        raise InputError(f"{path} does not exist")
    if mapping is not None and not mapping.is_file():
        raise InputError(f"mapping {mapping} does not exist")
    started = time.monotonic()
    with live_bar("verify") as show:

        def advance(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            show(done, total, f"{done / elapsed:.1f} files/s" if elapsed > 0 else "")

        report = verify(
            path,
            mapping=mapping,
            ocr=not no_ocr,
            strict=strict,
            ner=not no_ner,
            progress=advance,
            jobs=jobs,
            cluster=cluster,
        )
    mode = 0o600 if show_phi else 0o644
    if json_out is not None:
        atomic_write_text(json_out, to_json(report, show_phi=show_phi), mode)
    if html_out is not None:
        atomic_write_text(html_out, to_html(report, show_phi=show_phi), mode)
    for finding in report.findings[:SHOWN]:
        say(finding.describe(show_phi=show_phi), out=True)
    if len(report.findings) > SHOWN:
        say(f"… and {len(report.findings) - SHOWN} more (see --json or --html)", out=True)
    summary = (
        f"{report.files_checked} DICOM file(s) checked, {report.ocr_checked} read by OCR, "
        f"{report.files_skipped} other file(s) read as text or reviewed: "
    )
    if report.files_checked == 0 and not report.findings:
        # Nothing was read: saying "clean" would vouch for files never checked.
        raise InputError(f"no DICOM file found in {path}: nothing was verified")
    if not report.findings:
        say(summary, ("clean", "bold green"), out=True)
        return
    by_class = report.counts_by_class()
    parts = []
    for klass, counts in by_class.items():
        if counts:
            kinds = ", ".join(f"{kind} {n}" for kind, n in counts.items())
            parts.append(f"{sum(counts.values())} {klass} ({kinds})")
    verdict = ("fails", "bold red") if not report.clean else ("passes", "bold green")
    say(summary + "; ".join(parts) + " — ", verdict, " (strict)" if strict else "", out=True)
    if not report.clean:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.command("verify")(verify_command)
