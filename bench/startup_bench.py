"""Start-up: `pacsguard --help` wall time, and the time from a `deid` process's start to the
moment its first input file is opened (the first file "reached"), issue 14's two start-up goals.

The mark comes from an audit hook (PEP 578) on the ``open`` event for the input's path,
installed by a wrapper that then runs the console entry point exactly as the installed
``pacsguard`` script does; the process's start is read from ``/proc/self/stat``, so Python's
own start-up is counted; the process's CPU time (user + system) at that mark is reported
too (it leaves out waits for the disk or for a core). Runs alternate with ``--help`` runs;
medians are reported.

    .venv/bin/python bench/startup_bench.py --runs 9 [--terminal] [--importtime FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = r"""
import json, os, sys, time
def _start():
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    return time.time() - up + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # stat field 22
_t0 = _start()
_target, _out = os.environ["STARTUP_BENCH_INPUT"], os.environ["STARTUP_BENCH_MARK"]
_marks = {"python": time.time() - _t0}
def _hook(event, args):
    if event == "import" and args[0] in _PHASES and args[0] not in _marks:
        _marks[args[0]] = time.time() - _t0
    elif event == "open" and args[0] == _target and "first file" not in _marks:
        _marks["first file"] = time.time() - _t0
        _times = os.times()
        _marks["first file, CPU"] = _times.user + _times.system
        with open(_out, "w") as f:
            json.dump(_marks, f)
_PHASES = ("pacsguard.deid.pipeline", "pydicom", "rich.console")
sys.addaudithook(_hook)
sys.argv = ["pacsguard", *sys.argv[1:]]
from pacsguard.cli import console
_marks["cli imported"] = time.time() - _t0
sys.exit(console())
"""


def pipeline_source() -> str:
    spec = importlib.util.find_spec("pacsguard.deid.pipeline")
    assert spec is not None and spec.origin is not None
    return spec.origin


def median_ms(values: list[float]) -> str:
    low, mid, high = (
        round(v * 1000) for v in (min(values), statistics.median(values), max(values))
    )
    return f"{mid} ms ({low}-{high})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--importtime", type=Path, help="also write one -X importtime log here")
    parser.add_argument(
        "--terminal",
        action="store_true",
        help="run deid on a pseudo-terminal (util-linux script): its live bar is drawn, so "
        "Rich loads before the first file, as for a person at a terminal",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    py = Path(sys.executable)
    script_tool = shutil.which("script") or "script"
    script = py.parent / "pacsguard"
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        subprocess.run(
            [script, "sample", str(work / "in"), "--ct-corpus", "1"],
            check=True,
            capture_output=True,
        )
        subprocess.run([script, "key", "new", str(work / "k")], check=True, capture_output=True)
        inputs = sorted(p for p in (work / "in").rglob("*") if p.is_file() and p.suffix != ".json")
        target = str(inputs[0])
        wrapper = work / "wrapper.py"
        wrapper.write_text(WRAPPER)
        mark = work / "mark"
        marks: dict[str, list[float]] = {}
        helps: list[float] = []
        for i in range(args.runs + 1):
            out = work / f"out{i}"
            env = dict(os.environ, STARTUP_BENCH_INPUT=target, STARTUP_BENCH_MARK=str(mark))
            mark.unlink(missing_ok=True)
            deid = [str(py), str(wrapper), "deid", target, str(out), "--key", str(work / "k"),
                    "--quarantine", str(work / f"q{i}")]  # fmt: skip
            if args.terminal:
                deid = [script_tool, "-qec", shlex.join(deid), "/dev/null"]
            subprocess.run(deid, env=env, check=True, capture_output=True)
            started = time.perf_counter()
            subprocess.run([script, "--help"], check=True, capture_output=True)
            took = time.perf_counter() - started
            if i == 0:
                continue  # warm-up
            for name, at in json.loads(mark.read_text()).items():
                marks.setdefault(name, []).append(at)
            helps.append(took)
        if args.importtime is not None:
            log = subprocess.run([py, "-X", "importtime", wrapper, "deid", target,
                                  str(work / "outx"), "--key", str(work / "k"),
                                  "--quarantine", str(work / "qx")],
                                 env=env, capture_output=True, text=True)  # fmt: skip
            args.importtime.write_text(log.stderr)
    compiled = Path(importlib.util.cache_from_source(pipeline_source())).exists()
    print(
        f"pacsguard's modules byte-compiled: {'yes' if compiled else 'no (compiled at each start)'}"
    )
    where = "on a terminal" if args.terminal else "output to pipes"
    print(
        f"first file of a deid run reached ({where}): {median_ms(marks['first file'])}, "
        f"{args.runs} runs"
    )
    print("  marks, from the process's start (medians):")
    for name, at in sorted(marks.items(), key=lambda item: statistics.median(item[1])):
        print(f"    {name:<26} {median_ms(at)}")
    print(f"pacsguard --help:                 {median_ms(helps)}, {len(helps)} runs")
    if args.json is not None:
        args.json.write_text(json.dumps({"marks_s": marks, "help_s": helps, "compiled": compiled}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
