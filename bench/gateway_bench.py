"""`pacsguard gateway` end to end against the direct path and Orthanc used as a router.

    .venv/bin/python bench/gateway_bench.py --workdir DIR [--files 1000] [--rows 512]

One CT series (``generate_ct_corpus``: 512x512 16-bit slices, ~0.5 MB each, identifiers in
headers) is sent by DCMTK ``storescu`` over loopback, and the clock stops when the
destination Orthanc holds every instance (polled on its REST API):

  direct          storescu -> destination Orthanc (the ceiling)
  gateway         storescu -> pacsguard gateway (de-identify, spool, queue) -> Orthanc
  orthanc-route   storescu -> router Orthanc, Lua OnStoredInstance -> Orthanc (no deid)
  orthanc-anon    the same, the Lua script sends Orthanc's own /anonymize output
  dcmtk           storescu -> storescp (DCMTK to DCMTK, into a folder; reference only)
  gateway-tmpfs   the gateway with its spool and queue on /dev/shm: what the three
                  fsyncs per instance (engine output, its folder, the queue commit) cost

Every DCMTK and Orthanc process runs with TCP_NODELAY=1 in its environment (without it
DCMTK leaves Nagle's algorithm on and each instance waits ~40 ms); pacsguard sets
TCP_NODELAY on its own sockets. Latency (gateway only): receipt to the destination's
confirmation, per instance, from the gateway's queue database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pacsguard.lab import dcmtk, orthanc
from pacsguard.lab.procs import Server, free_ports, listening
from pacsguard.sample import generate_ct_corpus

LUA = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] ~= 'Lua' then
    local id = instanceId
    if ANONYMIZE then
      local anonymized = RestApiPost('/instances/' .. instanceId .. '/anonymize', '{"Force": true}')
      id = ParseJson(RestApiPost('/instances', anonymized))['ID']
    end
    RestApiPost('/modalities/sink/store', id)
    if ANONYMIZE then Delete(id) end
    Delete(instanceId)
  end
end
"""


def count(spec: orthanc.OrthancSpec) -> int:
    with httpx.Client(timeout=30, trust_env=False) as client:
        reply = client.get(f"http://127.0.0.1:{spec.http_port}/statistics")
        return int(reply.json()["CountInstances"])


def wait_count(spec: orthanc.OrthancSpec, want: int, timeout: float = 3600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(spec) >= want:
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"destination holds {count(spec)} of {want} instances after {timeout}s")


SENDERS = 1  # concurrent storescu processes (associations), set by --senders
MAX_PDU: int | None = None  # the gateway's max_pdu, set by --max-pdu (None: its default)
CONCURRENCY = 2  # the destination's forwarding associations, set by --concurrency
SYNC_CALLS = "fsync,fdatasync,syncfs,sync,msync"


