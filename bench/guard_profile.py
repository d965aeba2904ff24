"""Where a relayed C-MOVE's time goes: the guard in this process, `movescu` against it.

    .venv/bin/python bench/guard_profile.py --workdir DIR [--instances 300] [--pairs 5]
        [--yappi cpu|wall] [--top 40]

dcmqrscp holds the benchmark's CT series (`guard_bench.make_series`), storescp is the
destination, every DCMTK process with TCP_NODELAY=1. Direct and guarded `movescu` runs
alternate (--pairs of each); printed: each run's instances/s, the medians and their ratio,
and the guard's CPU per relayed instance (this process's `time.process_time` over the
guarded runs: the clients and servers are other processes). With --yappi (a dev
dependency), one more guarded move runs under yappi, all threads, and the functions taking
the most time are printed, then the threads.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guard_bench as gb
from pacsguard.guard import Guard, lab, load_config
from pacsguard.lab.procs import LOOPBACK, free_ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--yappi", choices=["cpu", "wall"])
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    yappi: Any = None
    if args.yappi:
        try:
            yappi = importlib.import_module("yappi")
        except ImportError:
            raise SystemExit("error: --yappi needs yappi (pip install yappi)") from None
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = args.instances
    files = gb.make_series(work / "series", n)
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    guard_port, pacs_port, store_port = free_ports(3)
    peers = {"PACS": (LOOPBACK, guard_port), "DIRECTSTORE": (LOOPBACK, store_port)}
    archive = lab.start_dcmqrscp(work, pacs_port, "ARCHIVE", peers)
    receiver = None
    guard = None
    try:
        lab.load(archive, files, work / "load.log")
        receiver = lab.start_storescp(work, store_port, "profile")
        config = work / "guard.toml"
        config.write_text(
            f'[guard]\nae_title = "PACS"\nhost = "{LOOPBACK}"\nport = {guard_port}\n'
            f'state = "{work / "state"}"\n'
            f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\nport = {pacs_port}\n'
            f'[[guard.client]]\nname = "bench"\nae_title = "BENCH"\nhost = "{LOOPBACK}"\n'
            f'allow = ["move"]\nmove_destinations = ["DIRECTSTORE"]\n'
            f"associations_per_minute = 100000\n"
            f'[[guard.destination]]\nae_title = "DIRECTSTORE"\nhost = "{LOOPBACK}"\n'
            f"port = {store_port}\n",
            encoding="utf-8",
        )
        guard = Guard(load_config(config))
        guard.start()
        gb.movescu(guard_port, "PACS", "DIRECTSTORE", study, receiver, 1)  # warm up
        direct, guarded, cpu = [], [], 0.0
        for _ in range(args.pairs):
            direct.append(gb.movescu(pacs_port, "ARCHIVE", "DIRECTSTORE", study, receiver, 1))
            start = time.process_time()
            guarded.append(gb.movescu(guard_port, "PACS", "DIRECTSTORE", study, receiver, 1))
            cpu += time.process_time() - start
            if len(receiver.received()) != n:
                raise SystemExit("error: the guarded move did not deliver every instance")
        print("instances/s direct", [round(n / s) for s in direct],
              "guard", [round(n / s) for s in guarded])  # fmt: skip
        d, g = statistics.median(direct), statistics.median(guarded)
        print(f"median direct {n / d:.0f}/s, guard {n / g:.0f}/s, ratio {g / d:.2f}; "
              f"guard CPU {cpu / len(guarded) / n * 1e3:.3f} ms per instance")  # fmt: skip
        if yappi is not None:
            yappi.set_clock_type(args.yappi)
            yappi.start(builtins=True)
            seconds = gb.movescu(guard_port, "PACS", "DIRECTSTORE", study, receiver, 1)
            yappi.stop()
            print(f"profiled move: {n / seconds:.0f} instances/s")
            stats = yappi.get_func_stats()
            stats.sort("tsub")
            print(f"{'function':78} {'calls':>8} {'own s':>8} {'total s':>8}")
            for entry in list(stats)[: args.top]:
                where = f"{Path(entry.module).name}:{entry.lineno} {entry.name}"
                print(f"{where[-78:]:78} {entry.ncall:8} {entry.tsub:8.3f} {entry.ttot:8.3f}")
            yappi.get_thread_stats().print_all(out=sys.stdout)
    finally:
        if guard is not None:
            guard.stop()
        if receiver is not None:
            receiver.server.stop()
        archive.server.stop()


if __name__ == "__main__":
    main()
