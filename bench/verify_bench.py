"""Benchmark: `pacsguard verify` against `pacsguard deid` on the same tree, and its quality.

    .venv/bin/python bench/verify_bench.py --files 1000 --workdir bench/out/verify-work

Speed (issue 14's goal: verify <= 0.5x deid's time on the same tree): a CT corpus of FILES
slices from the sample generator (identifiers in headers, nested and private), with the
patient's identity planted in PLANTED % of the files (descriptions, comments, a code meaning,
a private block: deid_bench.plant_corpus), de-identified by `pacsguard deid IN OUT` (every
core), then `pacsguard verify OUT` (OCR on: CT slices are not at risk, so no pixel is read),
`pacsguard verify OUT --no-ner` and `--jobs 1`; each a subprocess, wall and CPU time, page
cache warm (the corpus is read once before), rounds interleaved. The ratios are verify / deid
of the same round's tree. Then, in this process: verify's CPU time a file (one process, warm)
and how many files were read as bytes (verify/header.py) rather than by pydicom.

Quality, on trees no one tuned verify to: every real DICOM file that installed packages ship
(pydicom, pynetdicom, highdicom when present) plus the sample corpus, de-identified with the
default options and with clean-pixel-data; verify without and with the mapping: identifier
and review findings by kind and attribute. Then identifiers planted after de-identification
(tests/verify_corpus.py: names, IDs, dates, phones, NIR, e-mails in code meanings, private
elements, SR text, wrong VRs, unknown tags): recall per kind with and without the mapping.
And the person-name detector alone: false alarms on every code meaning pydicom knows (as
written, Title Case, UPPER CASE) and recall on name forms from the sample generator's pools.
Results: a table on stdout, OUT/verify.json and OUT/verify.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACSGUARD = ROOT / ".venv" / "bin" / "pacsguard"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


def timed(argv: list[str]) -> tuple[float, int, float]:
    """Wall seconds, exit code and CPU seconds (user + system, workers included) of the
    process tree: on a shared machine the CPU time is the steadier figure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, done.returncode, cpu


def speed(work: Path, files: int, rounds: int, planted: int) -> dict[str, Any]:
    from deid_bench import build_corpus, plant_corpus

    corpus = plant_corpus(build_corpus(work, files, 512, 512), planted)
    key = work / "bench.key"
    if not key.exists():
        subprocess.run([str(PACSGUARD), "key", "new", str(key)], check=True)
    shutil.copytree(corpus, work / "warm", dirs_exist_ok=True)  # read it into the page cache
    shutil.rmtree(work / "warm")
    out = work / "ct-out"
    rows: list[tuple[float, ...]] = []
    doc: dict[str, Any] = {}
    for _ in range(rounds):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work / "ct-out.pacsguard", ignore_errors=True)  # deid's resume journal
        deid_s, rc, deid_cpu = timed(
            [str(PACSGUARD), "deid", str(corpus), str(out), "--key", str(key)]
        )
        assert rc == 0, f"deid exited {rc}"
        written = sum(1 for _ in out.rglob("*.dcm"))
        assert written == files, f"deid wrote {written} of {files}"
        report = work / "ct.json"
        verify_s, vrc, verify_cpu = timed(
            [str(PACSGUARD), "verify", str(out), "--json", str(report)]
        )
        plain_s, _, _ = timed([str(PACSGUARD), "verify", str(out), "--no-ner"])
        one_s, _, _ = timed([str(PACSGUARD), "verify", str(out), "--jobs", "1"])
        rows.append((deid_s, verify_s, plain_s, one_s, deid_cpu, verify_cpu))
        doc = json.loads(report.read_text())
        assert doc["files_checked"] == files and vrc == 0
    deid_s, verify_s, plain_s, one_s, deid_cpu, verify_cpu = (
        statistics.median(c) for c in zip(*rows, strict=True)
    )
    return {
        "files": files,
        "planted": planted,
        "rounds": rounds,
        "deid_s": round(deid_s, 2),
        "verify_s": round(verify_s, 2),
        "verify_no_ner_s": round(plain_s, 2),
        "verify_one_worker_s": round(one_s, 2),
        "ratio": round(verify_s / deid_s, 3),
        "ratio_no_ner": round(plain_s / deid_s, 3),
        "ratio_one_worker": round(one_s / deid_s, 3),
        "deid_cpu_s": round(deid_cpu, 2),
        "verify_cpu_s": round(verify_cpu, 2),
        "ratio_cpu": round(verify_cpu / deid_cpu, 3),
        "cores": len(os.sched_getaffinity(0)),
        "verify_counts": doc["counts_by_class"],
        **in_process(out),
    }


