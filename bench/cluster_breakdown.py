"""Where a cluster batch's time goes: `deid --cluster` instrumented, against the local pool.

    nice -n 5 .venv/bin/python bench/cluster_breakdown.py --files 4096 --batch 1024

One corpus of FILES CT slices (`pacsguard.sample.generate_ct_corpus`, 512x512 16-bit), then,
in one sitting:

1. the local pool (`deidentify(..., jobs=2)`), wall time only;
2. the same run on a LocalCluster of 2 one-thread worker processes started here (the
   scheduler in this process, as `--cluster local:2` has it), with timers wrapped around
   the pieces of a batch:
   - on each worker (patched through `client.run`, read back after): the worker's setup
     (`_worker_for`: key, engine, tables), `process_batch`, the sync of its writes, and the
     naming task (`_apply`: renames, quarantines, its own sync);
   - on the client: submit -> the worker starts (scheduler + transfer), the worker ends ->
     the client holds the result, the naming round trip (`ClusterRun.apply`), the journal
     commit (`Journal.record_many`), `plan_names`, and how long the submitting thread
     waited for room in the wave;
   - the pickled size of a batch's arguments and of its results, and the time to pickle and
     unpickle them;
   - each worker's idle time between the end of one task and the start of its next.

Results: a table on stdout and OUT/cluster-breakdown.json. docs/scale.md's model uses them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import resource
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "src"))  # after PYTHONPATH: another tree may be measured

from cluster_bench import corpus  # noqa: E402

# ---- on the workers (sent by value through client.run) --------------------------------


IDLE_S = 5.0


def patch_worker() -> int:
    import pacsguard.deid.cluster as cl

    if getattr(cl, "_bench_patched", False):
        return os.getpid()
    records: list[dict[str, Any]] = []
    cl._bench_records = records  # type: ignore[attr-defined]
    original_for, original_sync = cl._worker_for, cl._sync
    original_apply = cl._apply

    def deid_batch(spec: Any, items: list[Any]) -> list[Any]:
        start = time.time()
        worker = original_for(spec)
        ready = time.time()
        cpu = time.thread_time()
        results = worker.process_batch(items)
        cpu = time.thread_time() - cpu
        processed = time.time()
        original_sync(spec)
        end = time.time()
        records.append(
            {"kind": "batch", "first": items[0].fingerprint, "files": len(items),
             "start": start, "setup": ready - start, "process": processed - ready,
             "process_cpu": cpu, "sync": end - processed, "end": end, "pid": os.getpid()}
        )  # fmt: skip
        return results

    def apply(spec: Any, naming: Any) -> list[Any]:
        start = time.time()
        done = original_apply(spec, naming)
        end = time.time()
        records.append(
            {"kind": "apply", "moves": len(naming.moves), "start": start, "end": end,
             "pid": os.getpid()}
        )  # fmt: skip
        return done

    cl._deid_batch = deid_batch
    cl._apply = apply
    cl._bench_patched = True  # type: ignore[attr-defined]
    return os.getpid()


def process_cpu() -> float:
    """This worker process's CPU seconds, every thread (its event loop included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_records() -> list[dict[str, Any]]:
    import pacsguard.deid.cluster as cl

    return list(getattr(cl, "_bench_records", []))


# ---- on the client ----------------------------------------------------------------------


