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


def storescu(port: int, aec: str, files: list[Path], log: Path) -> None:
    argv = ["storescu", "-aet", "MODALITY1", "-aec", aec, "127.0.0.1", str(port)]
    with log.open("wb") as handle:
        done = subprocess.run([*argv, *map(str, files)], stdout=handle, stderr=subprocess.STDOUT,
                              env={**os.environ, "TCP_NODELAY": "1"}, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"storescu failed ({done.returncode}); see {log}")


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


def run_gateway(files: list[Path], work: Path, state: Path | None = None) -> dict[str, Any]:
    """``state``: where the spool and queue live (default on the work disk)."""
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
        f'host = "127.0.0.1"\nport = {sink.dicom_port}\nconcurrency = 2\nbatch = 32\n'
    )
    log = (gw / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pacsguard", "gateway", "run", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        while not listening(port):
            if process.poll() is not None:
                raise SystemExit(f"gateway exited; see {gw / 'gateway.log'}")
            time.sleep(0.05)
        start = time.perf_counter()
        storescu(port, "PGGATE", files, work / "gateway-storescu.log")
        received = time.perf_counter()
        end = wait_count(sink, len(files))
        db = sqlite3.connect((state or gw / "state") / "queue.sqlite")
        latencies = sorted(
            row[0]
            for row in db.execute(
                "SELECT d.sent_at - i.received_at FROM deliveries d"
                " JOIN instances i ON i.id = d.instance_id WHERE d.state = 'sent'"
            )
        )
        db.close()
        return {"seconds": end - start, "receive_seconds": received - start,
                "latency": latencies}  # fmt: skip
    finally:
        process.terminate()
        process.wait(60)
        log.close()
        sink_server.stop()


def run_tmpfs(files: list[Path], work: Path) -> dict[str, Any]:
    state = Path("/dev/shm") / f"pacsguard-gateway-bench-{os.getpid()}"
    shutil.rmtree(state, ignore_errors=True)
    try:
        return run_gateway(files, work, state)
    finally:
        shutil.rmtree(state, ignore_errors=True)


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
    args = parser.parse_args()
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
    }
    results: dict[str, dict[str, Any]] = {}
    print(f"{len(files)} CT instances, {megabytes:.0f} MB; DCMTK and Orthanc with TCP_NODELAY=1")
    for name in args.only.split(","):
        results[name] = runs[name]()
        seconds = results[name]["seconds"]
        print(f"  {name:<14} {seconds:7.2f} s  {len(files) / seconds:7.1f} inst/s  "
              f"{megabytes / seconds:6.1f} MB/s", flush=True)  # fmt: skip
    direct = results.get("direct", {}).get("seconds")
    if direct:
        print("\nend-to-end time relative to direct storescu -> Orthanc (lower is better):")
        for name, result in results.items():
            print(f"  {name:<14} {result['seconds'] / direct:5.2f}x")
    for row in ("gateway", "gateway-tmpfs"):
        report_latency(row, results.get(row))
    (work / "gateway-bench.json").write_text(json.dumps(results, indent=1))


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
