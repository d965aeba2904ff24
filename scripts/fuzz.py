"""The project's own campaign against ``pacsguard deid``: N mutants, counted escapes.

    python scripts/fuzz.py -n 10000 --repro fuzz-repro      (or: make fuzz N=10000)

Mutants are made from the sample generator's files and from pydicom's test files
(``pacsguard.sample.mutate``), a chunk at a time, each with a unique SOP Instance UID.
Each chunk, with the unmutated files as controls, goes through ``pacsguard deid`` as one
run (N workers), then as a few runs of shuffled subsets (1 worker, so that one process
sees every file in turn: state carried from file to file shows). Every byte under
OUTPUT is searched (case-insensitive, UTF-8 and Latin-1, accent-folded) for every
planted value of every file; an output holding one is an escape of the input the run's
manifest names for it. Crashes (tracebacks, hangs, exit codes other than 0 and 1) are
bisected down to the inputs that cause them.

Only counts and strategy names are printed. The planted values are synthetic (sample
generator, pydicom's test data), still they are written only into the repro folder:
one minimised mutant and its planted values per escape class.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pacsguard.sample import generate
from pacsguard.sample.mutate import (
    NotApplicable,
    Strategy,
    needle_forms,
    patient_values,
    pydicom_test_files,
    strategies,
    try_walk,
    uniquify,
    walk,
)

KEY_HEX = "5a" * 32  # a throwaway campaign key
UNREADABLE_REASON = re.compile(r"\(\w+Error\)$")
MIN_VALUE = 5  # shorter values would match by chance in pixel bytes
GENERIC = {"anonymized", "anonymous", "anonymised", "unknown", "patient", "lastname"}
MAX_SEED_BYTES = 400_000
CONTROL_UIDS = 9**11  # uniquify numbers of the controls, above every mutant's


@dataclass(frozen=True)
class Seed:
    """One unmutated file and the identity values planted in it (its owner's)."""

    name: str  # a label for reports: sample path or pydicom file name (no values)
    data: bytes
    owner: str  # whose identity: the same for every file of one patient
    values: tuple[str, ...]


@dataclass
class Mutant:
    number: int
    seed: str
    owner: str
    strategy: str
    variant: str
    detail: str
    path: Path
    control: bool = False
    status: str = "unaccounted"  # output | quarantine | unaccounted | crash
    reason: str | None = None
    escapes: set[str] = field(default_factory=set)  # run kinds where its own values got out
    cross: set[str] = field(default_factory=set)  # run kinds where another file's got out
    records: int = 0  # times the full run's manifest lists it


@dataclass
class RunResult:
    kind: str
    out: Path
    rc: int
    crashed: bool
    outcomes: dict[str, dict[str, object]]  # input path -> outcome


# -- seeds ---------------------------------------------------------------------------------


def sample_seeds(root: Path, patients: int) -> list[Seed]:
    answer = generate(root, seed=11, patients=patients)
    by_id = {p.patient_id: p for p in answer.patients}
    seeds = []
    for entry in answer.files:
        who = by_id[entry.patient_id]
        seeds.append(
            Seed(
                entry.path,
                (root / entry.path).read_bytes(),
                f"sample:{who.patient_id}",
                _usable(set(patient_values(who))),
            )
        )
    return seeds


def pydicom_seeds(per_identity: int = 3) -> list[Seed]:
    import pydicom

    seeds: list[Seed] = []
    taken: Counter[str] = Counter()
    for file in pydicom_test_files():
        if not file.is_file() or file.stat().st_size > MAX_SEED_BYTES:
            continue
        data = file.read_bytes()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(file, stop_before_pixels=True)
            name, pid = str(ds.get("PatientName", "") or ""), str(ds.get("PatientID", "") or "")
            if not str(ds.get("SOPInstanceUID", "")).strip():
                continue
        except Exception:  # noqa: S112 - pydicom's test data holds broken files on purpose
            continue
        family = name.split("^")[0]
        values = _usable({name, name.rstrip("^"), family, pid})
        owner = "pydicom:" + hashlib.sha256("\0".join(values).encode()).hexdigest()[:12]
        if not values or taken[owner] >= per_identity:
            continue
        taken[owner] += 1
        seeds.append(Seed(f"pydicom/{file.name}", data, owner, values))
    return seeds


def _usable(values: set[str]) -> tuple[str, ...]:
    kept = {v.strip() for v in values if v and len(v.strip()) >= MIN_VALUE}
    return tuple(
        sorted(
            v
            for v in kept
            if v.lower() not in GENERIC and any(c.isalpha() or c.isdigit() for c in v)
        )
    )


def drop_chance_values(seeds: list[Seed]) -> list[Seed]:
    """Values that some file's pixel bytes hold by chance (a short number in an RGB image)
    cannot tell an escape from an image: they are not searched for."""
    blobs = []
    for seed in seeds:
        layout = try_walk(seed.data)
        pixel = layout.pixel() if layout is not None else None
        if pixel is not None:
            blobs.append(seed.data[pixel.value_start : pixel.end].lower())
    chance = {
        v
        for seed in seeds
        for v in seed.values
        if any(f in blob for f in needle_forms(v) for blob in blobs)
    }
    kept = [
        Seed(s.name, s.data, s.owner, tuple(v for v in s.values if v not in chance)) for s in seeds
    ]
    return [s for s in kept if s.values]


# -- runs ----------------------------------------------------------------------------------


def deid(
    inputs: list[Path],
    out: Path,
    kind: str,
    jobs: int,
    timeout: float,
    extra: list[str] | None = None,
) -> RunResult:
    """One ``pacsguard deid`` run in its own process group; a hang is killed."""
    state = out.with_name(out.name + ".state")
    command = [
        sys.executable,
        "-m",
        "pacsguard",
        "deid",
        *map(str, inputs),
        str(out),
        "--state",
        str(state),
        "-j",
        str(jobs),
        *(extra or []),
    ]
    env = {**os.environ, "PACSGUARD_KEY": KEY_HEX}
    env.pop("PACSGUARD_KEY_FILE", None)
    crashed = False
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    ) as process:
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate()
            crashed = True
    rc = process.returncode
    crashed = crashed or rc not in (0, 1) or b"Traceback" in err
    return RunResult(kind, out, rc, crashed, _outcomes(state))


