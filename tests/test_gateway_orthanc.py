"""`pacsguard gateway` between real peers on 127.0.0.1: DCMTK storescu sends the sample
(several patients, CT, MR, US, SR, RTSTRUCT, RLE, deflated, big endian, a bare dataset);
the gateway forwards to Orthanc by C-STORE, to a second Orthanc's DICOMweb plugin by
STOW-RS, and to a folder. Asserted through Orthanc's REST API against an offline
`pacsguard deid` of the same files with the same key: exact counts, equal pseudonyms
and UIDs, every planted identifier absent, every reference resolving."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.lab import orthanc
from pacsguard.lab.data import LabData, make_data
from pacsguard.lab.procs import Server, free_ports
from pacsguard.net import NoDelayAE
from pacsguard.pack import preflight
from test_gateway_support import (
    GatewayProcess,
    gateway_status,
    pacsguard,
    storescu,
    wait_for,
    write_config,
    write_key,
)
from test_net_support import Pki, make_pki

# storescu proposes uncompressed syntaxes unless told: one flag per encoding it must offer.
PROPOSE = {
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.2": "-xb",
}
UID_REF_TAGS = ("ReferencedSOPInstanceUID",)


@pytest.fixture(scope="module", autouse=True)
def nodelay_peers() -> Iterator[None]:
    """DCMTK and Orthanc leave Nagle's algorithm on unless TCP_NODELAY=1 is set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TCP_NODELAY", "1")
        yield


@dataclass
class Node:
    work: Path
    data: LabData
    config: Path
    gateway: GatewayProcess
    port: int
    stow_port: int
    research: orthanc.OrthancSpec
    web: orthanc.OrthancSpec
    folder: Path
    sent: dict[str, str]  # storescu's output per batch
    pki: Pki
    tls_port: int
    status_port: int

    def rest(self, spec: orthanc.OrthancSpec) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{spec.http_port}", timeout=60, trust_env=False
        )


def send_sample(port: int, data: LabData) -> dict[str, str]:
    """Each file with the flag that makes storescu propose its transfer syntax."""
    groups: dict[str, list[Path]] = {}
    for path in data.files:
        syntax = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(PROPOSE.get(syntax, ""), []).append(path)
    out = {}
    for flag, files in groups.items():
        done = storescu(port, files, *([flag] if flag else []), "-nh")
        out[flag or "uncompressed"] = done.stderr
        assert done.returncode == 0, done.stderr[-2000:]
    done = storescu(port, data.headerless, "-f", "-nh")
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("gateway")
    data = make_data(work / "sample", seed=7, patients=3)
    ports = free_ports(8)
    pki = make_pki(work / "pki")
    research = orthanc.OrthancSpec("research", ports[0], ports[1])
    web = orthanc.OrthancSpec("web", ports[2], ports[3], plugins=(orthanc.DICOMWEB,))
    servers: list[Server] = []
    token = work / "token"
    token.write_text("not-a-real-token\n")
    token.chmod(0o600)
    folder = work / "folder-out"
    config = write_config(
        work,
        port=ports[4],
        destinations=[
            {"name": "research", "type": "dicom", "ae_title": "ORTHANC", "host": "127.0.0.1",
             "port": research.dicom_port},
            {"name": "web", "type": "stow", "url": f"http://127.0.0.1:{web.http_port}/dicom-web",
             "token_file": str(token)},
            {"name": "folder", "type": "folder", "path": str(folder)},
            {"name": "ct-from-modality1", "type": "folder", "path": str(work / "ct-only"),
             "route": [{"modality": ["CT"], "calling_ae": ["MODALITY1"]}]},
        ],
        tables={
            "stow": {"port": ports[5]},
            "audit": {"dicom_messages": True},
            "status": {"port": ports[7]},
            "tls": {"port": ports[6], "cert_file": str(pki.server_cert),
                    "key_file": str(pki.server_key), "ca_file": str(pki.ca)},
        },
        allow=[{"ae_title": "MODALITY1", "host": "127.0.0.1"},
               {"ae_title": "TLSMOD", "host": "127.0.0.1", "subject": pki.client_subject}],
    )  # fmt: skip
    gateway = GatewayProcess(config, ports[4], work / "gateway.log")
    try:
        servers += [orthanc.start(research, work), orthanc.start(web, work)]
        gateway.start()
        sent = send_sample(ports[4], data)
        yield Node(work, data, config, gateway, ports[4], ports[5], research, web, folder, sent,
                   pki, ports[6], ports[7])  # fmt: skip
    finally:
        gateway.terminate()
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def offline(node: Node) -> Path:
    """`pacsguard deid` of the same files, same key, same options."""
    out = node.work / "offline"
    key = write_key(node.work)
    done = pacsguard(
        "deid", *map(str, [*node.data.files, *node.data.headerless]), str(out),
        "--key", str(key), "--option", "retain-long-modified-dates",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def drained(node: Node) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = gateway_status(node.config)
        dests = status["destinations"].values()
        return status if all(d["queued"] == 0 for d in dests) and status["spooled"] == 0 else None

    return dict(wait_for(done, timeout=120))


def dicom_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm") if not p.name.startswith(".tmp-"))


def orthanc_files(client: httpx.Client) -> list[bytes]:
    ids = client.get("/instances").json()
    return [client.get(f"/instances/{i}/file").content for i in ids]


def identity(ds: Dataset) -> tuple[str, str, str, str]:
    return (str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID))  # fmt: skip


