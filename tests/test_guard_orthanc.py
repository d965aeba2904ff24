"""`pacsguard guard` in front of a real Orthanc (open: any calling AE, no called-AE check),
loaded with `pacsguard sample` data; DCMTK clients through the guard; what Orthanc saw is
read from its own log. `pacsguard scan` grades Orthanc critical and the guard protected."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from pacsguard.core.keys import new_key
from pacsguard.guard import Guard, lab, parse_config
from pacsguard.lab.data import LabData, make_data
from pacsguard.lab.procs import LOOPBACK, free_ports
from test_guard_support import (
    echo,
    echo_ok,
    find,
    find_ok,
    find_responses,
    get,
    get_ok,
    move,
    move_ok,
)

PACSGUARD = str(Path(sys.executable).with_name("pacsguard"))


@dataclass
class OrthancLab:
    work: Path
    data: LabData
    orthanc: lab.OrthancArchive
    store: lab.Receiver
    guard: Guard
    port: int

    @property
    def log(self) -> Path:
        return self.work / "orthanc-pacs" / "orthanc.log"

    def seen(self) -> list[str]:
        """Orthanc's 'Incoming X request from AET Y' lines, as 'X from Y'."""
        text = self.log.read_text(errors="replace")
        return [
            f"{m[0]} from {m[1]}"
            for m in re.findall(r"Incoming (\w+) request from AET (\S+)", text)
        ]

    def studies(self) -> list[str]:
        with httpx.Client(base_url=self.orthanc.url, trust_env=False, timeout=30) as client:
            ids = client.get("/studies").json()
            return [
                client.get(f"/studies/{i}").json()["MainDicomTags"]["StudyInstanceUID"] for i in ids
            ]


@pytest.fixture(scope="module")
def olab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancLab]:
    work = tmp_path_factory.mktemp("guard-orthanc")
    gport, dicom, http, sport = free_ports(4)
    data = make_data(work / "sample", seed=5, patients=2)
    new_key(work / "project.key")
    servers = []
    guard = None
    try:
        orthanc = lab.start_orthanc(
            work, dicom, http, "ARCHIVE",
            {"PACS": (LOOPBACK, gport), "VIEWERSTORE": (LOOPBACK, sport)},
        )  # fmt: skip
        servers.append(orthanc.server)
        with httpx.Client(base_url=orthanc.url, trust_env=False, timeout=30) as client:
            for path in data.files:
                assert client.post("/instances", content=path.read_bytes()).status_code == 200
        store = lab.start_storescp(work, sport, "viewer")
        servers.append(store.server)
        clients = [
            {"name": "viewer", "ae_title": "VIEWER", "host": LOOPBACK,
             "allow": ["echo", "find", "move", "get"], "move_destinations": ["VIEWERSTORE"]},
            {"name": "echo-only", "ae_title": "ECHOONLY", "host": LOOPBACK, "allow": ["echo"]},
            {"name": "research", "ae_title": "RESEARCH", "host": LOOPBACK,
             "allow": ["find", "get"], "role": "research"},
        ]  # fmt: skip
        config = {
            "guard": {
                "ae_title": "PACS", "port": gport, "key_file": "project.key", "state": "state",
                "upstream": {"ae_title": "ARCHIVE", "host": LOOPBACK, "port": dicom},
                "client": clients,
                "destination": [{"ae_title": "VIEWERSTORE", "host": LOOPBACK, "port": sport}],
            }
        }  # fmt: skip
        guard = Guard(parse_config(config, work / "guard.toml"))
        guard.start()
        yield OrthancLab(work, data, orthanc, store, guard, gport)
    finally:
        if guard is not None:
            guard.stop()
        for server in reversed(servers):
            server.stop()