def _outcomes(state: Path) -> dict[str, dict[str, object]]:
    """input -> its outcome, from the local manifest (a list, or {"outcomes": [...]}), or
    from the journal itself when the run died before writing the manifest."""
    records: list[dict[str, object]] = []
    manifest = state / "manifest.json"
    if manifest.exists():
        with contextlib.suppress(ValueError):
            raw = json.loads(manifest.read_text(encoding="utf-8"))
            records = list(raw if isinstance(raw, list) else raw.get("outcomes", []))
    else:
        records = _journal_records(state)
    found: dict[str, dict[str, object]] = {}
    for record in records:
        key = str(record.get("input"))
        if key in found:
            found[key]["_count"] = int(str(found[key].get("_count", 1))) + 1
        else:
            found[key] = dict(record)
    return found


def _journal_records(state: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for path in sorted(state.glob("journal*")):
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        elif path.suffix in (".sqlite", ".db", ".sqlite3"):
            with contextlib.suppress(sqlite3.Error), sqlite3.connect(path) as db:
                rows = db.execute("SELECT input, status, output, reason FROM outcomes")
                records += [
                    dict(zip(("input", "status", "output", "reason"), r, strict=True)) for r in rows
                ]
    return records


def run_isolating(
    inputs: list[Path], out: Path, kind: str, jobs: int, timeout: float, crashers: list[Path]
) -> list[RunResult]:
    """A run; when it crashes, the inputs it left unaccounted are bisected down to those
    that crash alone (appended to ``crashers``), the others get their outcome from the
    sub-runs."""
    result = deid(inputs, out, kind, jobs, timeout)
    if not result.crashed:
        return [result]
    left = [p for p in inputs if str(p) not in result.outcomes]
    results = [result]
    if not left:
        return results  # it crashed after accounting for every input: counted per run
    if len(left) == 1:
        crashers.extend(left)
        return results
    half = len(left) // 2
    for index, part in enumerate((left[:half], left[half:])):
        sub = out.with_name(f"{out.name}-b{index}")
        results += run_isolating(part, sub, kind, 1, max(60.0, timeout / 2), crashers)
    return results


# -- search --------------------------------------------------------------------------------


class Needles:
    """Every planted value of every file, in every byte form, as one regex."""

    def __init__(self, seeds: list[Seed]) -> None:
        self.values: dict[bytes, str] = {}
        for seed in seeds:
            for value in seed.values:
                for form in needle_forms(value):
                    self.values[form] = value
        forms = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(f) for f in forms))

    def search(self, data: bytes) -> set[str]:
        """The planted values found in ``data``."""
        return {self.values[m.group(0)] for m in self.pattern.finditer(data.lower())}