def references(ds: Dataset) -> set[str]:
    found: set[str] = set()

    def walk(d: Dataset) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.keyword in UID_REF_TAGS:
                found.add(str(elem.value))

    walk(ds)
    return found


def resolving(datasets: list[Dataset]) -> int:
    sops = {str(ds.SOPInstanceUID) for ds in datasets}
    return sum(len(references(ds) & sops) for ds in datasets)


def test_every_instance_reaches_every_destination_once(node: Node, offline: Path) -> None:
    status = drained(node)
    expected = dicom_files(offline)
    assert len(expected) == len(node.data.files) + len(node.data.headerless)
    assert status["accepted"] == len(expected)
    assert status["quarantined"] == 0 and status["refused"] == 0
    for name in ("research", "web", "folder"):
        assert status["destinations"][name] == {**status["destinations"][name],
            "queued": 0, "sent": len(expected), "dead_letter": 0}  # fmt: skip
    for spec in (node.research, node.web):
        with node.rest(spec) as client:
            assert client.get("/statistics").json()["CountInstances"] == len(expected)
    # the folder destination is the same tree as `deid`
    rel = sorted(str(p.relative_to(node.folder)) for p in dicom_files(node.folder))
    assert rel == sorted(str(p.relative_to(offline)) for p in expected)


def test_routing_rules_pick_instances_by_modality_and_calling_ae(node: Node, offline: Path) -> None:
    drained(node)
    routed = sorted(
        p.relative_to(node.work / "ct-only") for p in dicom_files(node.work / "ct-only")
    )
    want = sorted(
        p.relative_to(offline)
        for p in dicom_files(offline)
        if pydicom.dcmread(p, stop_before_pixels=True).Modality == "CT"
    )
    assert routed == want and 0 < len(want) < len(dicom_files(offline))


def test_status_endpoint_and_prometheus_metrics(node: Node) -> None:
    status = drained(node)
    base = f"http://127.0.0.1:{node.status_port}"
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        served = client.get("/status").json()
        metrics = client.get("/metrics").text
    assert served["accepted"] == status["accepted"]
    assert served["destinations"]["research"]["sent"] == status["destinations"]["research"]["sent"]
    assert f"pacsguard_gateway_accepted_total {float(status['accepted'])}" in metrics
    assert 'pacsguard_gateway_queued{destination="research"} 0.0' in metrics
    assert 'pacsguard_gateway_forward_latency_seconds_count{destination="web"}' in metrics
    for marker in node.data.planted:
        assert marker not in metrics


