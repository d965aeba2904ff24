"""C-FIND through `pacsguard guard` against the same query straight to the PACS, rounds
alternated, with the guard's CPU per query.

    .venv/bin/python bench/guard_find_bench.py --workdir DIR [--instances 300] [--rounds 9]
        [--finds 50] [--findscu 5]

The PACS is dcmqrscp holding `guard_bench.make_series` (one study); the guard runs as its
own process (`pacsguard guard run`, plain mode). Each round runs --finds STUDY-level
queries on one open association (`guard_bench.find_latency`: a pynetdicom client with
TCP_NODELAY) straight to dcmqrscp, then the same through the guard, then (--findscu) whole
`findscu` runs each way (a new association per query). Printed: each round's medians and
ratio, the median of the rounds, and the guard process's CPU (user + system, from
/proc/PID/stat) per query over its rounds, association set-up included. The load average
is printed before and after: on a shared machine it is part of the figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guard_bench as gb
from pacsguard.guard import lab
from pacsguard.lab.procs import LOOPBACK, free_ports, listening


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--finds", type=int, default=50)
    parser.add_argument("--findscu", type=int, default=5)
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files = gb.make_series(work / "series", args.instances)
    guard_port, pacs_port = free_ports(2)
    archive = lab.start_dcmqrscp(work, pacs_port, "ARCHIVE", {"PACS": (LOOPBACK, guard_port)})
    guard: subprocess.Popen[bytes] | None = None
    try:
        lab.load(archive, files, work / "load.log")
        for path in files:  # only the archive's copy is needed
            path.unlink()
        config = work / "guard.toml"
        config.write_text(
            f'[guard]\nae_title = "PACS"\nhost = "{LOOPBACK}"\nport = {guard_port}\n'
            f'state = "state"\n'
            f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\nport = {pacs_port}\n'
            f'[[guard.client]]\nname = "bench"\nae_title = "BENCH"\nhost = "{LOOPBACK}"\n'
            f'allow = ["find"]\n'
            f"associations_per_minute = 100000\nfind_responses_per_minute = 1000000\n",
            encoding="utf-8",
        )
        guard = subprocess.Popen(
            [gb.PACSGUARD, "guard", "run", "--config", str(config)], cwd=work,
            stdout=subprocess.DEVNULL, stderr=(work / "guard.log").open("wb"), env=gb.ENV,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not listening(guard_port):
            if guard.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the guard did not start; see {work / 'guard.log'}")
            time.sleep(0.05)
        print(f"load average before: {os.getloadavg()[0]:.2f}; {args.instances} instances, "
              f"{args.rounds} rounds of {args.finds} finds, "
              f"findscu {args.findscu} a round")  # fmt: skip
        gb.find_latency(guard_port, "PACS", 5)  # warm up: imports, first association
        gb.find_latency(pacs_port, "ARCHIVE", 5)
        rows: list[dict[str, Any]] = []
        for index in range(args.rounds):
            direct = gb.find_latency(pacs_port, "ARCHIVE", args.finds) * 1e3
            before = cpu_seconds(guard.pid)
            through = gb.find_latency(guard_port, "PACS", args.finds) * 1e3
            cpu = (cpu_seconds(guard.pid) - before) / args.finds * 1e3
            row: dict[str, Any] = {"direct": direct, "guard": through, "cpu": cpu}
            if args.findscu:
                row["scu_direct"] = gb.findscu(pacs_port, "ARCHIVE", args.findscu) * 1e3
                before = cpu_seconds(guard.pid)
                row["scu_guard"] = gb.findscu(guard_port, "PACS", args.findscu) * 1e3
                row["scu_cpu"] = (cpu_seconds(guard.pid) - before) / args.findscu * 1e3
            rows.append(row)
            line = (f"round {index + 1}: open association {direct:.2f} -> {through:.2f} ms "
                    f"= {through / direct:.2f}x, guard CPU {cpu:.2f} ms/query")  # fmt: skip
            if args.findscu:
                line += (f"; findscu {row['scu_direct']:.1f} -> {row['scu_guard']:.1f} ms = "
                         f"{row['scu_guard'] / row['scu_direct']:.2f}x, "
                         f"guard CPU {row['scu_cpu']:.2f} ms/run")  # fmt: skip
            print(line, flush=True)

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rows)

        ratios = ", ".join(f"{x:.2f}" for x in sorted(r["guard"] / r["direct"] for r in rows))
        print(f"median: open association {med('direct'):.2f} -> {med('guard'):.2f} ms = "
              f"{med('guard') / med('direct'):.2f}x (per-round ratios {ratios}); "
              f"guard CPU {med('cpu'):.2f} ms/query")  # fmt: skip
        if args.findscu:
            scu = ", ".join(
                f"{x:.2f}" for x in sorted(r["scu_guard"] / r["scu_direct"] for r in rows)
            )
            print(f"median: findscu {med('scu_direct'):.1f} -> {med('scu_guard'):.1f} ms = "
                  f"{med('scu_guard') / med('scu_direct'):.2f}x (per-round ratios {scu}); "
                  f"guard CPU {med('scu_cpu'):.2f} ms/run")  # fmt: skip
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if guard is not None:
            guard.send_signal(signal.SIGTERM)
            guard.wait(timeout=30)
        archive.server.stop()


if __name__ == "__main__":
    main()