def scan(
    result: RunResult,
    needles: Needles,
    by_path: dict[str, Mutant],
    values: dict[str, tuple[str, ...]],
) -> int:
    """Attribute what each output holds to the inputs the manifest names for it; returns
    the number of escaping files that no input claims (orphans)."""
    claims: dict[str, list[Mutant]] = defaultdict(list)
    for key, outcome in result.outcomes.items():
        mutant = by_path.get(key)
        if mutant is None:
            continue
        if result.kind == "full" or mutant.status in ("unaccounted", "crash"):
            mutant.status = str(outcome.get("status"))
            mutant.reason = outcome.get("reason")  # type: ignore[assignment]
            mutant.records += int(str(outcome.get("_count", 1)))
        if outcome.get("output"):
            claims[str(outcome["output"])].append(mutant)
    orphans = 0
    if not result.out.exists():
        return 0
    for path in sorted(result.out.rglob("*")):
        if not path.is_file():
            continue
        found = needles.search(path.read_bytes())
        if not found:
            continue
        relative = str(path.relative_to(result.out))
        owners = claims.get(relative, [])
        if not owners:
            orphans += 1
            continue
        for mutant in owners:
            own = set(values[mutant.owner])
            if found & own:
                mutant.escapes.add(result.kind)
            if found - own:
                mutant.cross.add(result.kind)
    return orphans


# -- the campaign --------------------------------------------------------------------------


def make_mutants(
    seeds: list[Seed], count: int, start: int, rng: random.Random, folder: Path, only: set[str]
) -> list[Mutant]:
    folder.mkdir(parents=True, exist_ok=True)
    per_seed = {
        s.name: [x for x in strategies(s.values) if not only or x.name in only] for s in seeds
    }
    names = sorted({x.name for xs in per_seed.values() for x in xs})
    mutants = []
    for number in range(start, start + count):
        wanted = names[number % len(names)]
        for _ in range(50):
            seed = rng.choice(seeds)
            chosen: list[Strategy] = [x for x in per_seed[seed.name] if x.name == wanted]
            try:
                mutation = chosen[0].mutate(uniquify(seed.data, number + 1), rng)
            except (NotApplicable, IndexError):
                continue
            break
        else:
            continue
        path = folder / f"m{number:06d}.dcm"
        path.write_bytes(mutation.data)
        mutants.append(
            Mutant(number, seed.name, seed.owner, wanted, mutation.variant, mutation.detail, path)
        )
    return mutants


def controls(seeds: list[Seed], folder: Path) -> list[Mutant]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index, seed in enumerate(seeds):
        path = folder / f"c{index:04d}.dcm"
        # pydicom ships one SOP Instance UID in several files (MR_small*): made unique, as
        # the mutants are, so that the controls are not quarantined as duplicates
        path.write_bytes(uniquify(seed.data, CONTROL_UIDS + index))
        out.append(
            Mutant(
                -1 - index, seed.name, seed.owner, "none", "none", "unmutated", path, control=True
            )
        )
    return out