def in_process(out: Path) -> dict[str, Any]:
    """verify's CPU time a file in one warm process (``verify(out, jobs=1)`` twice, the
    second timed: imports and lexicons loaded, each call its own run), and how many files
    the bytes reading took."""
    from dataclasses import fields

    from pacsguard.core.io import iter_inputs
    from pacsguard.verify import scan, verify

    items = list(iter_inputs([out]))
    verify(out, jobs=1)
    start = time.process_time()
    verify(out, jobs=1)
    per_file = (time.process_time() - start) / max(1, len(items)) * 1000
    job = scan.Job(out, None, tuple(scan.deid_options(out)), True, True)
    results = [scan.check_item(item, job) for item in items]
    as_bytes = "raw" in {f.name for f in fields(scan.ItemResult)}
    return {
        "in_process_ms_per_file": round(per_file, 3),
        "read_as_bytes": sum(bool(getattr(r, "raw", False)) for r in results) if as_bytes else 0,
        "dicom_files": sum(r.dicom for r in results),
    }


def by_kind(findings: list[Any]) -> dict[str, int]:
    counts = Counter(f"{f.finding_class}/{f.kind}" for f in findings)
    return dict(sorted(counts.items()))


def by_attribute(findings: list[Any]) -> dict[str, int]:
    counts = Counter(
        f"{f.finding_class}/{f.kind} @ {f.location.split(' > ')[-1].split(') ', 1)[-1]}"
        for f in findings
    )
    return dict(sorted(counts.items()))


def quality(work: Path) -> dict[str, Any]:
    from pacsguard.core.keys import ProjectKey
    from pacsguard.deid import DeidConfig, deidentify
    from pacsguard.sample import generate
    from pacsguard.verify import verify
    from verify_corpus import copy_real_files, plant_tree, recall

    base = work / "quality"
    shutil.rmtree(base, ignore_errors=True)
    inputs = base / "in"
    copy_real_files(inputs / "real")
    generate(base / "sample", seed=7, patients=3)
    shutil.copytree(base / "sample" / "dicom", inputs / "sample")
    key = ProjectKey(bytes(range(32)))
    result: dict[str, Any] = {"inputs": sum(1 for p in inputs.rglob("*") if p.is_file())}
    trees: dict[str, tuple[Path, Path]] = {}
    for name, options in (("default", frozenset()), ("clean-pixel-data", {"clean-pixel-data"})):
        out, mapping = base / f"out-{name}", base / f"map-{name}.csv"
        start = time.perf_counter()
        config = DeidConfig(options=frozenset(options), mapping_out=mapping)
        report = deidentify([inputs], out, key=key, config=config)
        deid_s = time.perf_counter() - start
        trees[name] = (out, mapping)
        start = time.perf_counter()
        bare = verify(out, ocr=name != "default")
        verify_s = time.perf_counter() - start
        mapped = verify(out, ocr=name != "default", mapping=mapping)
        result[name] = {
            "deid_outputs": report.output,
            "deid_quarantined": report.quarantine,
            "deid_s": round(deid_s, 2),
            "verify_s": round(verify_s, 2),
            "ocr_checked": bare.ocr_checked,
            "no_mapping": by_kind(bare.findings),
            "mapping": by_kind(mapped.findings),
            "review_by_attribute": by_attribute(bare.reviews),
            "identifiers": [f"{f.file}: {f.location}: {f.kind}" for f in mapped.identifiers],
        }
    out, mapping = trees["default"]
    plants, extended = plant_tree(out, mapping, base / "planted")
    with_map = verify(base / "planted", ocr=False, mapping=extended)
    without = verify(base / "planted", ocr=False)
    result["planted"] = {
        "plants": len(plants),
        "with_mapping": {k: list(v) for k, v in recall(plants, with_map.findings).items()},
        "without_mapping": {k: list(v) for k, v in recall(plants, without.findings).items()},
    }
    return result


