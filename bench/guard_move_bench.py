"""C-MOVE (and C-GET) through `pacsguard guard` against the same retrieve straight to the
PACS, rounds alternated, with the guard process's CPU per relayed instance; optionally a
second guard run from another source tree in the same rounds (code against code, same
minutes).

    .venv/bin/python bench/guard_move_bench.py --workdir DIR [--instances 300] [--rounds 7]
        [--get] [--other SRC [--other-name NAME]]

The PACS is dcmqrscp holding `guard_bench.make_series` (one study, ~0.5 MB a slice); the
destination is storescp; each guard runs as its own process (`pacsguard guard run`, plain
mode) with PYTHONPATH set to its tree's ``src`` (this tree's, and --other's). Each round
runs one `movescu` of the whole study straight to dcmqrscp, then through each guard (the
order of the guards alternates by round), and with --get one `getscu` each way. Printed:
each round's instances/s and the guards' CPU (user + system from /proc/PID/stat, and the
system part alone) per instance, then the medians and the ratios guard time / direct time.
The load average is printed before and after: on a shared machine it is part of the figure.
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

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guard_bench as gb
from pacsguard.guard import lab
from pacsguard.lab.procs import LOOPBACK, free_ports, listening

HERE = Path(__file__).resolve().parent.parent / "src"


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_with_children(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (dcmqrscp forks one
    per association)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def start_guard(work: Path, name: str, src: Path, ae_title: str, port: int, pacs_port: int,
                store_port: int) -> subprocess.Popen[bytes]:  # fmt: skip
    folder = work / f"guard-{name}"
    folder.mkdir()
    config = folder / "guard.toml"
    config.write_text(
        f'[guard]\nae_title = "{ae_title}"\nhost = "{LOOPBACK}"\nport = {port}\n'
        f'state = "state"\n'
        f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\nport = {pacs_port}\n'
        f'[[guard.client]]\nname = "bench"\nae_title = "BENCH"\nhost = "{LOOPBACK}"\n'
        f'allow = ["move", "get"]\nmove_destinations = ["DIRECTSTORE"]\n'
        f"associations_per_minute = 100000\n"
        f'[[guard.destination]]\nae_title = "DIRECTSTORE"\nhost = "{LOOPBACK}"\n'
        f"port = {store_port}\n",
        encoding="utf-8",
    )
    env = {**gb.ENV, "PYTHONPATH": str(src)}
    guard = subprocess.Popen(
        [gb.PACSGUARD, "guard", "run", "--config", str(config)], cwd=folder,
        stdout=subprocess.DEVNULL, stderr=(folder / "guard.log").open("wb"), env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not listening(port):
        if guard.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the guard {name} did not start; see {folder / 'guard.log'}")
        time.sleep(0.05)
    return guard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--get", action="store_true", help="getscu rounds too")
    parser.add_argument("--other", action="append", default=[], metavar="NAME=SRC",
                        help="another tree's src, run as another guard (repeatable)")  # fmt: skip
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = args.instances
    files = gb.make_series(work / "series", n)
    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    ports = free_ports(3 + len(args.other))
    pacs_port, store_port = ports[0], ports[1]
    trees = [("this", HERE, "PACS", ports[2])]
    for index, other in enumerate(args.other):
        name, _, src = other.partition("=")
        if not src:
            raise SystemExit("error: --other NAME=SRC")
        trees.append((name, Path(src).resolve(), f"PACS{index + 1}", ports[3 + index]))
    peers = {ae: (LOOPBACK, port) for _, _, ae, port in trees}
    peers["DIRECTSTORE"] = (LOOPBACK, store_port)
    archive = lab.start_dcmqrscp(work, pacs_port, "ARCHIVE", peers)
    guards: dict[str, tuple[subprocess.Popen[bytes], str, int]] = {}
    receiver = None
    try:
        lab.load(archive, files, work / "load.log")
        for path in files:  # only the archive's copy is needed
            path.unlink()
        receiver = lab.start_storescp(work, store_port, "bench")
        for name, src, ae, port in trees:
            guards[name] = (start_guard(work, name, src, ae, port, pacs_port, store_port),
                            ae, port)  # fmt: skip
        fetched = work / "getscu"
        names = ", ".join(f"{k} ({v[1]})" for k, v in guards.items())
        print(f"load average before: {os.getloadavg()[0]:.2f}; {n} instances, "
              f"{args.rounds} rounds; guards: {names}")  # fmt: skip
        for _, ae, port in guards.values():  # warm up: imports, first associations
            gb.movescu(port, ae, "DIRECTSTORE", study, receiver, 1)
        rows: list[dict[str, Any]] = []

        peers_cpu: dict[str, list[float]] = {}

        def move(port: int, called: str) -> float:
            pids = (archive.server.process.pid, receiver.server.process.pid)
            before = sum(cpu_with_children(pid) for pid in pids)
            seconds = gb.movescu(port, called, "DIRECTSTORE", study, receiver, 1)
            if len(receiver.received()) != n:
                raise SystemExit(f"error: the move through {called} did not deliver every instance")
            time.sleep(0.05)  # dcmqrscp reaps its association's child
            spent = sum(cpu_with_children(pid) for pid in pids) - before
            peers_cpu.setdefault(called, []).append(spent / n * 1e3)
            return seconds

        def get(port: int, called: str) -> float:
            seconds = gb.getscu(port, called, study, fetched)
            if len(list(fetched.iterdir())) != n:
                raise SystemExit(f"error: the get through {called} did not fetch every instance")
            return seconds

        for index in range(args.rounds):
            row: dict[str, Any] = {"move direct": move(pacs_port, "ARCHIVE")}
            order = list(guards.items())
            order = order[index % len(order) :] + order[: index % len(order)]
            for name, (guard, ae, port) in order:
                user, system = cpu_split(guard.pid)
                row[f"move {name}"] = move(port, ae)
                after = cpu_split(guard.pid)
                row[f"cpu {name}"] = (after[0] + after[1] - user - system) / n * 1e3
                row[f"sys {name}"] = (after[1] - system) / n * 1e3
            if args.get:
                row["get direct"] = get(pacs_port, "ARCHIVE")
                for name, (guard, ae, port) in order:
                    user, system = cpu_split(guard.pid)
                    row[f"get {name}"] = get(port, ae)
                    after = cpu_split(guard.pid)
                    row[f"getcpu {name}"] = (after[0] + after[1] - user - system) / n * 1e3
            rows.append(row)
            parts = [f"move direct {n / row['move direct']:.0f}/s"]
            for name in guards:
                parts.append(f"{name} {n / row[f'move {name}']:.0f}/s "
                             f"({row[f'move {name}'] / row['move direct']:.2f}x, "
                             f"CPU {row[f'cpu {name}']:.3f} ms/inst, "
                             f"sys {row[f'sys {name}']:.3f})")  # fmt: skip
            if args.get:
                parts.append(f"get direct {n / row['get direct']:.0f}/s")
                for name in guards:
                    parts.append(f"{name} {n / row[f'get {name}']:.0f}/s "
                                 f"({row[f'get {name}'] / row['get direct']:.2f}x, "
                                 f"CPU {row[f'getcpu {name}']:.3f})")  # fmt: skip
            print(f"round {index + 1}: " + "; ".join(parts), flush=True)

        def med(key: str) -> float:
            return statistics.median(r[key] for r in rows)

        for kind in ("move", "get") if args.get else ("move",):
            direct = med(f"{kind} direct")
            line = [f"median {kind}: direct {n / direct:.0f}/s"]
            for name in guards:
                ratios = sorted(r[f"{kind} {name}"] / r[f"{kind} direct"] for r in rows)
                cpu = statistics.mean(
                    r[f"{'cpu' if kind == 'move' else 'getcpu'} {name}"] for r in rows
                )  # the mean: the ticks are 10 ms
                line.append(f"{name} {n / med(f'{kind} {name}'):.0f}/s = "
                            f"{med(f'{kind} {name}') / direct:.2f}x (rounds "
                            f"{', '.join(f'{x:.2f}' for x in ratios)}), "
                            f"guard CPU {cpu:.3f} ms/inst (mean)")  # fmt: skip
            print("; ".join(line))
        print("dcmqrscp + storescp CPU ms/instance, median: " + ", ".join(
            f"{called} {statistics.median(v):.3f}" for called, v in peers_cpu.items()))  # fmt: skip
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        for guard, _, _ in guards.values():
            guard.send_signal(signal.SIGTERM)
            guard.wait(timeout=30)
        if receiver is not None:
            receiver.server.stop()
        archive.server.stop()


if __name__ == "__main__":
    main()
