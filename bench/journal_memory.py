"""Client memory of a resume over a synthetic journal (no real files needed).

    python bench/journal_memory.py build STATE N     # N journalled inputs (quarantined)
    python bench/journal_memory.py resume STATE N    # walk N inputs, resume, account
    python bench/journal_memory.py model STATE N     # both, at N/4 and N: fixed + per input

``resume`` streams N synthetic inputs through the run's planner (journal lookups a chunk
at a time, walked inputs recorded in SQLite), then the end-of-run accounting and the
local manifest, as ``deidentify`` does, and prints one JSON line: the peak resident
memory above the interpreter's after its imports, and per input. The figures extrapolate
to 10^8 inputs (docs/scale.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pacsguard.core.io import InputItem
from pacsguard.core.manifest import Journal, Outcome, write_json_stream
from pacsguard.deid.pipeline import _as_record
from pacsguard.deid.streaming import Planner

REASON = "not DICOM as the standard allows: a synthetic reason"


def synthetic(count: int) -> Iterator[InputItem]:
    for number in range(count):
        label = f"/data/cohort/{number // 10_000:05d}/{number:09d}.dcm"
        yield InputItem(label, Path(label), None, 500_000, 1_700_000_000_000_000_000 + number)


def build(state: Path, count: int) -> None:
    journal = Journal(state / "journal.sqlite")
    batch: list[Outcome] = []
    for item in synthetic(count):
        batch.append(Outcome(item.label, item.fingerprint, "quarantine", reason=REASON))
        if len(batch) == 50_000:
            journal.record_many(batch)
            batch = []
    journal.record_many(batch)
    journal.close()


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> float:
    """Reset the peak resident size to the current one (Linux: clear_refs 5); return it.
    Without the reset, the peak of the imports would hide everything after them."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


def resume(state: Path, count: int) -> dict[str, float]:
    journal = Journal(state / "journal.sqlite")
    journal.begin_walk()
    base = reset_peak()
    start = time.perf_counter()
    planner = Planner(synthetic(count), journal, state / "out", check=False)
    todo = sum(len(chunk) for chunk in planner)
    statuses = journal.walked_statuses()
    local = {"outcomes": (_as_record(o) for o in journal.walked()), "skipped": []}
    write_json_stream(state / "manifest.json", local, mode=0o600, durable=False)
    seconds = time.perf_counter() - start
    journal.close()
    peak = peak_mb() - base
    assert todo == 0 and planner.resumed == count and statuses["quarantine"] == count
    return {"inputs": count, "seconds": round(seconds, 1), "peak_mb": round(peak, 1)}


def model(state: Path, count: int) -> dict[str, float]:
    """Peak memory at N/4 and at N, each in a fresh interpreter: what is fixed, what grows
    per input, and the line through both at 10^8 inputs."""
    if not (state / "journal.sqlite").exists():
        build(state, count)
    runs = []
    for n in (count // 4, count):
        done = subprocess.run(
            [sys.executable, __file__, "resume", str(state), str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(done.stdout))
    small, large = runs
    per_input = max(0.0, (large["peak_mb"] - small["peak_mb"]) * 2**20 / (count - count // 4))
    fixed = large["peak_mb"] - per_input * count / 2**20
    return {
        "inputs": count,
        "seconds": large["seconds"],
        "peak_mb": large["peak_mb"],
        "peak_mb_at_quarter": small["peak_mb"],
        "bytes_per_input": round(per_input, 2),
        "model_100M_mb": round(fixed + per_input * 1e8 / 2**20, 1),
    }


if __name__ == "__main__":
    action, where, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    where.mkdir(parents=True, exist_ok=True)
    if action == "build":
        build(where, n)
    elif action == "resume":
        print(json.dumps(resume(where, n)))
    else:
        print(json.dumps(model(where, n)))
