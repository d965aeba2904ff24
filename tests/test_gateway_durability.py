"""`pacsguard gateway` loses nothing: a destination down (Orthanc stopped while studies
arrive), dead letters past a short maximum age and `gateway retry`, and `kill -9` of the
gateway at random moments while storescu sends and while it forwards. The destination
ends with exactly the instances sent: every acknowledged one, no duplicate, no partial
file left in the spool."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.lab import dcmtk, orthanc
from pacsguard.lab.procs import Server, free_ports
from pacsguard.sample import generate_ct_corpus
from test_gateway_support import (
    KEY,
    GatewayProcess,
    gateway_status,
    pacsguard,
    wait_for,
    write_config,
)
from test_net_support import dcmtk_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def nodelay_peers() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TCP_NODELAY", "1")
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("corpus")
    generate_ct_corpus(root, files=80, rows=64, cols=64, patients=4, seed=3)
    return sorted(root.rglob("*.dcm"))


@pytest.fixture(scope="module")
def deid_uid(corpus: list[Path]) -> dict[Path, str]:
    """The de-identified SOP Instance UID of each file: the keyed UID function of the
    pseudonym family (the same as `pacsguard deid`'s, checked file for file in
    test_gateway_orthanc)."""
    pseudonyms = Pseudonymizer(KEY)
    return {
        path: pseudonyms.uid(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
        for path in corpus
    }


def orthanc_uids(spec: orthanc.OrthancSpec) -> list[str]:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{spec.http_port}", timeout=60, trust_env=False
    ) as c:
        found = c.post(
            "/tools/find", json={"Level": "Instance", "Query": {}, "Expand": True}
        ).json()
    return [item["MainDicomTags"]["SOPInstanceUID"] for item in found]


def storescu_popen(port: int, files: list[Path], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    argv = ["storescu", "-v", "-nh", "-aet", "MODALITY1", "-aec", "PGGATE", "127.0.0.1", str(port)]
    return subprocess.Popen([*argv, *map(str, files)], stdout=handle, stderr=subprocess.STDOUT,
                            env=dcmtk_env())  # fmt: skip


def acknowledged(log: Path) -> set[Path]:
    """Files whose C-STORE response was Success, from storescu -v's log."""
    acked, current = set(), None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("I: Sending file: "):
            current = Path(line.removeprefix("I: Sending file: ").strip())
        elif line.startswith("I: Received Store Response (Success)") and current is not None:
            acked.add(current)
            current = None
    return acked


def queue_counts(state: Path) -> dict[str, int]:
    db = sqlite3.connect(state / "queue.sqlite", timeout=30)
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall())
    finally:
        db.close()


def spool_is_clean(state: Path) -> None:
    spool = state / "spool"
    assert not list((spool / "incoming").iterdir())
    assert not [p for p in spool.rglob("*") if p.is_file()]


def test_destination_down_then_back_and_dead_letters(
    tmp_path: Path, corpus: list[Path], deid_uid: dict[Path, str]
) -> None:
    files = corpus[:40]
    ports = free_ports(4)
    research = orthanc.OrthancSpec("research", ports[0], ports[1])
    archive_port = ports[2]
    config = write_config(
        tmp_path,
        port=ports[3],
        destinations=[
            {"name": "research", "type": "dicom", "ae_title": "ORTHANC", "host": "127.0.0.1",
             "port": research.dicom_port, "retry_initial": 0.2, "retry_max": 1.0},
            {"name": "archive", "type": "dicom", "ae_title": "ARCHIVE", "host": "127.0.0.1",
             "port": archive_port, "retry_initial": 0.2, "retry_max": 0.5, "max_age": 3},
        ],
    )  # fmt: skip
    gateway = GatewayProcess(config, ports[3], tmp_path / "gateway.log").start()
    servers: list[Server] = []
    try:
        servers.append(orthanc.start(research, tmp_path))
        first = storescu_popen(ports[3], files[:20], tmp_path / "s1.log")
        assert first.wait(120) == 0
        servers.pop().stop()  # Orthanc goes down while studies arrive
        second = storescu_popen(ports[3], files[20:], tmp_path / "s2.log")
        assert second.wait(120) == 0  # the gateway still answers Success: they are spooled
        assert acknowledged(tmp_path / "s1.log") | acknowledged(tmp_path / "s2.log") == set(files)
        status = gateway_status(config)
        assert status["accepted"] == 40
        assert status["destinations"]["research"]["queued"] > 0
        servers.append(orthanc.start(research, tmp_path))  # back, same storage
        wait_for(lambda: gateway_status(config)["destinations"]["research"]["sent"] == 40)
        assert sorted(orthanc_uids(research)) == sorted(deid_uid[p] for p in files)
        # the archive never came up: past max_age everything is a dead letter, with a reason
        wait_for(lambda: gateway_status(config)["destinations"]["archive"]["dead_letter"] == 40)
        dead = tmp_path / "state" / "dead-letter" / "archive"
        reasons = [json.loads(p.read_text()) for p in dead.glob("*.json")]
        assert len(reasons) == 40 and len(list(dead.glob("*.dcm"))) == 40
        assert {r["reason"] for r in reasons} == {"no association"}
        assert {r["uid"] for r in reasons} == {deid_uid[p] for p in files}
        # the spool keeps what a destination has not confirmed
        spooled = [p for p in (tmp_path / "state" / "spool" / "work").rglob("*.dcm")]
        assert len(spooled) == 40
        servers.append(dcmtk.start_storescp("archive", archive_port, tmp_path))
        done = pacsguard("gateway", "retry", "archive", "--config", str(config))
        assert done.returncode == 0 and "requeued 40" in done.stdout, done.stderr
        wait_for(lambda: gateway_status(config)["destinations"]["archive"]["sent"] == 40)
        received = list((tmp_path / "storescp-archive" / "received").iterdir())
        assert len(received) == 40
        assert not list(dead.iterdir())
        assert gateway.terminate() == 0
        spool_is_clean(tmp_path / "state")
    finally:
        gateway.terminate()
        for server in servers:
            server.stop()


