"""The DIMSE side against a pynetdicom archive on 127.0.0.1: cancel at the cap, only
C-ECHO/C-FIND/C-CANCEL sent, every association released, reject reasons decoded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from pacsguard.scan import ScanOptions, scan
from pacsguard.scan.dimse import PATIENT_ROOT, STUDY_ROOT, VERIFICATION

STUDIES = 60
PLANTED_NAME = "QUIGLEY^ZEBEDIAH"
PLANTED_ID = "PID-77-ZZQ-0042"


@dataclass
class Archive:
    port: int
    commands: list[str] = field(default_factory=list)
    cancelled: list[bool] = field(default_factory=list)
    released: int = 0
    aborted: int = 0
    open_now: int = 0
    most_open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _study(index: int) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.9999.{index}"
    ds.PatientName = PLANTED_NAME
    ds.PatientID = PLANTED_ID
    ds.NumberOfStudyRelatedSeries = 2
    ds.NumberOfStudyRelatedInstances = 5
    ds.ModalitiesInStudy = ["CT", "SR"]
    return ds


def _start(require_called: bool) -> tuple[Any, Archive]:
    archive = Archive(port=0)
    ae = AE(ae_title="HIDDENQR")
    ae.require_called_aet = require_called
    for syntax in (VERIFICATION, STUDY_ROOT, PATIENT_ROOT):
        ae.add_supported_context(syntax)

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        level = event.identifier.QueryRetrieveLevel
        count = STUDIES if level == "STUDY" else 3
        for index in range(count):
            if event.is_cancelled:
                archive.cancelled.append(True)
                yield 0xFE00, None
                return
            if level == "STUDY":
                time.sleep(0.01)  # slow enough for the C-CANCEL to arrive mid-stream
            ds = _study(index) if level == "STUDY" else Dataset()
            if level == "PATIENT":
                ds.QueryRetrieveLevel = "PATIENT"
                ds.PatientID = f"{PLANTED_ID}-{index}"
            yield 0xFF00, ds
        archive.cancelled.append(False)

    def on_dimse(event: Any) -> None:
        archive.commands.append(type(event.message).__name__)

    def on_accepted(event: Any) -> None:
        with archive.lock:
            archive.open_now += 1
            archive.most_open = max(archive.most_open, archive.open_now)

    def on_released(event: Any) -> None:
        with archive.lock:
            archive.open_now -= 1
            archive.released += 1

    def on_aborted(event: Any) -> None:
        with archive.lock:
            archive.open_now -= 1
            archive.aborted += 1

    handlers = [
        (evt.EVT_C_FIND, on_find),
        (evt.EVT_C_ECHO, lambda event: 0x0000),
        (evt.EVT_DIMSE_RECV, on_dimse),
        (evt.EVT_ACCEPTED, on_accepted),
        (evt.EVT_RELEASED, on_released),
        (evt.EVT_ABORTED, on_aborted),
    ]
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    archive.port = server.server_address[1]
    return server, archive


@pytest.fixture()
def open_archive() -> Iterator[Archive]:
    server, archive = _start(require_called=False)
    try:
        yield archive
    finally:
        server.shutdown()


@pytest.fixture()
def hidden_archive() -> Iterator[Archive]:
    server, archive = _start(require_called=True)
    try:
        yield archive
    finally:
        server.shutdown()


def test_count_is_capped_with_a_c_cancel(open_archive: Archive) -> None:
    result = scan(["127.0.0.1"], ScanOptions(ports=[open_archive.port], cap=10, timeout=5))
    (finding,) = result.findings
    assert finding.service == "dicom" and finding.product == "pynetdicom"
    assert finding.severity == "critical" and finding.access == "anonymous"
    assert finding.exposed.capped is True
    assert finding.exposed.studies == 10  # "at least 10"
    assert finding.exposed.patients == 3
    assert finding.exposed.series == 20 and finding.exposed.instances == 50
    assert finding.exposed.modalities == ["CT", "SR"]
    assert True in open_archive.cancelled
    assert "C_CANCEL" in {c.replace("RQ", "").rstrip("_") for c in open_archive.commands}


def test_only_echo_find_cancel_and_always_released(open_archive: Archive) -> None:
    result = scan(["127.0.0.1"], ScanOptions(ports=[open_archive.port], cap=100, timeout=5))
    (finding,) = result.findings
    assert finding.exposed.capped is False and finding.exposed.studies == STUDIES
    assert finding.exposed.instances == STUDIES * 5
    allowed = {"C_ECHO_RQ", "C_FIND_RQ", "C_CANCEL_RQ"}
    assert open_archive.commands and set(open_archive.commands) <= allowed
    assert open_archive.released == 1 and open_archive.aborted == 0
    assert open_archive.most_open == 1
    text = json.dumps(finding.to_dict())
    assert PLANTED_NAME not in text and PLANTED_ID not in text and "9999" not in text


def test_rejections_are_decoded(hidden_archive: Archive) -> None:
    result = scan(
        ["127.0.0.1"], ScanOptions(ports=[hidden_archive.port], ae_titles=["ORTHANC", "PACS"])
    )
    (finding,) = result.findings
    assert finding.severity == "info" and finding.access == "none" and finding.ae_titles == []
    assert finding.dicom is not None
    attempts = [
        (a.called_ae, a.outcome, a.result, a.source, a.reason) for a in finding.dicom.attempts
    ]
    reason = ("rejected-permanent", "service-user", "called-AE-title-not-recognized")
    assert attempts == [(ae, "rejected", *reason) for ae in ("ANY-SCP", "ORTHANC", "PACS")]
    assert hidden_archive.commands == []


def test_guessed_called_ae_title(hidden_archive: Archive) -> None:
    result = scan(
        ["127.0.0.1"],
        ScanOptions(ports=[hidden_archive.port], ae_titles=["ORTHANC", "HIDDENQR", "PACS"]),
    )
    (finding,) = result.findings
    assert finding.access == "guessed-ae-title" and finding.ae_titles == ["HIDDENQR"]
    assert finding.severity == "high"
    assert [a.called_ae for a in finding.dicom.attempts] == ["ANY-SCP", "ORTHANC", "HIDDENQR"]  # type: ignore[union-attr]
