"""CLI commands of pacsguard.sample (registered by pacsguard.cli)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pacsguard.sample.corpus import generate_ct_corpus
from pacsguard.sample.generator import generate


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def sample(
    out: Path = typer.Argument(
        ..., metavar="OUTPUT", help="Output folder (created; a previous sample is replaced)."
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, byte-identical files."),
    patients: int = typer.Option(4, "--patients", min=1, help="Number of synthetic patients."),
    ct_corpus: int | None = typer.Option(
        None,
        "--ct-corpus",
        min=1,
        metavar="FILES",
        help="Instead: write FILES CT slices for benchmarks (OUT/pNNN/..., OUT/corpus.json).",
    ),
    rows: int = typer.Option(512, "--rows", min=8, help="With --ct-corpus: rows per slice."),
    cols: int = typer.Option(512, "--cols", min=8, help="With --ct-corpus: columns per slice."),
) -> None:
    """Generate synthetic DICOM studies full of fake identifiers, their clinical table
    (OUT/clinical/export.csv) and OUT/answer-key.json.

    Fake identifiers sit in standard, nested, private and free-text attributes,
    overlays, an SR, an RT Structure Set and text burned into pixels.
    The answer key lists every planted value and where it is: test truth, never a deid input.
    With --ct-corpus FILES it writes FILES CT slices for benchmarks instead (OUT/corpus.json).
    """
    console = Console(stderr=True)
    with _progress(console) as bar:
        if ct_corpus is not None:
            task = bar.add_task("CT slices", total=ct_corpus)
            generate_ct_corpus(
                out,
                files=ct_corpus,
                rows=rows,
                cols=cols,
                seed=seed,
                patients=patients,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
            typer.echo(f"wrote {ct_corpus} CT slices under {out}")
            return
        task = bar.add_task("patients", total=patients)
        key = generate(
            out,
            seed=seed,
            patients=patients,
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    totals = key.totals
    typer.echo(
        f"wrote {totals.instances} instances ({totals.patients} patients, {totals.studies} "
        f"studies, {totals.series} series) under {out / 'dicom'}"
    )
    typer.echo(
        f"wrote the clinical table of the same patients to {out / 'clinical' / 'export.csv'}"
    )
    typer.echo(f"answer key (test truth, never a deid input): {out / 'answer-key.json'}")


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app."""
    app.command("sample")(sample)