def storescu(port: int, aec: str, files: list[Path], log: Path) -> None:
    """``SENDERS`` storescu processes at once, each sending its share of ``files``."""
    argv = ["storescu", "-aet", "MODALITY1", "-aec", aec, "127.0.0.1", str(port)]
    shares = [files[n::SENDERS] for n in range(SENDERS)]
    logs = [log.with_suffix(f".{n}.log") if SENDERS > 1 else log for n in range(SENDERS)]
    handles = [path.open("wb") for path in logs]
    try:
        procs = [
            subprocess.Popen(
                [*argv, *map(str, share)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1"},
            )
            for share, handle in zip(shares, handles, strict=True)
        ]
        codes = [proc.wait() for proc in procs]
    finally:
        for handle in handles:
            handle.close()
    if any(codes):
        raise SystemExit(f"storescu failed ({codes}); see {logs[0]}")


def fresh_orthanc(name: str, work: Path, **extra: Any) -> tuple[orthanc.OrthancSpec, Server]:
    shutil.rmtree(work / f"orthanc-{name}", ignore_errors=True)
    http, dicom = free_ports(2)
    spec = orthanc.OrthancSpec(name, http, dicom)
    config = spec.config(work / f"orthanc-{name}" / "storage")
    config.update(extra)
    folder = work / f"orthanc-{name}"
    (folder / "storage").mkdir(parents=True, exist_ok=True)
    (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
    server = Server(f"Orthanc {name}", [shutil.which("Orthanc") or "Orthanc",
                    str(folder / "orthanc.json")], folder / "orthanc.log", cwd=folder)  # fmt: skip
    server.wait_port(http)
    server.wait_port(dicom)
    return spec, server


def run_direct(files: list[Path], work: Path) -> dict[str, Any]:
    sink, server = fresh_orthanc("sink", work)
    try:
        start = time.perf_counter()
        storescu(sink.dicom_port, "ORTHANC", files, work / "direct.log")
        end = wait_count(sink, len(files))
        return {"seconds": end - start}
    finally:
        server.stop()


def run_dcmtk(files: list[Path], work: Path) -> dict[str, Any]:
    (port,) = free_ports(1)
    shutil.rmtree(work / "storescp-bench", ignore_errors=True)
    server = dcmtk.start_storescp("bench", port, work)
    try:
        start = time.perf_counter()
        storescu(port, "ANY-SCP", files, work / "dcmtk.log")
        return {"seconds": time.perf_counter() - start}
    finally:
        server.stop()


def run_router(files: list[Path], work: Path, anonymize: bool) -> dict[str, Any]:
    sink, sink_server = fresh_orthanc("sink", work)
    script = work / "route.lua"
    script.write_text(f"ANONYMIZE = {'true' if anonymize else 'false'}\n{LUA}")
    router, router_server = fresh_orthanc(
        "router", work, LuaScripts=[str(script)],
        DicomModalities={"sink": ["ORTHANC", "127.0.0.1", sink.dicom_port]},
    )  # fmt: skip
    try:
        start = time.perf_counter()
        storescu(router.dicom_port, "ORTHANC", files, work / "router.log")
        end = wait_count(sink, len(files))
        return {"seconds": end - start}
    finally:
        router_server.stop()
        sink_server.stop()


def run_gateway(
    files: list[Path],
    work: Path,
    state: Path | None = None,
    count_syncs: bool = False,
    source: Path | None = None,
) -> dict[str, Any]:
    """``source``: another checkout's ``src`` to run the gateway from (an A/B in one
    sitting); ``state``: where the spool and queue live (default on the work disk);
    ``count_syncs``: run the gateway under ``strace -c`` (seccomp-filtered to the sync
    calls, so the others run untraced) to count its fsyncs."""
    sink, sink_server = fresh_orthanc("sink", work)
    gw = work / "gateway"
    shutil.rmtree(gw, ignore_errors=True)
    gw.mkdir()
    key = gw / "project.key"
    key.write_text(os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    (port,) = free_ports(1)
    config = gw / "gateway.toml"
    config.write_text(
        f'[gateway]\nae_title = "PGGATE"\nhost = "127.0.0.1"\nport = {port}\n'
        f'key_file = "{key}"\nstate = "{state or gw / "state"}"\n'
        'options = ["retain-long-modified-dates"]\n'
        '[[gateway.allow]]\nae_title = "MODALITY1"\nhost = "127.0.0.1"\n'
        '[[destination]]\nname = "research"\ntype = "dicom"\nae_title = "ORTHANC"\n'
        f'host = "127.0.0.1"\nport = {sink.dicom_port}\nconcurrency = {CONCURRENCY}\nbatch = 32\n'
    )
    if MAX_PDU is not None:
        text = config.read_text()
        config.write_text(
            text.replace("[[gateway.allow]]", f"max_pdu = {MAX_PDU}\n[[gateway.allow]]", 1)
        )
    log = (gw / "gateway.log").open("wb")
    argv = [sys.executable, "-m", "pacsguard", "gateway", "run", "--config", str(config)]
    counts = gw / "syncs.txt"
    if count_syncs:
        argv = ["strace", "-f", "-qq", "--seccomp-bpf", "-c", "-o", str(counts),
                "-e", f"trace={SYNC_CALLS}", *argv]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(source)} if source is not None else None
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while not listening(port):
            if process.poll() is not None:
                raise SystemExit(f"gateway exited; see {gw / 'gateway.log'}")
            time.sleep(0.05)
        cpu_start = process_cpu(process.pid)
        start = time.perf_counter()
        storescu(port, "PGGATE", files, work / "gateway-storescu.log")
        received = time.perf_counter()
        end = wait_count(sink, len(files))
        cpu = process_cpu(process.pid) - cpu_start
        db = sqlite3.connect((state or gw / "state") / "queue.sqlite")
        latencies = sorted(
            row[0]
            for row in db.execute(
                "SELECT d.sent_at - i.received_at FROM deliveries d"
                " JOIN instances i ON i.id = d.instance_id WHERE d.state = 'sent'"
            )
        )
        db.close()
        result = {"seconds": end - start, "receive_seconds": received - start,
                  "latency": latencies, "cpu_seconds": cpu}  # fmt: skip
    finally:
        stop_gateway(process, count_syncs)
        log.close()
        sink_server.stop()
    if count_syncs:
        result["syncs"] = sync_counts(counts)
    return result


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included), from /proc:
    the gateway's own cost per instance, which the machine's load inflates far less than
    its wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_gateway(process: subprocess.Popen[bytes], traced: bool) -> None:
    """SIGTERM to the gateway itself (under strace, strace's child: strace would detach)."""
    if traced:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        for pid in children.read_text().split() if children.exists() else []:
            os.kill(int(pid), signal.SIGTERM)
    else:
        process.terminate()
    process.wait(120)


def sync_counts(path: Path) -> dict[str, int]:
    """``strace -c`` summary rows -> {syscall: calls}."""
    calls: dict[str, int] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1] in SYNC_CALLS.split(",") and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    return calls


