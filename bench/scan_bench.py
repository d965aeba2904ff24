"""`pacsguard scan` against `nmap --script dicom-ping` on a loopback lab, plus a 1,000-port sweep.

    .venv/bin/python bench/scan_bench.py --workdir DIR [--listeners 36] [--sweep-ports 1000]

Part 1 starts the scan lab of the tests (Orthanc x3, dcmqrscp x2, storescp plain and TLS,
two plain web servers, a closed port; all loaded with `pacsguard sample` data) and scans it
with both tools, scoring what each finds against the lab's truth. nmap runs the script
forced (`+dicom-ping`) because the lab listens on high ports that its port rule skips.

Part 2 starts a few dozen storescp listeners inside a block of 1,000 loopback ports and
times a sweep of the whole block by both tools. Everything targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from pacsguard.lab import Lab
from pacsguard.lab.dcmtk import start_storescp
from pacsguard.lab.procs import Server

HOST = "127.0.0.1"
PACSGUARD = str(Path(sys.executable).with_name("pacsguard"))


def timed(argv: list[str], timeout: float = 900) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return time.perf_counter() - start, done


def nmap(ports: list[int], xml_out: Path) -> tuple[float, dict[int, str]]:
    """Seconds taken and, per open port, the dicom-ping output ('' when it said nothing)."""
    argv = ["nmap", "-Pn", "-n", "-p", ",".join(map(str, ports)), "--script", "+dicom-ping"]
    seconds, done = timed([*argv, "-oX", str(xml_out), HOST])
    if done.returncode != 0:
        raise SystemExit(f"nmap failed: {done.stderr[-500:]}")
    found: dict[int, str] = {}
    for port in ET.parse(xml_out).getroot().iter("port"):
        state = port.find("state")
        if state is None or state.get("state") != "open":
            continue
        script = port.find("script[@id='dicom-ping']")
        found[int(port.get("portid", "0"))] = script.get("output", "") if script is not None else ""
    return seconds, found


def pacsguard(ports: list[int], json_out: Path, *extra: str) -> tuple[float, dict[int, Any]]:
    argv = [PACSGUARD, "scan", HOST, "--ports", ",".join(map(str, ports)), "--no-history", "-q"]
    seconds, done = timed([*argv, "--json", str(json_out), *extra])
    if done.returncode != 0:
        raise SystemExit(f"pacsguard scan failed: {done.stderr[-500:]}")
    findings = json.loads(json_out.read_text())["findings"]
    return seconds, {f["port"]: f for f in findings}


def nmap_says(output: str) -> tuple[bool, str | None]:
    """(DICOM found, access) from dicom-ping's text."""
    if "DICOM Service Provider discovered" not in output:
        return False, None
    if "Any AET is accepted" in output:
        return True, "anonymous"
    return True, "none"


def score_lab(lab: Lab, work: Path) -> dict[str, Any]:
    ports = lab.ports
    pg_seconds, pg = pacsguard(
        ports, work / "lab-pacsguard.json", "--check-default-credentials", "--timeout", "3"
    )
    nm_seconds, nm = nmap(ports, work / "lab-nmap.xml")
    totals = lab.totals
    truth_counts = (totals.patients, totals.studies, totals.series, totals.instances)
    rows = []
    for e in lab.expected:
        access = "default-credentials" if e.severity_with_credentials else e.access
        severity = e.severity_with_credentials or e.severity
        f = pg.get(e.port)
        pg_counts = (
            tuple(f["exposed"][k] for k in ("patients", "studies", "series", "instances"))
            if f
            else None
        )
        want_counts = (
            truth_counts if (e.exposes_all or e.severity_with_credentials) else (None,) * 4
        )
        nm_dicom, nm_access = nmap_says(nm.get(e.port, ""))
        rows.append(
            {
                "name": e.name,
                "port": e.port,
                "truth": {"service": e.service, "severity": severity, "access": access},
                "pacsguard": {
                    "service": f and f["service"],
                    "severity": f and f["severity"],
                    "access": f and f["access"],
                    "counts": pg_counts,
                },
                "pacsguard_right": bool(
                    f
                    and (f["service"], f["severity"], f["access"]) == (e.service, severity, access)
                    and pg_counts == want_counts
                ),
                "nmap": {"open": e.port in nm, "dicom": nm_dicom, "access": nm_access},
            }
        )
    dicom = [r for r in rows if r["truth"]["service"].startswith("dicom")]
    readable = [r for r in rows if r["truth"]["severity"] in ("critical", "high")]
    return {
        "rows": rows,
        "closed_port_clean": lab.closed_port not in pg and lab.closed_port not in nm,
        "pacsguard_seconds": pg_seconds,
        "nmap_seconds": nm_seconds,
        "services": len(rows),
        "dicom_services": len(dicom),
        "readable_services": len(readable),
        "pacsguard_dicom_found": sum(
            1 for r in dicom if r["pacsguard"]["service"] == r["truth"]["service"]
        ),
        "nmap_dicom_found": sum(1 for r in dicom if r["nmap"]["dicom"]),
        "pacsguard_all_right": sum(1 for r in rows if r["pacsguard_right"]),
        "pacsguard_readable_found": sum(
            1 for r in readable if r["pacsguard"]["severity"] in ("critical", "high")
        ),
        "nmap_readable_found": sum(1 for r in readable if r["nmap"]["access"] == "anonymous"),
        "truth_counts": truth_counts,
    }