def _settle(olab: OrthancLab, count: int, wait: float = 5.0) -> list[str]:
    deadline = time.monotonic() + wait
    while len(seen := olab.seen()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_orthanc_behind_the_guard(olab: OrthancLab, tmp_path: Path) -> None:
    before = len(olab.seen())
    studies = olab.studies()
    assert echo_ok(echo("VIEWER", olab.port))
    found = find("VIEWER", olab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_ok(found) and find_responses(found) == len(studies)
    study = studies[0]
    with httpx.Client(base_url=olab.orthanc.url, trust_env=False) as client:
        ids = client.post("/tools/lookup", content=study).json()
        count = len(client.get(f"/studies/{ids[0]['ID']}/instances").json())
    moved = move("VIEWER", olab.port, "VIEWERSTORE", "QueryRetrieveLevel=STUDY",
                 f"StudyInstanceUID={study}")  # fmt: skip
    assert move_ok(moved), moved.output
    assert len(olab.store.received()) == count
    got = get(
        "VIEWER", olab.port, tmp_path, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}"
    )
    assert get_ok(got) and len(list(tmp_path.iterdir())) == count
    seen = _settle(olab, before + 4)[before:]
    # Orthanc saw each request once, always from the guard's AE title, never the client's
    assert sorted(seen) == ["Echo from PACS", "Find from PACS", "Get from PACS", "Move from PACS"]


def test_refused_requests_never_reach_orthanc(olab: OrthancLab, tmp_path: Path) -> None:
    before = len(olab.seen())
    study = f"StudyInstanceUID={olab.studies()[0]}"
    assert find_responses(find("ECHOONLY", olab.port, "QueryRetrieveLevel=STUDY", study)) == 0
    assert not move_ok(
        move("ECHOONLY", olab.port, "VIEWERSTORE", "QueryRetrieveLevel=STUDY", study)
    )
    assert not get_ok(get("ECHOONLY", olab.port, tmp_path, "QueryRetrieveLevel=STUDY", study))
    research = find("RESEARCH", olab.port, "QueryRetrieveLevel=STUDY", "PatientName=*")
    assert find_responses(research) == 0 and not find_ok(research)
    time.sleep(0.5)
    assert olab.seen()[before:] == []


def test_research_retrieve_from_orthanc_is_clean(olab: OrthancLab, tmp_path: Path) -> None:
    found = find("RESEARCH", olab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID",
                 "PatientName", "PatientID")  # fmt: skip
    assert find_ok(found) and find_responses(found) == len(olab.studies())
    assert not [v for v in olab.data.planted if v in found.output]
    pseudonyms = re.findall(r"\(0020,000d\) UI \[([\d.]+)", found.output)
    assert pseudonyms and all(p.startswith("2.25.") for p in pseudonyms)
    got = get("RESEARCH", olab.port, tmp_path, "QueryRetrieveLevel=STUDY",
              f"StudyInstanceUID={pseudonyms[0]}")  # fmt: skip
    assert get_ok(got), got.output
    files = list(tmp_path.iterdir())
    assert files
    assert f"Number of Completed Suboperations : {len(files)}" in got.output
    for path in files:
        assert str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID) == pseudonyms[0]
        text = path.read_bytes().decode("latin-1")
        assert not [v for v in olab.data.planted if v in text]


def test_scan_sees_orthanc_critical_and_the_guard_protected(
    olab: OrthancLab, tmp_path: Path
) -> None:
    report = tmp_path / "scan.json"
    ports = f"{olab.orthanc.dicom_port},{olab.port}"
    done = subprocess.run(
        [PACSGUARD, "scan", LOOPBACK, "--ports", ports, "--timeout", "3", "--json", str(report),
         "--db", str(tmp_path / "history.sqlite")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    findings = {f["port"]: f for f in json.loads(report.read_text())["findings"]}
    direct, guarded = findings[olab.orthanc.dicom_port], findings.get(olab.port)
    assert (direct["severity"], direct["access"]) == ("critical", "anonymous")
    assert guarded is not None and guarded["severity"] == "info" and guarded["access"] == "none"
    assert guarded["exposed"]["studies"] is None
    # the loop closed: the exposed PACS is told to put the guard in front, with a config
    # for that very address; the guarded address needs none
    assert any("pacsguard guard" in fix for fix in direct["remediation"])
    snippet = tomllib.loads(direct["guard_config"])["guard"]
    assert (snippet["host"], snippet["port"]) == (LOOPBACK, olab.orthanc.dicom_port)
    assert guarded["guard_config"] is None