class ClientTimers:
    def __init__(self) -> None:
        self.submitted: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.spans: dict[str, list[float]] = defaultdict(list)

    def install(self) -> None:
        import pacsguard.deid.cluster as cl
        import pacsguard.deid.pipeline as pl
        from pacsguard.core.manifest import Journal

        timers = self
        send, first_done, result = cl.ClusterExecutor._send, cl._first_done, cl._result
        apply, record_many, plan_names = cl.ClusterRun.apply, Journal.record_many, pl.plan_names

        def timed(name: str, function: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    timers.spans[name].append(time.perf_counter() - start)

            return wrapper

        def _send(self: Any, items: list[Any]) -> None:
            timers.submitted[items[0].fingerprint] = time.time()
            send(self, items)

        def _result(future: Any) -> Any:
            value = result(future)
            if isinstance(value, list) and value and hasattr(value[0], "outcome"):
                timers.received.setdefault(value[0].outcome.fingerprint, time.time())
            return value

        cl.ClusterExecutor._send = _send  # type: ignore[method-assign]
        cl._result = _result
        cl._first_done = timed("wave_wait", first_done)
        cl.ClusterRun.apply = timed("naming_round_trip", apply)  # type: ignore[method-assign]
        Journal.record_many = timed("journal_commit", record_many)  # type: ignore[method-assign]
        pl.plan_names = timed("plan_names", plan_names)


def serialization(spec: Any, items: list[Any], results: list[Any]) -> dict[str, float]:
    """Pickled sizes and times of one batch's arguments and its results (Dask pickles
    both with protocol 5, as here)."""
    figures: dict[str, float] = {}
    for name, value in (("args", (spec, items)), ("results", results)):
        start = time.perf_counter()
        blob = pickle.dumps(value, protocol=5)
        dumped = time.perf_counter() - start
        start = time.perf_counter()
        pickle.loads(blob)
        loaded = time.perf_counter() - start
        figures[f"{name}_bytes"] = len(blob)
        figures[f"{name}_ms"] = round(1000 * (dumped + loaded), 2)
    return figures


def idle_gaps(records: list[dict[str, Any]]) -> dict[int, float]:
    """Per worker process: seconds between the end of a task and the start of its next."""
    by_pid: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_pid[record["pid"]].append(record)
    gaps = {}
    for pid, tasks in by_pid.items():
        tasks.sort(key=lambda r: r["start"])
        gaps[pid] = sum(max(0.0, b["start"] - a["end"]) for a, b in itertools.pairwise(tasks))
    return gaps


def cluster_round(
    timers: ClientTimers, key: Any, key_file: Path, source: Path, out: Path, batch: int
) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from pacsguard.core.keys import ENV_KEY_FILE
    from pacsguard.deid.pipeline import DeidConfig, deidentify

    timers.submitted.clear()
    timers.received.clear()
    timers.spans.clear()
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", silence_logs=40,
            env={ENV_KEY_FILE: str(key_file)},
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.run(patch_worker)
        started = time.perf_counter() - start
        config = DeidConfig(cluster=cluster.scheduler_address, batch_size=batch,
                            burned_in="keep")  # fmt: skip
        idle_before, own_idle = client.run(process_cpu), own_cpu()
        time.sleep(IDLE_S)  # what the Dask processes cost doing nothing, a second
        idle_after, own_idle = client.run(process_cpu), own_cpu() - own_idle
        idle_rate = sum(idle_after[w] - idle_before[w] for w in idle_before) / IDLE_S
        workers_before = client.run(process_cpu)
        own_before = own_cpu()
        begin = time.time()
        run_start = time.perf_counter()
        deidentify([source], out, key=key, config=config)
        run_s = time.perf_counter() - run_start
        ended = time.time()
        own_run = own_cpu() - own_before
        workers_after = client.run(process_cpu)
        workers_run = sum(workers_after[w] - workers_before[w] for w in workers_before)
        records = [r for rs in client.run(worker_records).values() for r in rs]
    batches = [r for r in records if r["kind"] == "batch"]
    applies = [r for r in records if r["kind"] == "apply"]
    latency = [r["start"] - timers.submitted[r["first"]] for r in batches if r["first"] in
               timers.submitted]  # fmt: skip
    back = [timers.received[r["first"]] - r["end"] for r in batches if r["first"] in
            timers.received]  # fmt: skip

    def total(values: list[float]) -> float:
        return round(sum(values), 3)

    totals = {
        "worker_setup_s": total([r["setup"] for r in batches]),
        "worker_process_s": total([r["process"] for r in batches]),
        "worker_process_cpu_s": total([r["process_cpu"] for r in batches]),
        "worker_sync_s": total([r["sync"] for r in batches]),
        "naming_task_on_worker_s": total([r["end"] - r["start"] for r in applies]),
        "submit_to_worker_start_s": total(latency),
        "worker_end_to_client_s": total(back),
        **{f"client_{name}_s": total(spans) for name, spans in timers.spans.items()},
        "worker_idle_between_tasks_s": total(list(idle_gaps(records).values())),
    }
    thread_cpu = sum(r["process_cpu"] for r in batches)
    return {
        "cpu_s": {
            "client_process_during_run": round(own_run, 2),
            "workers_during_run": round(workers_run, 2),
            "workers_in_process_batch": round(thread_cpu, 2),
            "workers_besides_process_batch": round(workers_run - thread_cpu, 2),
            "workers_idle_per_s": round(idle_rate, 4),
            "workers_idle_times_run": round(idle_rate * run_s, 2),
            "client_idle_per_s": round(own_idle / IDLE_S, 4),
        },
        "cluster_start_s": round(started, 2),
        "cluster_run_s": round(run_s, 2),
        "batches": len(batches),
        "naming_tasks": len(applies),
        "run_start_to_first_task_s": round(min(r["start"] for r in batches) - begin, 2),
        "last_task_end_to_run_end_s": round(ended - max(r["end"] for r in records), 2),
        "totals": totals,
        "per_batch_s": {k: round(v / max(1, len(batches)), 3) for k, v in totals.items()},
        "batch_records": batches,
    }


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds() -> float:
    """User + system CPU of this process and of every child it (or they) waited for."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def clean(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".pacsguard"), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "cluster-work")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=None, help="inputs walked at a time")
    args = parser.parse_args()
    import pacsguard.deid.streaming

    print(f"pacsguard from {Path(pacsguard.deid.streaming.__file__).parents[2]}", flush=True)
    if args.chunk:  # fewer inputs a chunk: the chunk boundaries of a large run, at small scale
        pacsguard.deid.streaming.Planner.__init__.__kwdefaults__["chunk"] = args.chunk
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = corpus(work, args.files)

    from pacsguard.core.keys import load_key, new_key
    from pacsguard.deid.pipeline import DeidConfig, deidentify

    key_file = work / "project.key"
    if not key_file.exists():
        new_key(key_file)
    key = load_key(key_file)
    os.sync()  # the corpus's own writeback must not land on the first run
    result: dict[str, Any] = {"files": args.files, "batch": args.batch, "chunk": args.chunk,
                              "load_before": os.getloadavg(), "rounds": []}  # fmt: skip
    timers = ClientTimers()
    timers.install()
    out = work / "bd-out"
    for number in range(args.rounds):
        row: dict[str, Any] = {"round": number + 1}
        clean(out)
        cpu, own = cpu_seconds(), own_cpu()
        start = time.perf_counter()
        deidentify([source], out, key=key, config=DeidConfig(jobs=2, burned_in="keep"))
        row["local_pool_s"] = round(time.perf_counter() - start, 2)
        row["local_pool_cpu_s"] = round(cpu_seconds() - cpu, 2)
        row["local_pool_main_process_cpu_s"] = round(own_cpu() - own, 2)
        clean(out)
        os.sync()
        cpu = cpu_seconds()
        row.update(cluster_round(timers, key, key_file, source, out, args.batch))
        row["cluster_cpu_s"] = round(cpu_seconds() - cpu, 2)  # start and close included
        clean(out)
        os.sync()
        result["rounds"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "batch_records"}), flush=True)
    result["load_after"] = os.getloadavg()
    out = work / "bd-out"
    # serialization of one batch, measured on the client with the same objects
    from pacsguard.core.io import iter_inputs
    from pacsguard.deid.cluster import Spec
    from pacsguard.deid.pipeline import Worker
    from pacsguard.deid.policy import load_policy

    items = [item for _, item in zip(range(args.batch), iter_inputs([source]), strict=False)]
    policy = load_policy(None)
    spec = Spec("bench", "0" * 16, DeidConfig(burned_in="keep"), policy, str(out), str(out))
    scratch = work / "bd-serial"
    clean(scratch)
    worker = Worker(key.material, DeidConfig(burned_in="keep"), policy, scratch, scratch / "q")
    results = worker.process_batch(items)
    result["serialization"] = serialization(spec, items, results)
    clean(scratch)
    clean(out)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cluster-breakdown-{args.batch}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
