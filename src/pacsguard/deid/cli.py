"""``pacsguard deid``: de-identify DICOM files, folders and zip archives."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pacsguard.core.keys import ENV_KEY_FILE, load_key
from pacsguard.core.pseudonym import DEFAULT_SHIFT_RANGE
from pacsguard.core.say import live_bar, say
from pacsguard.deid.options import ALL_OPTIONS

if TYPE_CHECKING:
    from pacsguard.deid.pipeline import DeidConfig, DeidReport


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


def _burned_in(no_cleaning: bool, keep: bool, options: list[str]) -> str:
    if keep and not no_cleaning:
        raise typer.BadParameter("--keep-burned-in goes with --no-pixel-cleaning")
    if no_cleaning and "clean-pixel-data" in options:
        raise typer.BadParameter("--no-pixel-cleaning contradicts --option clean-pixel-data")
    if no_cleaning:
        return "keep" if keep else "quarantine"
    return "clean"


def _local_folder(text: str | None, option: str) -> Path | None:
    from pacsguard.core.errors import InputError
    from pacsguard.core.remote import is_url

    if text is not None and is_url(text):
        raise InputError(f"{option} must be a local folder: the journal stays on this machine")
    return None if text is None else Path(text)


def deid_command(
    paths: list[str] = typer.Argument(
        ...,
        metavar="INPUT... OUTPUT",
        help="DICOM files, folders or zips, then the output folder; any of them may be an "
        "fsspec URL (s3://bucket/prefix) with pacsguard[cloud].",
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
    state_dir: str | None = typer.Option(
        None,
        "--state",
        metavar="DIR",
        help="Journal and local manifest folder, local (default OUTPUT.pacsguard; for a URL "
        "OUTPUT, a folder named after it in the current directory).",
    ),
    quarantine: str | None = typer.Option(
        None,
        "--quarantine",
        metavar="DIR|URL",
        help="Quarantine folder or URL (default OUTPUT.pacsguard/quarantine, local).",
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
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Drop elements the DICOM grammar does not allow (recorded), instead of "
        "quarantining their files.",
    ),
    redo: bool = typer.Option(
        False,
        "--redo",
        help="Reprocess every input under the current settings into an existing OUTPUT.",
    ),
    check: bool = typer.Option(
        False, "--check", help="On resume, check every finished output's SHA-256, not its size."
    ),
    no_pixel_cleaning: bool = typer.Option(
        False,
        "--no-pixel-cleaning",
        help="Do not OCR images at risk of burned-in text: quarantine them instead "
        "(unless --keep-burned-in).",
    ),
    keep_burned_in: bool = typer.Option(
        False,
        "--keep-burned-in",
        help="With --no-pixel-cleaning: keep images at risk of burned-in text as they are "
        "(counted in the summary).",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Run on a Dask cluster: its scheduler (tcp://HOST:8786), or local[:N] to start N "
        "worker processes here. Workers read the key from PACSGUARD_KEY_FILE or PACSGUARD_KEY.",
    ),
    cluster_batch: int | None = typer.Option(
        None,
        "--cluster-batch",
        min=1,
        help="Files per cluster task (default: chosen from Dask's measured per-task cost).",
    ),
) -> None:
    """De-identify DICOM per PS3.15 Annex E. Exit code 1 when anything was quarantined."""
    if len(paths) < 2:
        raise typer.BadParameter("give at least one INPUT and the OUTPUT folder")
    from pacsguard.core.remote import path_or_url

    *inputs, output = (path_or_url(text) for text in paths)
    from pacsguard.deid.pipeline import (  # not needed for --help
        DeidConfig,
        RunFigures,
        deidentify,
    )

    config = DeidConfig(
        options=frozenset(option),
        policy=policy,
        strict=strict,
        jobs=jobs,
        state_dir=_local_folder(state_dir, "--state"),
        quarantine_dir=path_or_url(quarantine) if quarantine else None,
        mapping_out=mapping_out,
        patient_map=patient_map,
        verify=verify,
        shift_range=_shift_range(shift_range),
        repair=repair,
        redo=redo,
        check=check,
        burned_in=_burned_in(no_pixel_cleaning, keep_burned_in, option),
        cluster=cluster,
        batch_size=cluster_batch,
        key_file=key or (Path(os.environ[ENV_KEY_FILE]) if os.environ.get(ENV_KEY_FILE) else None),
    )
    project_key = load_key(key)
    started = time.monotonic()
    figures = RunFigures()

    with live_bar("de-identifying") as show:

        def progress(done: int, total: int) -> None:
            elapsed = time.monotonic() - started
            rate = ""
            if done and elapsed > 0:
                rate = (
                    f"{done / elapsed:.0f} files/s, {figures.bytes_done / 1e6 / elapsed:.0f} MB/s"
                )
            if figures.quarantined:
                rate += f", {figures.quarantined} quarantined"
            show(done, total, rate)

        def interrupted(in_flight: int) -> None:
            say(f"stopping: finishing {in_flight} files in flight (Ctrl-C again to abort)")

        report = deidentify(
            list(inputs),
            output,
            key=project_key,
            config=config,
            progress=progress,
            on_interrupt=interrupted,
            notice=say,
            figures=figures,
        )
    _summary(report, time.monotonic() - started, config)
    if report.interrupted:
        say("interrupted: what is recorded is kept; run the same command again to finish the job")
        raise typer.Exit(130)
    if report.quarantine:
        raise typer.Exit(1)


def _summary(report: DeidReport, seconds: float, config: DeidConfig) -> None:
    processed = report.inputs - report.resumed
    rate = f", {processed / seconds:.1f} files/s" if seconds > 0 and processed else ""
    say(
        f"{report.inputs} inputs in {seconds:.1f} s{rate}: {report.output - report.duplicates} "
        f"written to {report.output_dir}, {report.quarantine} quarantined"
        + (f", {report.duplicates} duplicates of another input" if report.duplicates else "")
        + (f", {report.skipped} skipped" if report.skipped else "")
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    say(
        "  each output verified before it was committed (--verify)"
        if config.verify
        else "  outputs not verified: run `pacsguard verify` on the output before sharing it"
    )
    if report.paths:
        ways = ", ".join(f"{n} {way}" for way, n in report.paths.most_common())
        say(f"  paths this run: {ways}")
    if report.pixels_cleaned:
        say(f"  {report.pixels_cleaned} images at risk of burned-in text: pixels cleaned")
    if report.burned_in_kept:
        say(
            f"  {report.burned_in_kept} images at risk of burned-in text kept as they are "
            "(--keep-burned-in): check them before sharing"
        )
    if report.redone:
        say(f"  {report.redone} finished outputs were missing or changed: redone")
    for reason, count in report.reasons.most_common():
        say(f"  quarantined {count}: {reason}")
    for reason, count in report.skip_reasons.most_common():
        say(f"  skipped {count}: {reason}")
    if report.quarantine:
        say(f"quarantine: {report.quarantine_dir}")
    if config.mapping_out is not None:
        say(f"re-identification mapping (keep it private): {config.mapping_out}")
    say(f"local journal and manifest: {report.state_dir}")


def register(app: typer.Typer) -> None:
    app.command("deid")(deid_command)
