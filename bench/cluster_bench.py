"""Benchmark: `pacsguard deid` on one machine against the same run on Dask.

    .venv/bin/python bench/cluster_bench.py --files 20000 --workdir bench/out/cluster-work

1. Dask's per-task cost: TASKS empty tasks through a LocalCluster of 2 processes
   (127.0.0.1), submitted in waves as the deid run does; ms a task, as seen by the client.
2. FILES CT slices (the deid benchmark's generator, 512x512 16-bit), de-identified by
   `pacsguard deid -j 2` (the local process pool), `--cluster local:2`, and a `dask
   scheduler` + 2 `dask worker` processes (`--cluster tcp://127.0.0.1:PORT`), each into a
   fresh output; files/s and the ratio to the local pool. Every run's outputs are counted
   and compared byte for byte with the local pool's.
3. The per-batch cost on the cluster: (cluster wall - local wall) / tasks.

Results: a table on stdout and OUT/cluster.json. docs/scale.md turns them into a model.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


def nothing(number: int) -> int:
    return number


def task_overhead(tasks: int) -> dict[str, float]:
    """ms a task two ways: ``map`` in waves of 1,000 (the scheduler's own cost), and one
    ``submit`` at a time with 4 in flight, as the deid run sends its batches (the cost a
    batch pays, round trip included)."""
    from distributed import Client, LocalCluster, wait

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.submit(nothing, -1, pure=False).result()  # warm
        start = time.perf_counter()
        for first in range(0, tasks, 1000):
            client.gather(client.map(nothing, range(first, min(tasks, first + 1000)), pure=False))
        mapped = time.perf_counter() - start
        sent = max(1, tasks // 10)
        start = time.perf_counter()
        pending: set[object] = set()
        for number in range(sent):
            pending.add(client.submit(nothing, number, pure=False))
            if len(pending) >= 4:
                done, rest = wait(pending, return_when="FIRST_COMPLETED")
                client.gather(list(done))
                pending = set(rest)
        client.gather(list(pending))
        submitted = time.perf_counter() - start
    return {
        "tasks": tasks,
        "ms_per_task_mapped": round(1000 * mapped / tasks, 3),
        "submitted": sent,
        "ms_per_task_submitted": round(1000 * submitted / sent, 3),
    }


def corpus(work: Path, files: int) -> Path:
    root = work / f"corpus-{files}"
    marker = work / f".corpus-{files}.done"
    if marker.exists():
        return root
    sys.path.insert(0, str(ROOT / "src"))
    from pacsguard.sample import generate_ct_corpus

    shutil.rmtree(root, ignore_errors=True)
    generate_ct_corpus(root, files=files)
    (root / "corpus.json").unlink(missing_ok=True)
    marker.write_text(str(files))
    return root


def run(label: str, argv: list[str], out: Path, env: dict[str, str]) -> dict[str, object]:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".pacsguard"), ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{label} failed: {done.stderr[-2000:]}")
    written = sum(1 for _ in out.rglob("*.dcm"))
    return {"run": label, "seconds": round(seconds, 2), "files": written}


def same_tree(a: Path, b: Path) -> bool:
    left = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    right = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    return left == right and all(filecmp.cmp(a / n, b / n, shallow=False) for n in left)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "cluster-work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    overhead = task_overhead(args.tasks)
    print(f"dask: {json.dumps(overhead)}", flush=True)

    source = corpus(work, args.files)
    key = work / "project.key"
    if not key.exists():
        subprocess.run([str(BIN / "pacsguard"), "key", "new", str(key)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACSGUARD_KEY")}
    env["PACSGUARD_KEY_FILE"] = str(key)
    deid = [str(BIN / "pacsguard"), "deid", str(source)]
    local_argv = [*deid, str(work / "out-local"), "-j", "2"]
    rows = [run("local pool -j 2", local_argv, work / "out-local", env)]
    rows.append(
        run("--cluster local:2", [*deid, str(work / "out-lc"), "--cluster", "local:2"],
            work / "out-lc", env)
    )  # fmt: skip
    sched_file = work / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    processes = [
        subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(sched_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        while not sched_file.exists():
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", "--scheduler-file", str(sched_file),
                     "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(2, timeout=120)
        rows.append(
            run("scheduler + 2 workers", [*deid, str(work / "out-tcp"), "--cluster", address],
                work / "out-tcp", env)
        )  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
    local = float(rows[0]["seconds"])  # type: ignore[arg-type]
    sys.path.insert(0, str(ROOT / "src"))
    from pacsguard.deid.cluster import FILES_PER_TASK

    tasks = -(-args.files // FILES_PER_TASK)
    for row, out in zip(rows, ("out-local", "out-lc", "out-tcp"), strict=True):
        row["files_per_s"] = round(args.files / float(row["seconds"]), 1)  # type: ignore[arg-type]
        row["ratio_to_local"] = round(local / float(row["seconds"]), 3)  # type: ignore[arg-type]
        row["same_bytes_as_local"] = same_tree(work / "out-local", work / out)
        if row is not rows[0]:
            row["extra_ms_per_task"] = round(
                1000 * (float(row["seconds"]) - local) / tasks,  # type: ignore[arg-type]
                1,
            )
    result = {"dask_task_overhead": overhead, "files": args.files, "runs": rows,
              "files_per_task": FILES_PER_TASK, "cores": os.cpu_count()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['run']:<24} {row['seconds']:>8} s {row['files_per_s']:>8} files/s "
            f"x{row['ratio_to_local']} of the local pool, same bytes: {row['same_bytes_as_local']}"
        )


if __name__ == "__main__":
    main()