def test_kill_minus_9_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, corpus: list[Path], deid_uid: dict[Path, str]
) -> None:
    rng = random.Random(20261201)
    ports = free_ports(3)
    research = orthanc.OrthancSpec("crash", ports[0], ports[1])
    config = write_config(
        tmp_path,
        port=ports[2],
        destinations=[{"name": "research", "type": "dicom", "ae_title": "ORTHANC",
                       "host": "127.0.0.1", "port": research.dicom_port,
                       "retry_initial": 0.2, "retry_max": 1.0, "batch": 4, "concurrency": 1}],
    )  # fmt: skip
    state = tmp_path / "state"
    acked: set[Path] = set()
    server = orthanc.start(research, tmp_path)
    gateway: GatewayProcess | None = None
    try:
        # kills in the middle of storescu transfers
        # (the kill rounds send the first half only: on a quiet machine a whole round may
        # finish before its kill, and the forwarding phase below needs instances left)
        first_half = corpus[: len(corpus) // 2]
        for round_ in range(3):
            gateway = GatewayProcess(config, ports[2], tmp_path / "gateway.log").start()
            todo = [p for p in first_half if p not in acked]
            if not todo:
                gateway.kill()
                break
            log = tmp_path / f"storescu-{round_}.log"
            sender = storescu_popen(ports[2], todo, log)
            time.sleep(rng.uniform(0.3, 1.2))
            gateway.kill()
            sender.wait(120)
            acked |= acknowledged(log)
        assert acked, "no instance was acknowledged before the kills"
        # a kill in the middle of forwarding: the destination is down while we receive
        server.stop()
        gateway = GatewayProcess(config, ports[2], tmp_path / "gateway.log").start()
        todo = [p for p in corpus if p not in acked]
        log = tmp_path / "storescu-all.log"
        assert storescu_popen(ports[2], todo, log).wait(300) == 0
        acked |= acknowledged(log)
        assert acked == set(corpus)
        server = orthanc.start(research, tmp_path)
        wait_for(lambda: queue_counts(state).get("sent", 0) > 0, every=0.02)
        gateway.kill()
        assert queue_counts(state).get("queued", 0) > 0, "killed too late to test forwarding"
        # restart: the queue drains, resends land on the same instances
        gateway = GatewayProcess(config, ports[2], tmp_path / "gateway.log").start()
        wait_for(lambda: queue_counts(state).get("queued", 0) == 0)
        assert gateway.terminate() == 0
        uids = orthanc_uids(research)
        assert len(uids) == len(set(uids)) == len(corpus)
        assert set(uids) == {deid_uid[p] for p in corpus}
        spool_is_clean(state)
        assert not list(state.rglob(".tmp-*"))
        # every instance is still readable and whole at the destination
        with httpx.Client(base_url=f"http://127.0.0.1:{research.http_port}", trust_env=False) as c:
            ids = c.get("/instances").json()
            for instance in rng.sample(ids, 10):
                blob = c.get(f"/instances/{instance}/file").content
                assert pydicom.dcmread(io.BytesIO(blob)).pixel_array.shape == (64, 64)
    finally:
        if gateway is not None and gateway.process is not None and gateway.process.poll() is None:
            gateway.kill()  # a failed assertion must not leave a gateway running
        server.stop()