def campaign(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="pacsguard-fuzz-", dir=args.work))
    try:
        return _campaign(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _campaign(args: argparse.Namespace, work: Path) -> dict[str, object]:
    started = time.monotonic()
    rng = random.Random(args.seed)
    seeds = sample_seeds(work / "sample", args.patients)
    if args.pydicom:
        seeds += pydicom_seeds()
    seeds = drop_chance_values(seeds)
    needles = Needles(seeds)
    values = {s.owner: s.values for s in seeds}
    crashers: list[Path] = []
    # Baseline: the unmutated files alone. A file whose own values get out unmutated is
    # reported as strategy "none" and not mutated (its escapes would hide the others').
    base = controls(seeds, work / "baseline" / "in")
    by_path = {str(m.path): m for m in base}
    for result in run_isolating(
        [m.path for m in base], work / "baseline" / "out", "full", args.jobs, args.timeout, crashers
    ):
        scan(result, needles, by_path, values)
    leaky = {m.seed for m in base if m.escapes}
    mutable = [s for s in seeds if s.name not in leaky]
    everything: list[Mutant] = list(base)
    orphans = 0
    runs: Counter[str] = Counter()
    only = set(args.strategy or [])
    for chunk_start in range(0, args.count, args.chunk):
        size = min(args.chunk, args.count - chunk_start)
        chunk = work / f"chunk{chunk_start // args.chunk:04d}"
        mutants = make_mutants(mutable, size, chunk_start, rng, chunk / "in", only)
        ctl = controls(mutable, chunk / "controls")
        by_path = {str(m.path): m for m in mutants + ctl}
        everyone = sorted(m.path for m in mutants + ctl)
        results = run_isolating(everyone, chunk / "out", "full", args.jobs, args.timeout, crashers)
        for index in range(args.subsets):
            subset = rng.sample(mutants, len(mutants) // max(1, args.subsets)) + ctl
            rng.shuffle(subset)
            results += run_isolating(
                [m.path for m in subset],
                chunk / f"sub{index}",
                "shuffled",
                1,
                args.timeout,
                crashers,
            )
        for result in results:
            runs[result.kind + (":crashed" if result.crashed else "")] += 1
            orphans += scan(result, needles, by_path, values)
        for path in crashers:
            if str(path) in by_path:
                by_path[str(path)].status = "crash"
        keep_repros(mutants + ctl, args.repro, seeds, args.minimise)
        everything += mutants + ctl
        done = chunk_start + size
        print(
            f"  {done}/{args.count} mutants, {sum(bool(m.escapes) for m in everything)} "
            f"escapes so far ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(chunk, ignore_errors=True)
    return summarise(everything, orphans, runs, time.monotonic() - started, args, leaky)


def _unreadable(reason: object) -> bool:
    text = str(reason or "").strip()
    return not text or bool(UNREADABLE_REASON.search(text))


def summarise(
    mutants: list[Mutant],
    orphans: int,
    runs: Counter[str],
    seconds: float,
    args: argparse.Namespace,
    leaky: set[str],
) -> dict[str, object]:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    classes: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for m in mutants:
        row = rows["control" if m.control else m.strategy]
        row["mutants"] += 1
        escaped = bool(m.escapes or m.cross)
        row["escapes"] += escaped
        row["cross-file"] += bool(m.cross)
        row["only-shuffled"] += escaped and "full" not in (m.escapes | m.cross)
        row["quarantined"] += m.status == "quarantine"
        row["written"] += m.status in ("output", "duplicate")
        row["crashes"] += m.status == "crash"
        row["unaccounted"] += m.status == "unaccounted"
        row["recorded-twice"] += m.records > 1
        row["bad-reason"] += m.status == "quarantine" and _unreadable(m.reason)
        if m.status == "quarantine":
            reasons[m.strategy][_reason_kind(m.reason)] += 1
        if escaped:
            key = ("control" if m.control else m.variant) + (" [cross-file]" if m.cross else "")
            classes[key]["escapes"] += 1
    total: Counter[str] = Counter()
    for row in rows.values():
        total.update(row)
    return {
        "commit": _commit(),
        "mutants": args.count,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "runs": dict(runs),
        "orphan-outputs-with-values": orphans,
        "baseline-leaky-seeds": len(leaky),
        "strategies": {k: dict(v) for k, v in sorted(rows.items())},
        "total": dict(total),
        "escape-classes": {k: v["escapes"] for k, v in sorted(classes.items())},
        "quarantine-reasons": {k: dict(v.most_common(12)) for k, v in sorted(reasons.items())},
    }


def _reason_kind(reason: object) -> str:
    """A quarantine reason with its numbers and quoted parts masked, to group them (the
    reasons are PHI-free by design; masking keeps it so if one is not)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(reason or ""))
    return re.sub(r"\d+", "N", text)[:160]


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- repros --------------------------------------------------------------------------------


def keep_repros(mutants: list[Mutant], repro: Path | None, seeds: list[Seed], budget: int) -> None:
    """The first escape of each class: the mutant (minimised when it escapes alone) and
    its planted values, in ``repro/<class>/``."""
    if repro is None:
        return
    values = {s.owner: s.values for s in seeds}
    for m in mutants:
        if not (m.escapes or m.cross):
            continue
        name = re.sub(r"[^A-Za-z0-9._-]", "_", ("control-" + m.seed if m.control else m.variant))
        folder = repro / (name + ("-cross" if m.cross else ""))
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        data = m.path.read_bytes()
        alone, small = minimise(data, m.owner, values[m.owner], folder, budget)
        (folder / "mutant.dcm").write_bytes(small if alone else data)
        if alone and small != data:
            (folder / "unminimised.dcm").write_bytes(data)
        info = {
            "strategy": m.strategy,
            "variant": m.variant,
            "detail": m.detail,
            "seed": m.seed,
            "planted_values": list(values[m.owner]),
            "status": m.status,
            "reason": m.reason,
            "escaped_in": sorted(m.escapes),
            "cross_file_in": sorted(m.cross),
            "escapes_alone": alone,
            "minimised": alone and small != data,
        }
        if not alone:
            info["note"] = "escapes only among other files: cross-file state; rerun its chunk"
        (folder / "planted.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
        os.chmod(folder / "planted.json", 0o600)  # noqa: PTH101


def _escapes_alone(data: bytes, values: tuple[str, ...], folder: Path) -> bool:
    trial = folder / "trial"
    shutil.rmtree(trial, ignore_errors=True)
    (trial / "in").mkdir(parents=True)
    (trial / "in" / "x.dcm").write_bytes(data)
    deid([trial / "in"], trial / "out", "alone", 1, 120)
    found = False
    if (trial / "out").exists():
        forms = {f for v in values for f in needle_forms(v)}
        for path in (trial / "out").rglob("*"):
            if path.is_file() and any(f in path.read_bytes().lower() for f in forms):
                found = True
    shutil.rmtree(trial, ignore_errors=True)
    return found


def minimise(
    data: bytes, owner: str, values: tuple[str, ...], folder: Path, budget: int = 24
) -> tuple[bool, bytes]:
    """Whether it escapes alone, and a smaller mutant that still does: top-level elements
    removed greedily, a block at a time, within ``budget`` runs."""
    if not _escapes_alone(data, values, folder):
        return False, data
    layout = try_walk(data)
    if layout is None or layout.deflated:
        return True, data
    keep = {0x00080016, 0x00080018, 0x00020010, 0x00080005, 0x7FE00010}  # pixels: class 9
    tries = 0
    block = 16
    while block >= 1 and tries < budget:
        layout = walk(data)
        removable = [
            e
            for i in layout.top()
            if (e := layout.elements[i]).start >= layout.dataset_start and e.tag not in keep
        ]
        progressed = False
        for first in range(0, len(removable), block):
            if tries >= budget:
                break
            group = removable[first : first + block]
            start, end = group[0].start, group[-1].end
            if any(e.start < start or e.end > end for e in group):
                continue
            candidate = data[:start] + data[end:]
            tries += 1
            if try_walk(candidate) is not None and _escapes_alone(candidate, values, folder):
                data, progressed = candidate, True
                break
        if not progressed:
            block //= 2
    return True, data


# -- output --------------------------------------------------------------------------------

COLUMNS = (
    "mutants",
    "escapes",
    "cross-file",
    "quarantined",
    "written",
    "crashes",
    "unaccounted",
    "bad-reason",
)


def table(summary: dict[str, object]) -> list[str]:
    rows: dict[str, dict[str, int]] = summary["strategies"]  # type: ignore[assignment]
    lines = ["| strategy | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(str(row.get(c, 0)) for c in COLUMNS) + " |")
    total: dict[str, int] = summary["total"]  # type: ignore[assignment]
    lines.append("| **total** | " + " | ".join(str(total.get(c, 0)) for c in COLUMNS) + " |")
    return lines


def print_summary(summary: dict[str, object]) -> None:
    rows: dict[str, dict[str, int]] = summary["strategies"]  # type: ignore[assignment]
    width = max(len(n) for n in rows) + 2
    print(f"{'strategy':<{width}}" + "".join(f"{c:>13}" for c in COLUMNS))
    total: dict[str, int] = summary["total"]  # type: ignore[assignment]
    for name, row in [*rows.items(), ("TOTAL", total)]:
        print(f"{name:<{width}}" + "".join(f"{row.get(c, 0):>13}" for c in COLUMNS))
    print(
        f"commit {summary['commit']}, {summary['seconds']} s, runs {summary['runs']}, "
        f"orphan outputs with values {summary['orphan-outputs-with-values']}, "
        f"unmutated files that leak {summary['baseline-leaky-seeds']}"
    )
    classes: dict[str, int] = summary["escape-classes"]  # type: ignore[assignment]
    if classes:
        print("escape classes:")
        for name, count in sorted(classes.items(), key=lambda kv: -kv[1]):
            print(f"  {count:>6}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=10_000, help="mutants (10,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the campaign")
    parser.add_argument("--chunk", type=int, default=1000, help="mutants per chunk")
    parser.add_argument("--subsets", type=int, default=2, help="shuffled runs per chunk")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers of the full run")
    parser.add_argument("--patients", type=int, default=3, help="sample patients")
    parser.add_argument(
        "--no-pydicom",
        dest="pydicom",
        action="store_false",
        help="mutate only the sample generator's files",
    )
    parser.add_argument("--strategy", action="append", help="only this strategy (repeatable)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--repro", type=Path, help="folder for one repro per escape class")
    parser.add_argument(
        "--minimise",
        type=int,
        default=12,
        help="runs spent minimising each escape class's repro (0: none)",
    )
    parser.add_argument("--json", type=Path, help="write the summary here (JSON)")
    parser.add_argument("--markdown", type=Path, help="write the table here (Markdown)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    if args.count < 1 or args.chunk < 1:
        parser.error("--count and --chunk must be at least 1")
    if args.repro is not None:
        if args.repro.exists() and any(args.repro.iterdir()):
            parser.error(f"{args.repro} is not empty; give a new folder")
        args.repro.mkdir(parents=True, exist_ok=True)
        os.chmod(args.repro, 0o700)  # noqa: PTH101
    try:
        summary = campaign(args)
    except KeyboardInterrupt:
        print("interrupted: no summary", file=sys.stderr)
        return 130
    print_summary(summary)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if args.markdown is not None:
        args.markdown.write_text("\n".join(table(summary)) + "\n")
    total: dict[str, int] = summary["total"]  # type: ignore[assignment]
    return 0 if not total.get("escapes") and not total.get("crashes") else 1


if __name__ == "__main__":
    sys.exit(main())