def test_pseudonyms_and_uids_equal_the_offline_run(node: Node, offline: Path) -> None:
    drained(node)
    want = {identity(pydicom.dcmread(p, stop_before_pixels=True)) for p in dicom_files(offline)}
    for spec in (node.research, node.web):
        with node.rest(spec) as client:
            got = {identity(pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True))
                   for b in orthanc_files(client)}  # fmt: skip
        assert got == want
    # data sets (file meta aside) are the same, element for element
    for path in dicom_files(offline):
        mine = pydicom.dcmread(node.folder / path.relative_to(offline))
        theirs = pydicom.dcmread(path)
        assert mine == theirs, path.relative_to(offline)


def test_no_planted_identifier_and_every_reference_resolves(node: Node) -> None:
    drained(node)
    with node.rest(node.research) as client:
        blobs = orthanc_files(client)
    datasets = [pydicom.dcmread(io.BytesIO(b)) for b in blobs]
    originals = [pydicom.dcmread(p, force=True) for p in [*node.data.files, *node.data.headerless]]
    # A reference that resolved inside the sample resolves after de-identification (and
    # the sample's references to objects outside it stay unresolved, consistently).
    assert resolving(datasets) == resolving(originals) > 0
    for blob in blobs:
        for marker in node.data.planted:
            assert marker.encode() not in blob
    logs = [node.work / "state" / f for f in ("audit.jsonl", "audit-dicom.xml")]
    logs.append(node.gateway.log)
    text = "".join(p.read_text(errors="replace") for p in logs)
    text += json.dumps(gateway_status(node.config))
    for marker in node.data.planted:
        assert marker not in text


def test_dicom_audit_messages_name_deidentified_studies(node: Node, offline: Path) -> None:
    drained(node)
    studies = {p.parent.parent.name for p in dicom_files(offline)}
    lines = (node.work / "state" / "audit-dicom.xml").read_text().splitlines()
    assert lines
    named: set[str] = set()
    for line in lines:
        message = ElementTree.fromstring(line)
        assert message.find("EventIdentification/EventID").get("csd-code") == "110104"
        roles = [e.get("csd-code") for e in message.iter("RoleIDCode")]
        assert roles == ["110153", "110152"]
        for obj in message.iter("ParticipantObjectIdentification"):
            assert obj.get("ParticipantObjectDataLifeCycle") == "7"
            named.add(obj.get("ParticipantObjectID"))
    assert named == studies


def test_peer_not_on_allow_list_is_rejected(node: Node) -> None:
    done = storescu(node.port, node.data.files[:1], aet="INTRUDER")
    assert done.returncode != 0
    assert "Calling AE Title Not Recognized" in done.stderr
    done = storescu(node.port, node.data.files[:1], aet="MODALITY1", aec="WRONGGW")
    assert "Called AE Title Not Recognized" in done.stderr
    lines = [json.loads(x) for x in (node.work / "state" / "audit.jsonl").read_text().splitlines()]
    rejected = [x for x in lines if x["event"] == "association-rejected"]
    assert {"ae": "INTRUDER", "address": "127.0.0.1"} in [x["peer"] for x in rejected]


def _send_raw(port: int, path: Path) -> int:
    ae = NoDelayAE("MODALITY1")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="PGGATE")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
        return int(status.Status)
    finally:
        assoc.release()