def names() -> dict[str, Any]:
    from pydicom.sr import _concepts_dict

    from pacsguard.core.names import find_person_names
    from verify_corpus import plant_names

    meanings = sorted(
        {
            m
            for scheme in _concepts_dict.concepts.values()
            for c in scheme.values()
            for m, _ in c.values()
        }
    )
    variants = [*meanings, *(t.title() for t in meanings), *(t.upper() for t in meanings)]
    false = [t for t in variants if find_person_names(t)]
    forms = []
    for given, family in plant_names():
        forms += [
            f"{given} {family}",
            f"{family.upper()} {given}",
            f"{family.upper()} {given.upper()}",
        ]
        forms += [f"Examen de {given} {family.upper()}", f"{family.upper()}^{given.upper()}"]
    found = [t for t in forms if find_person_names(t)]
    return {
        "code_meanings": len(variants),
        "false_alarms": len(false),
        "false_alarm_rate": round(len(false) / len(variants), 5),
        "false_alarm_examples": false[:10],
        "name_forms": len(forms),
        "found": len(found),
        "recall": round(len(found) / len(forms), 4),
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# verify benchmark", ""]
    if "speed" in doc:
        s = doc["speed"]
        lines += [
            "## Speed: verify against deid on the same CT tree (wall time, warm cache, "
            f"median of {s['rounds']}, {s['cores']} cores, both CLIs with their default workers; "
            f"identity planted in {s['planted']} % of the files before deid)",
            "",
            "| files | deid s | verify s | --no-ner s | --jobs 1 s | verify/deid | --no-ner/deid "
            "| --jobs 1/deid |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {s['files']} | {s['deid_s']} | {s['verify_s']} | {s['verify_no_ner_s']} "
            f"| {s['verify_one_worker_s']} | {s['ratio']} | {s['ratio_no_ner']} "
            f"| {s['ratio_one_worker']} |",
            "",
            f"CPU seconds (user + system, workers included): deid {s['deid_cpu_s']}, verify "
            f"{s['verify_cpu_s']}: verify/deid {s['ratio_cpu']}.",
            "",
            f"In one warm process: {s['in_process_ms_per_file']} ms of CPU a file; "
            f"{s['read_as_bytes']} of {s['dicom_files']} files read as bytes.",
            "",
        ]
    if "names" in doc:
        n = doc["names"]
        lines += [
            "## Person-name detector alone",
            "",
            f"- false alarms on {n['code_meanings']} code meanings (as written, Title, UPPER): "
            f"{n['false_alarms']} ({n['false_alarm_rate']:.3%})",
            f"- recall on {n['name_forms']} name forms: {n['found']} ({n['recall']:.2%})",
            "",
        ]
    if "quality" in doc:
        q = doc["quality"]
        for name in ("default", "clean-pixel-data"):
            t = q[name]
            lines += [
                f"## Clean tree, {name} ({t['deid_outputs']} outputs, OCR read {t['ocr_checked']})",
                "",
                f"- no mapping: {t['no_mapping']}",
                f"- with mapping: {t['mapping']}",
                f"- identifier findings with mapping: {t['identifiers']}",
                "- review findings by attribute:",
                *[f"  - {k}: {v}" for k, v in t["review_by_attribute"].items()],
                "",
            ]
        p = q["planted"]
        lines += [
            f"## Planted identifiers ({p['plants']})",
            "",
            "| kind | with mapping | without |",
        ]
        lines += ["| --- | ---: | ---: |"]
        for kind, (found, total) in p["with_mapping"].items():
            f2, t2 = p["without_mapping"][kind]
            lines.append(f"| {kind} | {found}/{total} | {f2}/{t2} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="CT slices of the speed corpus")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "verify-work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--rounds", type=int, default=3, help="speed rounds (median reported)")
    parser.add_argument(
        "--planted", type=int, default=100, help="%% of the speed corpus with identity planted"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"names": names()}
    if not args.skip_speed:
        doc["speed"] = speed(args.workdir, args.files, args.rounds, args.planted)
    if not args.skip_quality:
        doc["quality"] = quality(args.workdir)
    (args.out / "verify.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = markdown(doc)
    (args.out / "verify.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
