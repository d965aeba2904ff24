"""Where a ``deid`` run's wall time goes outside the workers' steady state.

Runs ``deidentify`` in this process (imports done: the CLI's start-up is not in it) over
CORPUS with the page cache dropped first (root; ``--warm`` to skip), and prints, from the
call: when the walk's first chunk was ready, when each worker started its first batch and
ended its last, how busy each was in between (time inside batches), and what the main
process did after the pool closed (the last commits, the two manifests, the report's
queries). The ends of a run are what the two cores cannot share: they cost wall time one
for one, where the steady state costs it at half its CPU.

    python bench/deid_timeline.py CORPUS [--jobs 2] [--warm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pacsguard.core import manifest
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, pipeline

MARKS = Path()
_RUN_BATCH = pipeline._run_batch


def _batch(items: list[Any]) -> Any:
    """A worker's batch, its span appended to MARKS (module level: the pool pickles it by
    name, the forked workers find it here)."""
    start = time.perf_counter()
    result = _RUN_BATCH(items)
    with MARKS.open("a") as out:
        out.write(f"{os.getpid()} {start} {time.perf_counter()}\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="keep the page cache")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pacsguard-timeline-", dir=args.corpus.parent))
    marks = work / "marks"  # the workers' marks: appended by every forked process
    marks.touch()
    events: list[tuple[str, float, float]] = []

    def note(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            result = real(*a, **k)
            events.append((name, start, time.perf_counter()))
            return result

        return timed

    global MARKS
    MARKS = marks
    pipeline._run_batch = _batch  # type: ignore[assignment]
    real_iter = pipeline.Planner.__iter__

    def chunks(self: pipeline.Planner) -> Any:
        for chunk in real_iter(self):
            events.append((f"chunk of {len(chunk)} ready", time.perf_counter(), 0.0))
            yield chunk

    pipeline.Planner.__iter__ = chunks  # type: ignore[method-assign]
    pipeline._Pool.close = note("pool closed", pipeline._Pool.close)  # type: ignore[method-assign]
    pipeline._output_manifest = note("output manifest (queries)", pipeline._output_manifest)
    pipeline.write_json_stream = note("a manifest written", pipeline.write_json_stream)
    pipeline.sync_filesystems = note("syncfs", pipeline.sync_filesystems)
    manifest.Journal.walked_reasons = note("report queries", manifest.Journal.walked_reasons)  # type: ignore[method-assign]
    out = work / "out"
    try:
        if not args.warm:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        t0 = time.perf_counter()
        report = pipeline.deidentify(
            [args.corpus], out, key=ProjectKey(os.urandom(32)), config=DeidConfig(jobs=args.jobs)
        )
        end = time.perf_counter()
        print(f"{report.inputs} inputs, {dict(report.paths)}: {end - t0:.2f} s from the call")
        workers: dict[str, list[tuple[float, float]]] = {}
        for line in marks.read_text().splitlines():
            pid, start, stop = line.split()
            workers.setdefault(pid, []).append((float(start), float(stop)))
        closed = next((e[2] for e in events if e[0] == "pool closed"), end)
        for name, start, _ in events:
            if name.startswith("chunk"):
                print(f"  {name}: +{start - t0:.3f} s")
        for pid, spans in sorted(workers.items()):
            first, last = min(s for s, _ in spans), max(e for _, e in spans)
            busy = sum(e - s for s, e in spans)
            print(
                f"  worker {pid}: first batch +{first - t0:.3f} s, last ends +{last - t0:.3f} s, "
                f"busy {busy / (last - first):.0%} of that, {len(spans)} batches"
            )
        print(f"  after the pool closed: {end - closed:.3f} s")
        for name, start, stop in events:
            if start >= closed and not name.startswith(("chunk", "pool")):
                print(f"    +{start - closed:.3f} s {name}: {(stop - start) * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