def _plain_ct(path: Path) -> bool:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    explicit = str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1"
    return explicit and str(ds.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.2"


def test_bad_input_gets_a_failure_status_and_the_gateway_keeps_serving(
    node: Node, tmp_path: Path
) -> None:
    before = gateway_status(node.config)
    source = next(p for p in node.data.files if _plain_ct(p))
    # a truncated data set, and one with no SOP Instance UID to name the output by (the
    # engine refuses it), sent as raw bytes (pynetdicom's chunked mode does not decode)
    whole = source.read_bytes()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(whole[: len(whole) // 3])
    ds = pydicom.dcmread(source)
    del ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    nameless = tmp_path / "nameless.dcm"
    ds.save_as(nameless, enforce_file_format=True)
    from pynetdicom import _config

    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        for bad in (truncated, nameless):
            code = _send_raw(node.port, bad)
            assert code & 0xF000 == 0xC000, hex(code)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    after = gateway_status(node.config)
    assert after["quarantined"] == before["quarantined"] + 2
    assert after["accepted"] == before["accepted"]
    # still serving, and truthful
    done = storescu(node.port, [source])
    assert done.returncode == 0, done.stderr


def _multipart(parts: list[bytes], boundary: str) -> bytes:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
        for p in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def test_stow_rs_receive(node: Node) -> None:
    url = f"http://127.0.0.1:{node.stow_port}/studies"
    boundary = uuid.uuid4().hex
    kind = f'multipart/related; type="application/dicom"; boundary={boundary}'
    files = node.data.files[:2]
    with httpx.Client(timeout=60, trust_env=False) as client:
        reply = client.post(url, content=_multipart([p.read_bytes() for p in files], boundary),
                            headers={"Content-Type": kind})  # fmt: skip
        assert reply.status_code == 200, reply.text
        stored = reply.json()["00081199"]["Value"]
        assert len(stored) == 2
        # malformed bodies and wrong media types get a clear 4xx
        no_end = _multipart([files[0].read_bytes()], boundary)[: -len(boundary) - 6]
        reply = client.post(url, content=no_end, headers={"Content-Type": kind})
        assert reply.status_code == 400 and "closing boundary" in reply.text
        reply = client.post(url, content=b"garbage", headers={"Content-Type": kind})
        assert reply.status_code == 400 and "malformed multipart" in reply.text
        reply = client.post(url, content=b"{}", headers={"Content-Type": "application/json"})
        assert reply.status_code == 415
        broken = _multipart([b"\x00" * 200], boundary)
        reply = client.post(url, content=broken, headers={"Content-Type": kind})
        assert reply.status_code == 409
        failed = reply.json()["00081198"]["Value"]
        assert failed[0]["00081197"]["Value"][0] & 0xF000 == 0xC000
    drained(node)


def test_stow_rs_receive_into_a_named_study(node: Node) -> None:
    """``POST /studies/{study}``: a part of another study is refused in the response
    (Failed SOP Sequence, Failure Reason C409), 202 when some parts were stored, 409 when
    none were (PS3.18 10.5.3); the study is the sender's own (before de-identification)."""
    headers = {path: pydicom.dcmread(path, stop_before_pixels=True) for path in node.data.files}
    by_study: dict[str, list[Path]] = {}
    for path, ds in headers.items():
        by_study.setdefault(str(ds.StudyInstanceUID), []).append(path)
    (study, mine), (_, theirs) = sorted(by_study.items())[:2]
    boundary = uuid.uuid4().hex
    kind = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}
    base = f"http://127.0.0.1:{node.stow_port}/studies"
    with httpx.Client(timeout=60, trust_env=False) as client:
        body = _multipart([mine[0].read_bytes(), theirs[0].read_bytes()], boundary)
        reply = client.post(f"{base}/{study}", content=body, headers=kind)
        assert reply.status_code == 202, reply.text
        stored = reply.json()["00081199"]["Value"]
        failed = reply.json()["00081198"]["Value"]
        assert len(stored) == 1 and len(failed) == 1
        assert failed[0]["00081197"]["Value"] == [0xC409]
        assert failed[0]["00081155"]["Value"] == [str(headers[theirs[0]].SOPInstanceUID)]
        # the stored one is named by its de-identified UID, not the one sent
        assert stored[0]["00081155"]["Value"] != [str(headers[mine[0]].SOPInstanceUID)]
        body = _multipart([theirs[0].read_bytes()], boundary)
        reply = client.post(f"{base}/{study}/", content=body, headers=kind)
        assert reply.status_code == 409
        assert reply.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC409]
        assert "00081199" not in reply.json()
        reply = client.post(f"{base}/1.2.x", content=body, headers=kind)
        assert reply.status_code == 400 and "not a valid UID" in reply.text
        reply = client.post(f"{base}/{study}/series", content=body, headers=kind)
        assert reply.status_code == 404
    drained(node)


def test_folder_destination_is_a_deid_output_that_pack_accepts(node: Node, offline: Path) -> None:
    drained(node)

    def manifest() -> dict[str, Any] | None:
        doc = json.loads((node.folder / DEID_MANIFEST_NAME).read_text())
        files = dicom_files(node.folder)
        return doc if doc["complete"] and doc["counts"]["files"] == len(files) else None

    doc = wait_for(manifest, timeout=30)
    listed = {f["path"]: f for f in doc["files"]}
    assert set(listed) == {str(p.relative_to(node.folder)) for p in dicom_files(node.folder)}
    for path, entry in listed.items():
        data = (node.folder / path).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["counts"]["pending"] == 0 and doc["counts"]["quarantine"] == 0
    theirs = json.loads((offline / DEID_MANIFEST_NAME).read_text())
    assert doc["profile"]["options"] == theirs["profile"]["options"]
    assert doc["profile"]["policy_sha256"] == theirs["profile"]["policy_sha256"]
    assert set(listed) == {f["path"] for f in theirs["files"]}  # the same tree as deid
    assert preflight(node.folder, ocr=False) == []


def test_check_prints_settings_without_secrets(node: Node) -> None:
    done = pacsguard("gateway", "check", "--config", str(node.config))
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)
    assert settings["ae_title"] == "PGGATE"
    names = [d["name"] for d in settings["destinations"]]
    assert names == ["research", "web", "folder", "ct-from-modality1"]
    key = (node.work / "project.key").read_text().strip()
    assert key not in done.stdout and "not-a-real-token" not in done.stdout
    bad = node.work / "bad.toml"
    bad.write_text(node.config.read_text().replace("port = ", 'port = "x" #', 1))
    done = pacsguard("gateway", "check", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and "port" in done.stderr
    assert "Traceback" not in done.stderr


def test_tls_port_needs_a_client_certificate_and_its_subject(node: Node) -> None:
    pki, tls_port, files = node.pki, node.tls_port, node.data.files[:2]
    trust = ["+cf", str(pki.ca)]
    good = storescu(tls_port, files, "+tls", str(pki.client_key), str(pki.client_cert), *trust,
                    aet="TLSMOD")  # fmt: skip
    assert good.returncode == 0, good.stderr
    missing = storescu(tls_port, files, "+tla", *trust, aet="TLSMOD")
    assert missing.returncode != 0
    rogue = storescu(tls_port, files, "+tls", str(pki.rogue_key), str(pki.rogue_cert), *trust,
                     aet="TLSMOD")  # fmt: skip
    assert rogue.returncode != 0
    plain = storescu(tls_port, files, aet="TLSMOD")
    assert plain.returncode != 0
    # the certificate's subject is part of TLSMOD's rule: over the plain port it is refused
    no_subject = storescu(node.port, files, aet="TLSMOD")
    assert "Calling AE Title Not Recognized" in no_subject.stderr
    lines = [json.loads(x) for x in (node.work / "state" / "audit.jsonl").read_text().splitlines()]
    assert sum(x["event"] == "tls-refused" for x in lines) >= 3
    accepted = [
        x for x in lines if x["event"] == "association-accepted" and x["service"] == "dicom-tls"
    ]
    assert accepted and accepted[-1]["peer"]["subject"] == pki.client_subject