def run_tmpfs(files: list[Path], work: Path) -> dict[str, Any]:
    state = Path("/dev/shm") / f"pacsguard-gateway-bench-{os.getpid()}"
    shutil.rmtree(state, ignore_errors=True)
    try:
        return run_gateway(files, work, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (the upper one of an even number)."""
    return sorted(runs, key=lambda r: float(r["seconds"]))[len(runs) // 2]


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument(
        "--only", default="direct,gateway,orthanc-route,orthanc-anon,dcmtk,gateway-tmpfs"
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=1,
        help="concurrent storescu associations (the files split between them)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout's src folder: adds the row gateway-baseline, run from it",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="the gateway's forwarding associations to Orthanc (default: 2, or --senders)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the rows this many times, alternating; medians are reported",
    )
    parser.add_argument(
        "--max-pdu",
        type=int,
        default=None,
        help="the gateway's max_pdu (default: the gateway's own default)",
    )
    args = parser.parse_args()
    global SENDERS, MAX_PDU, CONCURRENCY
    SENDERS, MAX_PDU = max(1, args.senders), args.max_pdu
    CONCURRENCY = args.concurrency or max(2, SENDERS)
    os.environ["TCP_NODELAY"] = "1"  # inherited by every Orthanc and DCMTK server started here
    work = args.workdir.resolve()
    corpus = work / f"corpus-{args.files}-{args.rows}"
    if not (corpus / "corpus.json").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        generate_ct_corpus(corpus, files=args.files, rows=args.rows, cols=args.rows, patients=1)
    files = sorted(corpus.rglob("*.dcm"))
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    runs = {
        "direct": lambda: run_direct(files, work),
        "gateway": lambda: run_gateway(files, work),
        "orthanc-route": lambda: run_router(files, work, anonymize=False),
        "orthanc-anon": lambda: run_router(files, work, anonymize=True),
        "dcmtk": lambda: run_dcmtk(files, work),
        # diagnostic: the same gateway with its state on tmpfs, where fsync costs nothing
        "gateway-tmpfs": lambda: run_tmpfs(files, work),
        # diagnostic: the gateway under strace -c, its fsyncs counted (slower: not a timing)
        "gateway-syncs": lambda: run_gateway(files, work, count_syncs=True),
    }
    if args.baseline is not None:  # the same gateway row, run from the other source tree
        runs["gateway-baseline"] = lambda: run_gateway(files, work, source=args.baseline)
    rounds: dict[str, list[dict[str, Any]]] = {}
    print(
        f"{len(files)} CT instances, {megabytes:.0f} MB, {SENDERS} storescu association(s) at"
        f" once, {args.rounds} round(s), the gateway forwarding on {CONCURRENCY};"
        " DCMTK and Orthanc with TCP_NODELAY=1"
    )
    for number in range(args.rounds):  # rows alternate, so that a busy spell hits them all
        for name in args.only.split(","):
            result = runs[name]()
            rounds.setdefault(name, []).append(result)
            seconds = result["seconds"]
            cpu = ""
            if "cpu_seconds" in result:
                cpu = f"  gateway CPU {result['cpu_seconds'] * 1000 / len(files):5.1f} ms/inst"
            print(f"  {number + 1}: {name:<16} {seconds:7.2f} s  {len(files) / seconds:7.1f} inst/s"
                  f"  {megabytes / seconds:6.1f} MB/s{cpu}  (load {os.getloadavg()[0]:.1f})",
                  flush=True)  # fmt: skip
    results = {name: median_run(runs_) for name, runs_ in rounds.items()}
    direct = results.get("direct", {}).get("seconds")
    if direct:
        print(
            "\nend-to-end time relative to direct storescu -> Orthanc (medians over the rounds;"
            " lower is better):"
        )
        for name, result in results.items():
            each = ""
            if args.rounds > 1 and "direct" in rounds:
                pairs = zip(rounds[name], rounds["direct"], strict=True)
                each = "  rounds: " + ", ".join(
                    f"{r['seconds'] / d['seconds']:.2f}x" for r, d in pairs
                )
            seconds = result["seconds"]
            print(
                f"  {name:<16} {seconds / direct:5.2f}x  {len(files) / seconds:6.1f} inst/s{each}"
            )
    for row in ("gateway", "gateway-tmpfs", "gateway-baseline"):
        if row in rounds:  # every round's instances together
            pooled = sorted(x for r in rounds[row] for x in r["latency"])
            report_latency(row, {**results[row], "latency": pooled})
    if "gateway-syncs" in results:
        syncs = results["gateway-syncs"]["syncs"]
        total = sum(syncs.values())
        print(
            f"gateway-syncs: {total} sync calls ({syncs}), {total / len(files):.2f} per instance"
            " (receive and forward, queue commits included)"
        )
    for runs_ in rounds.values():
        for result in runs_:
            if isinstance(result.get("latency"), list):
                lat = sorted(result["latency"])
                result["latency"] = (
                    {q: percentile(lat, q) for q in (0.5, 0.95, 0.99)} if lat else {}
                )
    (work / "gateway-bench.json").write_text(json.dumps(rounds, indent=1))


def report_latency(row: str, gateway: dict[str, Any] | None) -> None:
    if gateway and gateway["latency"]:
        lat = gateway["latency"]
        print(
            f"{row}: storescu done after {gateway['receive_seconds']:.2f} s; latency receipt ->"
            f" Orthanc ack p50 {percentile(lat, 0.5) * 1000:.0f} ms, p95"
            f" {percentile(lat, 0.95) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms,"
            f" mean {statistics.fmean(lat) * 1000:.0f} ms"
        )
        gateway["latency"] = {q: percentile(lat, q) for q in (0.5, 0.95, 0.99)}


if __name__ == "__main__":
    main()
