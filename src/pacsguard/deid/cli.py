"""``pacsguard deid``: de-identify DICOM files, folders and zip archives."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from pacsguard.core.keys import load_key
from pacsguard.core.pseudonym import DEFAULT_SHIFT_RANGE
from pacsguard.deid.options import ALL_OPTIONS

console = Console(stderr=True)


_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-", "\u2010": "-"})


def _shift_range(text: str) -> tuple[int, int]:
    """``MIN:MAX`` or ``MIN..MAX`` in days (a typographic minus is read as ``-``)."""
    plain = text.translate(_DASHES).replace(" ", "")
    parts = plain.split("..") if ".." in plain else plain.split(":")
    hint = "give MIN:MAX in days, e.g. -1460:-365 (MIN..MAX also works)"
    try:
        low, high = (int(part) for part in parts)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: {hint}", param_hint="'--date-shift-range'") from None
    if low >= high:
        raise typer.BadParameter(
            f"{text!r}: MIN must be below MAX (one offset for everyone is undone by one known "
            f"date); {hint}",
            param_hint="'--date-shift-range'",
        )
    if high - low + 1 - (1 if low <= 0 <= high else 0) < 2:
        raise typer.BadParameter(
            f"{text!r} leaves a single non-zero offset; {hint}", param_hint="'--date-shift-range'"
        )
    return low, high


def deid_command(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="INPUT... OUTPUT",
        help="DICOM files, folders or zips, then the output folder.",
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Project key file (or PACSGUARD_KEY_FILE / PACSGUARD_KEY)."
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-o",
        metavar="NAME",
        help=f"Profile option, repeatable: {', '.join(ALL_OPTIONS)}.",
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        help="TOML/YAML policy overriding actions per tag, keyword or private block.",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Keep only the allow-list of attributes that carry no identity."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        metavar="N",
        help="Worker processes (default: every core this process may use).",
    ),
    mapping_out: Path | None = typer.Option(
        None, "--mapping-out", help="Write the original->pseudonym mapping here (mode 0600)."
    ),
    patient_map: Path | None = typer.Option(
        None,
        "--patient-map",
        help="CSV of original_patient_id, pseudonym_patient_id[, pseudonym_patient_name].",
    ),
    state_dir: Path | None = typer.Option(
        None, "--state", help="Journal and local manifest folder (default OUTPUT.pacsguard)."
    ),
    quarantine: Path | None = typer.Option(
        None, "--quarantine", help="Quarantine folder (default OUTPUT.pacsguard/quarantine)."
    ),
    shift_range: str = typer.Option(
        f"{DEFAULT_SHIFT_RANGE[0]}:{DEFAULT_SHIFT_RANGE[1]}",
        "--date-shift-range",
        metavar="MIN:MAX",
        help="Range of the per-patient date offset in days (MIN..MAX also works).",
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Run the verifier on each output before it is committed."
    ),
) -> None:
    """De-identify DICOM per PS3.15 Annex E. Exit code 1 when anything was quarantined."""
    if len(paths) < 2:
        raise typer.BadParameter("give at least one INPUT and the OUTPUT folder")
    *inputs, output = paths
    from pacsguard.deid.pipeline import DeidConfig, deidentify  # not needed for --help

    config = DeidConfig(
        options=frozenset(option),
        policy=policy,
        strict=strict,
        jobs=jobs,
        state_dir=state_dir,
        quarantine_dir=quarantine,
        mapping_out=mapping_out,
        patient_map=patient_map,
        verify=verify,
        shift_range=_shift_range(shift_range),
    )
    project_key = load_key(key)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("de-identifying", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = deidentify(list(inputs), output, key=project_key, config=config, progress=progress)
    console.print(
        f"{report.inputs} inputs: {report.output} written to {report.output_dir}, "
        f"{report.quarantine} quarantined"
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    for reason, count in report.reasons.most_common():
        console.print(f"  quarantined {count}: {reason}")
    if report.quarantine:
        console.print(f"quarantine: {report.quarantine_dir}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("deid")(deid_command)