def free_block(size: int) -> int:
    """A base port such that base..base+size-1 on 127.0.0.1 are all free right now."""
    rng = random.Random(2762)
    for _ in range(50):
        base = rng.randrange(20000, 60000 - size)
        if all(_free(p) for p in range(base, base + size)):
            return base
    raise SystemExit("no block of free loopback ports found")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def sweep(work: Path, listeners: int, size: int) -> dict[str, Any]:
    base = free_block(size)
    ports = list(range(base, base + size))
    live = sorted(random.Random(104).sample(ports, listeners))
    servers: list[Server] = []
    try:
        for index, port in enumerate(live):
            servers.append(start_storescp(f"sweep-{index}", port, work / "sweep"))
        default_s, default_found = pacsguard(ports, work / "sweep-default.json")
        fast_s, fast_found = pacsguard(
            ports, work / "sweep-fast.json", "--rate", "5000", "--host-rate", "5000"
        )
        nm_s, nm_found = nmap(ports, work / "sweep-nmap.xml")
    finally:
        for server in servers:
            server.stop()
    return {
        "ports": size,
        "listeners": listeners,
        "pacsguard_default_seconds": default_s,
        "pacsguard_default_found": sum(
            1 for p in live if default_found.get(p, {}).get("service") == "dicom"
        ),
        "pacsguard_fast_seconds": fast_s,
        "pacsguard_fast_found": sum(
            1 for p in live if fast_found.get(p, {}).get("service") == "dicom"
        ),
        "nmap_seconds": nm_s,
        "nmap_found": sum(1 for p in live if nmap_says(nm_found.get(p, ""))[0]),
        "false_positives": sorted(set(default_found) - set(live)),
    }


def _lab_lines(lab: dict[str, Any]) -> list[str]:
    lines = [f"## Lab: {lab['services']} services + 1 closed port; truth {lab['truth_counts']}"]
    lines += ["(patients, studies, series, instances) in each loaded archive", ""]
    lines.append(f"{'service':24} {'truth':30} {'pacsguard':44} nmap dicom-ping")
    for r in lab["rows"]:
        t, p, n = r["truth"], r["pacsguard"], r["nmap"]
        truth = f"{t['service']}/{t['severity']}/{t['access']}"
        known = p["counts"] is not None and p["counts"][1] is not None
        counts = "/".join(map(str, p["counts"])) if known else "-"
        got = f"{p['service']}/{p['severity']}/{p['access']} {counts}"
        got += " ok" if r["pacsguard_right"] else " WRONG"
        aet = "any AET" if n["access"] == "anonymous" else "AET checked"
        nm = f"DICOM, {aet}" if n["dicom"] else "not DICOM"
        lines.append(f"{r['name']:24} {truth:30} {got:44} {nm}")
    dicom, readable, services = lab["dicom_services"], lab["readable_services"], lab["services"]
    lines += [
        "",
        f"DICOM services found:        pacsguard {lab['pacsguard_dicom_found']}/{dicom}"
        f"   nmap {lab['nmap_dicom_found']}/{dicom}",
        f"services with readable data: pacsguard {lab['pacsguard_readable_found']}/{readable}"
        f"   nmap {lab['nmap_readable_found']}/{readable} (nmap counts nothing)",
        "findings fully right (service, severity, access, exact counts): "
        f"pacsguard {lab['pacsguard_all_right']}/{services}",
        f"closed port reported by neither: {lab['closed_port_clean']}",
        f"time: pacsguard {lab['pacsguard_seconds']:.1f} s   nmap {lab['nmap_seconds']:.1f} s",
    ]
    return lines


def _sweep_lines(swept: dict[str, Any]) -> list[str]:
    n = swept["listeners"]
    rows = [
        ("pacsguard, default politeness (50 conn/s/host)", "pacsguard_default"),
        ("pacsguard --rate 5000 --host-rate 5000", "pacsguard_fast"),
        ("nmap -p BLOCK --script +dicom-ping", "nmap"),
    ]
    lines = [f"## Sweep: {swept['ports']} loopback ports, {n} storescp listeners"]
    for label, key in rows:
        lines.append(
            f"{label:48} {swept[key + '_seconds']:6.1f} s  {swept[key + '_found']}/{n} found"
        )
    lines.append(f"false positives (pacsguard): {swept['false_positives']}")
    return lines


def report(lab: dict[str, Any], swept: dict[str, Any]) -> str:
    lines = ["# pacsguard scan vs nmap dicom-ping (127.0.0.1 only)", ""]
    lines += [*_lab_lines(lab), "", *_sweep_lines(swept)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--listeners", type=int, default=36)
    parser.add_argument("--sweep-ports", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("nmap") is None:
        raise SystemExit("nmap is not installed (bench/debian-packages.txt)")
    work: Path = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with Lab(work / "lab") as lab:
        lab_scores = score_lab(lab, work)
    swept = sweep(work, args.listeners, args.sweep_ports)
    text = report(lab_scores, swept)
    (work / "scan-bench.md").write_text(text)
    (work / "scan-bench.json").write_text(json.dumps({"lab": lab_scores, "sweep": swept}, indent=2))
    print(text, end="")


if __name__ == "__main__":
    main()
