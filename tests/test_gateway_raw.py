"""The gateway reads and answers C-STOREs raw and forwards data sets raw.

The File Meta built in front of a received data set is pynetdicom's, byte for byte; a
file's data set is found by walking its File Meta (not by trusting a group length); an
association is taken over once established (C-STOREs answered with the receiver's status,
C-ECHO answered, release audited as a release); a data set whose SOP class is not the
request's is refused with A900; the forwarder's confirmations are committed in groups and
each spool file outlives its mark.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, _config
from pynetdicom.dsutils import encode_file_meta

from pacsguard.gateway import forward
from pacsguard.gateway.config import load_config
from pacsguard.gateway.node import Gateway
from pacsguard.gateway.queue import NewInstance, Queue
from pacsguard.lab.procs import free_ports
from pacsguard.net import AuditLog, NoDelayAE, rawserver, rawstore
from pacsguard.net.part10 import dataset_offset, file_prefix
from pacsguard.sample import generate_ct_corpus
from test_gateway_support import wait_for, write_config

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


def _pynetdicom_prefix(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYNETDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = PYNETDICOM_IMPLEMENTATION_VERSION
    return b"\x00" * 128 + b"DICM" + encode_file_meta(meta)


@pytest.mark.parametrize(
    ("sop_class", "instance", "syntax"),
    [
        (CT, "1.2.3.4", EXPLICIT),  # even lengths
        ("1.2.840.10008.5.1.4.1.1.88.11", "1.2.826.0.1.3680043.10.1.12345", IMPLICIT),  # odd
        ("1.2.840.10008.5.1.4.1.1.481.3", "2.25." + "9" * 39, "1.2.840.10008.1.2.4.50"),
    ],
)
def test_file_prefix_is_the_file_meta_pynetdicom_builds(
    sop_class: str, instance: str, syntax: str
) -> None:
    mine = file_prefix(sop_class, instance, syntax)
    assert mine == _pynetdicom_prefix(sop_class, instance, syntax)
    assert dataset_offset(mine + b"\x08\x00") == len(mine)


def test_dataset_offset_walks_the_meta_and_refuses_what_is_not_part_10(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    generate_ct_corpus(corpus, files=1, rows=16, cols=16, patients=1, seed=3)
    data = next(corpus.rglob("*.dcm")).read_bytes()
    ds = pydicom.dcmread(next(corpus.rglob("*.dcm")))
    start = dataset_offset(data)
    assert start is not None
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(data[start:]), force=True,
                           ).SOPInstanceUID == ds.SOPInstanceUID  # fmt: skip
    # a group length that lies does not move it
    assert data[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    lying = data[:140] + struct.pack("<I", 7) + data[144:]
    assert dataset_offset(lying) == start
    assert dataset_offset(b"\x00" * 128 + b"DICX" + data[132:]) is None
    assert dataset_offset(data[:100]) is None
    assert dataset_offset(data[: start - 3]) is None  # cut inside the meta
    broken_vr = data[:136] + b"\x01\x02" + data[138:]
    assert dataset_offset(broken_vr) is None


@pytest.fixture
def node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, Path, list[Any]]]:
    taken: list[Any] = []
    real = rawstore.serve_taken_over

    def counted(assoc: Any, serve: Any, on_echo: Any = None) -> None:
        taken.append(assoc)
        real(assoc, serve, on_echo)

    monkeypatch.setattr(rawserver, "serve_taken_over", counted)
    (port,) = free_ports(1)
    out = tmp_path / "out"
    config = load_config(write_config(tmp_path, port=port,
                                      destinations=[{"name": "copy", "type": "folder",
                                                     "path": str(out)}]))  # fmt: skip
    gateway = Gateway(config)
    gateway.start()
    try:
        yield gateway, out, taken
    finally:
        gateway.stop()


def test_associations_are_taken_over_answered_and_audited(
    node: tuple[Gateway, Path, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, out, taken = node
    corpus = tmp_path / "corpus"
    generate_ct_corpus(corpus, files=3, rows=32, cols=32, patients=1, seed=5)
    files = sorted(corpus.rglob("*.dcm"))
    mislabelled = tmp_path / "mislabelled.dcm"
    ds = pydicom.dcmread(files[0])
    ds.file_meta.MediaStorageSOPClassUID = UID(MR)  # the request says MR, the data set says CT
    ds.save_as(mislabelled)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # raw bytes out
    ae = NoDelayAE("MODALITY1")
    for sop_class in (CT, MR):
        ae.add_requested_context(sop_class, EXPLICIT)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", gateway.config.port, ae_title="PGGATE")
    assert assoc.is_established
    try:
        statuses = [int(assoc.send_c_store(path).Status) for path in files]
        refusal = assoc.send_c_store(mislabelled)
        refused = int(refusal.Status)
        comment = str(refusal.get("ErrorComment", ""))
        echo = int(assoc.send_c_echo().Status)
    finally:
        assoc.release()
    assert statuses == [0, 0, 0] and refused == 0xA900 and echo == 0
    # the reason, as pynetdicom's own path gives it: words of ours, no value of the data set
    assert (
        comment
        and len(comment) <= 64
        and str(ds.PatientName)
        and str(ds.PatientName) not in comment
    )
    assert len(taken) == 1 and isinstance(taken[0], rawserver.RawStoreAssociation)
    wait_for(lambda: len(list(out.rglob("*.dcm"))) == 3, 30)
    audit = gateway.config.audit_log

    def closed() -> dict[str, Any] | None:
        lines = [json.loads(x) for x in audit.read_text().splitlines()]
        return next((x for x in lines if x["event"] == "association-closed"), None)

    record = wait_for(closed, 30)
    assert record["closed"] == "released"
    counts = {(o["operation"], o["outcome"]): o["count"] for o in record["operations"]}
    assert counts == {("C-STORE", "success"): 3, ("C-STORE", "0xA900"): 1,
                      ("C-ECHO", "success"): 1}  # fmt: skip


def test_confirmations_are_committed_in_groups_and_spool_files_outlive_their_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path, port=11112, destinations=[
        {"name": "copy", "type": "folder", "path": str(tmp_path / "out"), "batch": 4,
         "concurrency": 1}]))  # fmt: skip
    queue = Queue(config.database)
    commits: list[int] = []
    real_sent_at = queue.sent_at

    def sent_at(confirmed: Any) -> Any:
        commits.append(len(confirmed))
        return real_sent_at(confirmed)

    monkeypatch.setattr(queue, "sent_at", sent_at)
    spool = config.spool
    for n in range(6):
        relative = f"PAT/2.25.1/2.25.2/2.25.{10 + n}.dcm"
        (spool / "work" / "0" / Path(relative).parent).mkdir(parents=True, exist_ok=True)
        (spool / "work" / "0" / relative).write_bytes(bytes([n]) * 10)
        queue.add(NewInstance(f"2.25.{10 + n}", CT, EXPLICIT, "CT", relative,
                              f"work/0/{relative}", 10, "M", "dicom"), ["copy"])  # fmt: skip
    discarded: list[str] = []
    lock = threading.Lock()

    def discard(spool_file: str) -> None:
        with lock:  # a spool file goes only once its mark is committed
            assert not queue.live_spool_files({spool_file})
            discarded.append(spool_file)

    workers = forward.DestinationWorkers(config.destinations[0], config, queue,
                                         AuditLog(config.audit_log), discard)  # fmt: skip
    monkeypatch.setattr(forward, "CONFIRM_DELAY", 0.5)
    started = time.monotonic()
    workers.start()
    try:
        wait_for(lambda: len(discarded) == 6, 30, every=0.02)
    finally:
        workers.stop()
    assert commits == [4, 2]  # a batch's worth at once, then the rest after CONFIRM_DELAY
    assert time.monotonic() - started >= 0.4  # the last two waited for CONFIRM_DELAY
    assert queue.status(["copy"])["destinations"]["copy"]["sent"] == 6
    queue.close()
