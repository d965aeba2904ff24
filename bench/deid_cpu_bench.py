"""CPU per file of ``deid``'s worker, in one process, on a corpus of the deid benchmark.

Runs ``pipeline.Worker.process`` (gate, identity, rewrite, write, post-write check, SHA-256;
no commit, no sync) on consecutive files of CORPUS after a warm-up, and prints the CPU time
per file (user + system of this process, best of the passes) and the share of files that
took each path. Outputs are removed as they are made. Wall time on a shared machine moves
with the load; CPU time much less; the user-space instruction count not at all:

    python bench/deid_cpu_bench.py CORPUS [--files 300] [--passes 3] [--profile]
    valgrind --tool=cachegrind --cache-sim=no python bench/deid_cpu_bench.py CORPUS \\
        --passes 1 --files N      # run with N and with 0: the difference / N per file
    SORT=tottime TOP=45 python bench/deid_cpu_bench.py CORPUS --profile   # pstats order, rows
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from pacsguard.core.io import InputItem
from pacsguard.core.keys import load_key
from pacsguard.deid import DeidConfig
from pacsguard.deid.pipeline import Worker
from pacsguard.deid.policy import load_policy

WARM = 20  # files processed first, uncounted: the rule tables and one series' memo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--key", type=Path, default=None, help="project key (default: a new one)")
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the last pass")
    args = parser.parse_args()
    files = sorted(args.corpus.rglob("*.dcm"))[: WARM + args.files]
    items = [InputItem(str(f), f, None, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    work = Path(tempfile.mkdtemp(prefix="pacsguard-deid-cpu-"))
    material = load_key(args.key).material if args.key else os.urandom(32)
    try:
        (work / "q").mkdir()
        worker = Worker(material, DeidConfig(jobs=1), load_policy(None), work / "o", work / "q")
        for item in items[:WARM]:
            _discard(worker.process(item).tmp)
        counted = items[WARM:]
        best, paths = float("inf"), Counter[str]()
        profile: cProfile.Profile | None = None
        for number in range(args.passes):
            if args.profile and number == args.passes - 1:
                profile = cProfile.Profile()
            start = time.process_time()
            if profile:
                profile.enable()
            results = [worker.process(item) for item in counted]
            if profile:
                profile.disable()
            best = min(best, time.process_time() - start)
            paths = Counter(r.path or r.outcome.status for r in results)
            for result in results:
                _discard(result.tmp)
        if counted:
            shares = ", ".join(f"{k} {v / len(counted):.0%}" for k, v in paths.most_common())
            print(f"{len(counted)} files: {best / len(counted) * 1e6:.0f} us CPU a file ({shares})")
            memos = {name: getattr(worker, name, None) for name in ("inputs", "outputs")}
            recalled = ", ".join(f"{n} {m.recalled}" for n, m in memos.items() if m is not None)
            if recalled:  # walks recalled from the walk memo, warm-up and every pass
                print(f"walks recalled: {recalled} of {len(items) * args.passes} each")
        if profile is not None:
            order, top = os.environ.get("SORT", "cumulative"), int(os.environ.get("TOP", "30"))
            pstats.Stats(profile).sort_stats(order).print_stats(top)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _discard(path: str | None) -> None:
    if path is not None:
        Path(path).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
