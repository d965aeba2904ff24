"""`pacsguard guard` in front of DCMTK's dcmqrscp (a weak archive that answers any calling AE
title), with DCMTK clients (echoscu, findscu, movescu, getscu, storescu) plain and over TLS,
a storescp as C-MOVE destination, all on 127.0.0.1 with TCP_NODELAY=1. Every outcome is
asserted on the client's output and on what the archive logged that it received."""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ

from pacsguard.core.keys import new_key
from pacsguard.guard import Guard, lab, load_config, parse_config
from pacsguard.lab.data import LabData, decompressed_for_dcmtk, make_data
from pacsguard.lab.procs import LOOPBACK, free_ports
from test_guard_support import (
    PacsLog,
    echo,
    echo_ok,
    find,
    find_ok,
    find_responses,
    get,
    get_ok,
    move,
    move_ok,
    rejected,
    store,
    store_ok,
)

PACSGUARD = str(Path(sys.executable).with_name("pacsguard"))
VERIFICATION = "1.2.840.10008.1.1"
# Study Root Query/Retrieve Information Model: FIND, MOVE, GET
FIND, MOVE, GET = (
    "1.2.840.10008.5.1.4.1.2.2.1",
    "1.2.840.10008.5.1.4.1.2.2.2",
    "1.2.840.10008.5.1.4.1.2.2.3",
)


@dataclass
class GuardLab:
    work: Path
    data: LabData
    files: list[Path]  # what the archive holds
    archive: lab.Archive
    viewer_store: lab.Receiver
    research_store: lab.Receiver
    guard: Guard
    port: int
    tls_port: int
    pki: lab.Pki
    key_file: Path
    pacs: PacsLog
    slow_store_port: int

    def study(self, index: int = 0) -> str:
        return str(pydicom.dcmread(self.files[index], stop_before_pixels=True).StudyInstanceUID)

    def instances_of(self, study: str) -> int:
        return sum(
            1
            for f in self.files
            if pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID == study
        )

    def tls(self, name: str | None) -> tuple[str, ...]:
        trust = ("+cf", str(self.pki.ca))
        if name is None:
            return ("+tla", *trust)
        key, cert = self.pki.clients[name]
        return ("+tls", str(key), str(cert), *trust)


def _config(work: Path, ports: dict[str, int], pki: lab.Pki) -> dict[str, Any]:
    def client(name: str, ae: str, allow: list[str], **more: Any) -> dict[str, Any]:
        return {"name": name, "ae_title": ae, "host": LOOPBACK, "allow": allow, **more}

    everything = ["echo", "find", "move", "get"]
    return {
        "guard": {
            "ae_title": "PACS",
            "host": LOOPBACK,
            "port": ports["guard"],
            "key_file": "project.key",
            "state": "guard-state",
            "dicom_audit": True,
            "upstream": {"ae_title": "ARCHIVE", "host": LOOPBACK, "port": ports["pacs"]},
            "tls": {
                "port": ports["tls"],
                "cert_file": str(pki.server[1]),
                "key_file": str(pki.server[0]),
                "ca_file": str(pki.ca),
            },
            "client": [
                client(
                    "viewer", "VIEWER", everything, move_destinations=["VIEWERSTORE", "SLOWSTORE"]
                ),
                client("echo-only", "ECHOONLY", ["echo"]),
                client("finder", "FINDER", ["find"], find_levels=["STUDY"]),
                client("storer", "STORER", ["store", "echo"]),
                client("remote", "REMOTE", everything, host="10.20.30.0/24"),
                client(
                    "research",
                    "RESEARCH",
                    everything,
                    role="research",
                    move_destinations=["RESEARCHSTORE"],
                ),
                client(
                    "tls-viewer", "TLSVIEWER", ["echo", "find"], certificate_subject="CN=tls-viewer"
                ),
                client(
                    "tls-mover",
                    "TLSMOVER",
                    ["move"],
                    certificate_subject="CN=tls-mover",
                    move_destinations=["VIEWERSTORE"],
                ),
                client("capped", "CAPPED", ["find"], max_responses_per_query=2),
                client("rated", "RATED", ["find"], find_responses_per_minute=3),
                client(
                    "flooder", "FLOODER", ["echo"], associations_per_minute=30, max_associations=2
                ),
                client("idler", "IDLER", ["echo"], idle_timeout=1, association_timeout=2.5),
            ],
            "destination": [
                {"ae_title": "VIEWERSTORE", "host": LOOPBACK, "port": ports["viewer_store"]},
                {"ae_title": "RESEARCHSTORE", "host": LOOPBACK, "port": ports["research_store"]},
                {"ae_title": "ELSEWHERE", "host": LOOPBACK, "port": ports["research_store"]},
                {"ae_title": "SLOWSTORE", "host": LOOPBACK, "port": ports["slow_store"]},
            ],
        }
    }


@pytest.fixture(scope="module")
def glab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardLab]:
    work = tmp_path_factory.mktemp("guard-lab")
    names = ("guard", "tls", "pacs", "viewer_store", "research_store", "slow_store")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    data = make_data(work / "sample", seed=11, patients=2)
    files = decompressed_for_dcmtk(data, work / "decoded")
    pki = lab.make_pki(work / "pki", ["tls-viewer", "intruder", "tls-mover"])
    key_file = work / "project.key"
    new_key(key_file)
    servers = []
    guard = None
    try:
        archive = lab.start_dcmqrscp(
            work, ports["pacs"], "ARCHIVE",
            {"PACS": (LOOPBACK, ports["guard"]), "VIEWERSTORE": (LOOPBACK, ports["viewer_store"])},
        )  # fmt: skip
        servers.append(archive.server)
        lab.load(archive, files, work / "load.log")
        viewer_store = lab.start_storescp(work, ports["viewer_store"], "viewer")
        research_store = lab.start_storescp(work, ports["research_store"], "research")
        servers += [viewer_store.server, research_store.server]
        guard = Guard(parse_config(_config(work, ports, pki), work / "guard.toml"))
        guard.start()
        yield GuardLab(
            work, data, files, archive, viewer_store, research_store, guard, ports["guard"],
            ports["tls"], pki, key_file, PacsLog(archive.log, guard.drain), ports["slow_store"],
        )  # fmt: skip
    finally:
        if guard is not None:
            guard.stop()
        for server in reversed(servers):
            server.stop()


# -- permissions ---------------------------------------------------------------------------


def test_allowed_services_are_relayed(glab: GuardLab, tmp_path: Path) -> None:
    study = glab.study()
    count = glab.instances_of(study)
    before = glab.pacs.quiet(glab.guard)
    assert echo_ok(echo("VIEWER", glab.port))
    found = find("VIEWER", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID")
    assert find_ok(found) and find_responses(found) == glab.data.totals.studies
    received_before = len(glab.viewer_store.received())
    moved = move("VIEWER", glab.port, "VIEWERSTORE", "QueryRetrieveLevel=STUDY",
                 f"StudyInstanceUID={study}")  # fmt: skip
    assert move_ok(moved), moved.output
    assert len(glab.viewer_store.received()) == received_before + count
    # every instance arrives whole; where the PACS sent it in its stored transfer syntax
    # (dcmqrscp converts some, e.g. deflated or big endian ones), it arrives unchanged
    sources = {}
    for f in glab.files:
        ds = pydicom.dcmread(f)
        if ds.StudyInstanceUID == study:
            sources[str(ds.SOPInstanceUID)] = ds
    relayed = [pydicom.dcmread(p) for p in glab.viewer_store.received()]
    relayed = [ds for ds in relayed if str(ds.SOPInstanceUID) in sources]
    assert {str(ds.SOPInstanceUID) for ds in relayed} == set(sources)
    syntax = "TransferSyntaxUID"
    same = [
        ds for ds in relayed if ds.file_meta[syntax] == sources[ds.SOPInstanceUID].file_meta[syntax]
    ]
    assert same
    assert all(ds == sources[str(ds.SOPInstanceUID)] for ds in same)
    got = get("VIEWER", glab.port, tmp_path / "get", "QueryRetrieveLevel=STUDY",
              f"StudyInstanceUID={study}")  # fmt: skip
    assert get_ok(got), got.output
    assert len(list((tmp_path / "get").iterdir())) == count
    assert f"Number of Completed Suboperations : {count}" in got.output
    seen = glab.pacs.settled(before, {"C-ECHO RQ": 1, "C-FIND RQ": 1, "C-MOVE RQ": 1})
    assert (seen["C-ECHO RQ"], seen["C-FIND RQ"], seen["C-MOVE RQ"], seen["C-GET RQ"]) == (
        1, 1, 1, 1,
    )  # fmt: skip
    # the PACS only ever saw the guard's AE title calling its own
    assert seen["association"] == seen["from PACS to ARCHIVE"] == 4


def test_the_pacs_delivering_association_is_served_and_ends(glab: GuardLab) -> None:
    """The PACS's own associations (calling ``upstream.ae_title``) are read and answered by
    the guard's raw receiver: a C-ECHO is answered, a C-STORE that belongs to no move in
    progress is refused (0xA700) and never relayed, and each association ends cleanly (its
    session closed, no association left open)."""
    assert echo_ok(echo("ARCHIVE", glab.port))
    stored = store("ARCHIVE", glab.port, glab.files[0])
    assert stored.has("Received Store Response (Refused: OutOfResources)"), stored.output
    assert stored.has("Releasing Association") and not stored.has("Aborted"), stored.output

    def open_upstream() -> int:
        return sum(1 for x in list(glab.guard._sessions.values()) if x.kind == "upstream")

    deadline = time.monotonic() + 5
    while open_upstream() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_upstream() == 0
    lines = (glab.work / "guard-state" / "audit.jsonl").read_text().splitlines()
    ended = [json.loads(x) for x in lines if '"association-end"' in x and '"upstream"' in x]
    assert len(ended) >= 2


def _viewer_association(glab: GuardLab) -> Any:

    from pacsguard.net import NoDelayAE

    ae = NoDelayAE("VIEWER")
    ae.add_requested_context(MOVE)
    ae.add_requested_context(FIND)
    ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    assert assoc.is_established
    return assoc


def _study_query(study: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    return query


def test_one_client_association_moves_finds_and_moves_again(glab: GuardLab) -> None:
    """On one client association a C-MOVE, a C-FIND and a second C-MOVE are all relayed,
    with exact counts, the second C-MOVE on the first one's pooled upstream association."""

    study = glab.study()
    count = glab.instances_of(study)
    before = glab.pacs.quiet(glab.guard)
    assoc = _viewer_association(glab)
    try:
        for round_ in range(2):
            finals = [s for s, _ in assoc.send_c_move(_study_query(study), "VIEWERSTORE", MOVE)]
            assert finals[-1].Status == 0x0000, (round_, hex(finals[-1].Status))
            assert finals[-1].NumberOfCompletedSuboperations == count
            assert finals[-1].NumberOfFailedSuboperations == 0
            if round_ == 0:
                query = Dataset()
                query.QueryRetrieveLevel = "STUDY"
                query.StudyInstanceUID = ""
                found = [s.Status for s, _ in assoc.send_c_find(query, FIND)]
                assert found.count(0xFF00) == glab.data.totals.studies and found[-1] == 0
    finally:
        assoc.release()
    seen = glab.pacs.settled(before, {"C-MOVE RQ": 2, "C-FIND RQ": 1})
    assert (seen["C-MOVE RQ"], seen["C-FIND RQ"]) == (2, 1)
    # from the guard's client leg, two pooled associations: one for the C-MOVE model (the
    # second move reuses the first's), one for the C-FIND model
    assert seen["from PACS to ARCHIVE"] == 2


def _finds_of(glab: GuardLab, client: str) -> list[dict[str, Any]]:
    lines = (glab.guard.config.state / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if r.get("service") == "find" and r.get("client") == client]


def test_finds_read_as_bytes_keep_every_check(
    glab: GuardLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one open plain association, the C-FINDs are read and answered on the held path
    (not by pynetdicom's C-FIND service: ``serve_raw`` counts those) and every check holds
    there: Retrieve AE Title is the guard's, the audit has the level, the keys and the
    count, a level the client may not use is refused without reaching the PACS, and a
    C-ECHO between the queries is handed back to pynetdicom and answered. A C-FIND that
    comes while the hold is being taken (the association's first, or the first after the
    C-ECHO was handed back) may be read by pynetdicom first, as seen in one CI run in
    three: served by ``serve_raw`` then, with the same checks; never a query in between."""
    from pacsguard.guard import find as guard_find
    from pacsguard.net import NoDelayAE

    through_pynetdicom: list[tuple[str, int]] = []
    original = guard_find.serve_raw
    now: list[tuple[str, int]] = [("", -1)]

    def counted(*args: Any) -> bool:
        through_pynetdicom.append(now[0])
        return original(*args)

    monkeypatch.setattr(guard_find, "serve_raw", counted)
    before = glab.pacs.quiet(glab.guard)
    for calling, level, allowed in (("VIEWER", "STUDY", True), ("FINDER", "SERIES", False)):
        ae = NoDelayAE(calling)
        ae.add_requested_context(FIND)
        ae.add_requested_context(VERIFICATION)
        assoc = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
        assert assoc.is_established
        try:
            for round_ in range(3):
                now[0] = (calling, round_)
                query = Dataset()
                query.QueryRetrieveLevel = level
                query.RetrieveAETitle = ""
                query.StudyInstanceUID = ""
                answers = list(assoc.send_c_find(query, FIND))
                statuses = [s.Status for s, _ in answers]
                if allowed:
                    assert statuses.count(0xFF00) == glab.data.totals.studies, statuses
                    assert statuses[-1] == 0x0000
                    found = [ds for s, ds in answers if s.Status == 0xFF00]
                    assert {str(ds.RetrieveAETitle) for ds in found} == {"PACS"}
                else:
                    assert statuses == [0x0124]
                if round_ == 1:
                    assert assoc.send_c_echo().Status == (0 if allowed else 0x0124)
        finally:
            assoc.release()
        assert not assoc.is_established
    assert all(round_ in (0, 2) for _, round_ in through_pynetdicom), through_pynetdicom
    assert len(set(through_pynetdicom)) == len(through_pynetdicom) <= 2, through_pynetdicom
    viewer = _finds_of(glab, "viewer")[-3:]
    assert [(r["level"], r["keys"], r["responses"], r["outcome"]) for r in viewer] == [
        ("STUDY", ["RetrieveAETitle", "StudyInstanceUID"], glab.data.totals.studies, "success")
    ] * 3
    finder = _finds_of(glab, "finder")[-3:]
    assert [(r["level"], r["outcome"], r["reason"]) for r in finder] == [
        ("SERIES", "refused", "level")
    ] * 3
    seen = glab.pacs.settled(before, {"C-FIND RQ": 3})
    assert seen["C-FIND RQ"] == 3  # the viewer's; none of the finder's
    assert seen["C-ECHO RQ"] == 1  # the viewer's echo, relayed; the finder may not echo


def test_a_cancel_on_the_held_path_stops_the_query(glab: GuardLab) -> None:
    """A C-CANCEL-RQ written right behind its C-FIND-RQ is read by the held path before any
    response is relayed: the client gets Cancel and nothing else, the PACS is told, and the
    audit says cancelled, with no response counted."""
    from pydicom.uid import ImplicitVRLittleEndian

    from pacsguard.net import NoDelayAE
    from pacsguard.net.rawquery import encoded
    from pacsguard.net.rawstore import Held, cancel_command, find_command

    ae = NoDelayAE("VIEWER")
    ae.add_requested_context(FIND, [ImplicitVRLittleEndian])
    assoc = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    context = assoc.accepted_contexts[0]
    identifier = encoded(query, str(context.transfer_syntax[0]))
    statuses = []
    try:
        with Held(assoc) as held:
            held.send(context.context_id, find_command(FIND, 7), identifier)
            held.send(context.context_id, cancel_command(7))
            while not statuses or statuses[-1] in (0xFF00, 0xFF01):
                message = held.message()
                assert message.number(0x0120) == 7
                statuses.append(message.number(0x0900))
        # the association carries on: the next query is answered in full
        after = [s.Status for s, _ in assoc.send_c_find(query, FIND)]
    finally:
        assoc.release()
    assert statuses == [0xFE00]
    assert after.count(0xFF00) == glab.data.totals.studies and after[-1] == 0
    cancelled, complete = _finds_of(glab, "viewer")[-2:]
    assert (cancelled["outcome"], cancelled["reason"], cancelled["responses"]) == (
        "cancelled", "cancelled", 0,
    )  # fmt: skip
    assert complete["responses"] == glab.data.totals.studies


def _pacs_children(glab: GuardLab) -> list[int]:
    """dcmqrscp's children: one per association it serves."""
    pid = glab.archive.server.process.pid
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pool(glab: GuardLab) -> Any:
    pool = glab.guard.pool
    assert pool is not None
    return pool


def test_pooled_associations_are_reused_and_a_dropped_one_replaced(
    glab: GuardLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clinical C-FINDs from successive client associations share one upstream association.
    One that the PACS dropped meanwhile is found before use and replaced; one whose loss only
    a request shows (the check before use disabled here) is replaced by sending the query
    again: the client's query never fails."""
    from pacsguard.net.rawstore import Held

    pool = _pool(glab)
    glab.guard.drain()
    query = ("QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    opened = pool.opened
    for _ in range(3):
        run = find("VIEWER", glab.port, *query)
        assert find_ok(run) and find_responses(run) == glab.data.totals.studies, run.output
    assert pool.opened == opened + 1
    (child,) = _pacs_children(glab)  # the pooled association, idle
    for check_before_use in (True, False):
        if not check_before_use:
            monkeypatch.setattr(Held, "unsolicited", lambda self: False)
        os.kill(child, signal.SIGKILL)
        time.sleep(0.2)
        run = find("VIEWER", glab.port, *query)
        assert find_ok(run) and find_responses(run) == glab.data.totals.studies, run.output
        (replaced,) = _pacs_children(glab)  # a new association, on the same pooled link
        assert replaced != child and pool.opened == opened + 1
        child = replaced


def test_a_pooled_association_carries_nothing_from_one_client_to_the_next(
    glab: GuardLab,
) -> None:
    """What one client's query leaves behind never reaches another client: a query capped
    by the guard (the rest cancelled and drained upstream) leaves the association clean and
    it is reused; a client that aborts right behind its query leaves the PACS's responses on
    the way, and that association is aborted, never pooled. The next client
    gets exactly its own responses, to its own keys."""
    from pydicom.uid import ImplicitVRLittleEndian

    from pacsguard.net import NoDelayAE
    from pacsguard.net.rawquery import encoded
    from pacsguard.net.rawstore import Held, find_command

    pool = _pool(glab)
    glab.guard.drain()
    opened = pool.opened
    capped = find("CAPPED", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_responses(capped) == 2
    after = find("VIEWER", glab.port, "QueryRetrieveLevel=STUDY", "PatientID")
    assert find_ok(after) and find_responses(after) == glab.data.totals.studies
    # findscu -v prints its request, then each response: the key once more per response
    assert after.count(r"\(0010,0020\) LO") == glab.data.totals.studies + 1
    assert after.count(r"\(0020,000d\) UI") == 0
    assert pool.opened == opened + 1  # reused after the capped query

    ae = NoDelayAE("VIEWER")
    ae.add_requested_context(FIND, [ImplicitVRLittleEndian])
    assoc = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    context = assoc.accepted_contexts[0]
    with Held(assoc) as held:
        held.send(context.context_id, find_command(FIND, 5),
                  encoded(query, str(context.transfer_syntax[0])))  # fmt: skip
        held.sock.sendall(struct.pack(">BBIBBBB", 0x07, 0x00, 4, 0, 0, 0, 0))  # A-ABORT
        held.lost = True  # the guard reads the abort as its first response comes
    assert not assoc.is_established
    deadline = time.monotonic() + 5
    while glab.guard._sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = Dataset()
    mine.QueryRetrieveLevel = "STUDY"
    mine.PatientID = ""
    ae = NoDelayAE("VIEWER")
    ae.add_requested_context(FIND, [ImplicitVRLittleEndian])
    other = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    try:
        answers = list(other.send_c_find(mine, FIND, msg_id=5))
    finally:
        other.release()
    found = [ds for status, ds in answers if status.Status == 0xFF00]
    assert answers[-1][0].Status == 0 and len(found) == glab.data.totals.studies
    assert all("PatientID" in ds and "StudyInstanceUID" not in ds for ds in found)
    assert pool.opened == opened + 2  # the aborted client's association was not pooled


def test_idle_pooled_associations_are_released(
    glab: GuardLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle pooled association is released after the pool's idle timeout (the PACS sees
    it end: dcmqrscp's child writes its log as it exits), and at the guard's shutdown."""
    pool = _pool(glab)
    glab.guard.drain()
    monkeypatch.setattr(pool, "idle_timeout", 0.3)
    before = glab.pacs.requests()
    run = find("VIEWER", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_ok(run)
    assert len(_pacs_children(glab)) == 1
    deadline = time.monotonic() + 5
    while (_pacs_children(glab) or (glab.pacs.requests() - before)["C-FIND RQ"] < 1) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert _pacs_children(glab) == []
    assert (glab.pacs.requests() - before)["C-FIND RQ"] == 1
    assert not any(pool._idle.values())

    (port,) = free_ports(1)
    config = {
        "ae_title": "PACS", "host": LOOPBACK, "port": port, "state": str(tmp_path / "state"),
        "upstream": {"ae_title": "ARCHIVE", "host": LOOPBACK, "port": glab.archive.port},
        "client": [{"name": "viewer", "ae_title": "VIEWER", "host": LOOPBACK, "allow": ["find"]}],
    }  # fmt: skip
    second = Guard(parse_config({"guard": config}, tmp_path / "guard.toml"))
    second.start()
    try:
        run = find("VIEWER", port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
        assert find_ok(run)
        assert len(_pacs_children(glab)) == 1
    finally:
        second.stop()
    deadline = time.monotonic() + 5
    while _pacs_children(glab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pacs_children(glab) == []


def test_a_cancelled_move_stops_at_the_pacs_with_exact_counts(glab: GuardLab) -> None:
    """A C-CANCEL from the client mid-move is passed on to the PACS (read raw on the held
    upstream association); the final response says Cancel, and its completed count is
    exactly what the destination stored."""
    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom import AllStoragePresentationContexts

    from pacsguard.net import NoDelayAE, start_server

    stored: list[str] = []

    def slow(event: Any) -> int:
        time.sleep(0.25)
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    scp = NoDelayAE("SLOWSTORE")
    for cx in AllStoragePresentationContexts:
        scp.add_supported_context(str(cx.abstract_syntax), AllTransferSyntaxes)
    server = start_server(scp, LOOPBACK, glab.slow_store_port, [(evt.EVT_C_STORE, slow)])
    study = max((glab.study(i) for i in range(len(glab.files))), key=glab.instances_of)
    count = glab.instances_of(study)
    assert count >= 4, "the lab needs a study of a few instances"
    glab.pacs.quiet(glab.guard)
    cancelled_before = glab.pacs.path.read_text(errors="replace").count("[status: Cancel:")
    assoc = _viewer_association(glab)
    try:
        responses = []
        for status, _ in assoc.send_c_move(_study_query(study), "SLOWSTORE", MOVE, msg_id=9):
            responses.append(status)
            if status.Status == 0xFF00 and len(responses) == 1:
                assoc.send_c_cancel(9, query_model=MOVE)
    finally:
        assoc.release()
        server.shutdown()
    final = responses[-1]
    assert final.Status == 0xFE00, hex(final.Status)
    assert 0 < final.NumberOfCompletedSuboperations == len(stored) < count
    assert final.NumberOfFailedSuboperations == 0
    # dcmqrscp does not log the C-CANCEL-RQ itself, only the response it ends the move with
    glab.pacs.quiet(glab.guard)
    log = glab.pacs.path.read_text(errors="replace")
    assert log.count("[status: Cancel:") == cancelled_before + 1


def test_a_cancelled_get_stops_at_the_pacs_with_exact_counts(glab: GuardLab) -> None:
    """C-GET on held associations: a C-CANCEL from the client mid-get reaches the PACS, and
    the completed count is exactly what the client stored."""
    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom import build_role

    from pacsguard.net import NoDelayAE

    stored: list[str] = []

    def slow(event: Any) -> int:
        time.sleep(0.25)
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = NoDelayAE("VIEWER")
    ae.add_requested_context(GET)
    classes = sorted({str(pydicom.dcmread(f, stop_before_pixels=True).SOPClassUID)
                      for f in glab.files})  # fmt: skip
    for uid in classes:
        ae.add_requested_context(uid, AllTransferSyntaxes[:8])
    roles: list[Any] = [build_role(uid, scp_role=True) for uid in classes]
    study = max((glab.study(i) for i in range(len(glab.files))), key=glab.instances_of)
    count = glab.instances_of(study)
    glab.pacs.quiet(glab.guard)
    cancelled_before = glab.pacs.path.read_text(errors="replace").count("[status: Cancel:")
    assoc = ae.associate(LOOPBACK, glab.port, ae_title="PACS", ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, slow)])  # fmt: skip
    assert assoc.is_established
    try:
        responses = []
        for status, _ in assoc.send_c_get(_study_query(study), GET, msg_id=11):
            responses.append(status)
            if status.Status == 0xFF00 and len(responses) == 1:
                assoc.send_c_cancel(11, query_model=GET)
    finally:
        assoc.release()
    final = responses[-1]
    assert final.Status == 0xFE00, hex(final.Status)
    assert 0 < final.NumberOfCompletedSuboperations == len(stored) < count
    assert final.NumberOfFailedSuboperations == 0
    glab.pacs.quiet(glab.guard)
    log = glab.pacs.path.read_text(errors="replace")
    assert log.count("[status: Cancel:") == cancelled_before + 1


def test_a_client_may_store_only_when_allowed(glab: GuardLab) -> None:
    instance = glab.files[-1]
    before = glab.pacs.quiet(glab.guard)
    refused = store("VIEWER", glab.port, instance)
    assert not store_ok(refused)
    time.sleep(0.3)
    assert glab.pacs.requests() - before == Counter()
    allowed = store("STORER", glab.port, instance)
    assert store_ok(allowed), allowed.output
    assert glab.pacs.settled(before, {"C-STORE RQ": 1})["C-STORE RQ"] == 1


REFUSED = [
    ("ECHOONLY", "find"), ("ECHOONLY", "move"), ("ECHOONLY", "get"), ("ECHOONLY", "store"),
    ("FINDER", "echo"), ("FINDER", "move"), ("FINDER", "get"), ("FINDER", "series-find"),
    ("VIEWER", "move-elsewhere"), ("VIEWER", "move-unknown"), ("STORER", "find"),
]  # fmt: skip


@pytest.mark.parametrize(("calling", "what"), REFUSED)
def test_refused_requests_never_reach_the_pacs(
    glab: GuardLab, tmp_path: Path, calling: str, what: str
) -> None:
    study = f"StudyInstanceUID={glab.study()}"
    before = glab.pacs.quiet(glab.guard)
    if what == "echo":
        run = echo(calling, glab.port)
        assert not echo_ok(run) and run.count("0x0?124"), run.output
    elif what in ("find", "series-find"):
        level = "SERIES" if what == "series-find" else "STUDY"
        run = find(calling, glab.port, f"QueryRetrieveLevel={level}", study, "SeriesInstanceUID")
        assert not find_ok(run) and find_responses(run) == 0
        assert run.count("0x0?124"), run.output  # Refused: Not Authorized
    elif what.startswith("move"):
        target = {"move": "VIEWERSTORE", "move-elsewhere": "ELSEWHERE"}.get(what, "NOWHERE")
        run = move(calling, glab.port, target, "QueryRetrieveLevel=STUDY", study)
        assert not move_ok(run) and run.returncode != 0
        if what != "move":
            assert run.has("MoveDestinationUnknown"), run.output
    elif what == "get":
        run = get(calling, glab.port, tmp_path, "QueryRetrieveLevel=STUDY", study)
        assert not get_ok(run) and not list(tmp_path.glob("*.*"))
    else:
        run = store(calling, glab.port, glab.files[0])
        assert not store_ok(run)
    time.sleep(0.3)
    assert glab.pacs.requests() - before == Counter(), run.output


@pytest.mark.parametrize(
    ("calling", "called", "reason"),
    [
        ("NOBODY", "PACS", "Calling AE Title Not Recognized"),
        ("REMOTE", "PACS", "Calling AE Title Not Recognized"),  # right AE, wrong address
        ("VIEWER", "ARCHIVE", "Called AE Title Not Recognized"),
        ("TLSVIEWER", "PACS", "Calling AE Title Not Recognized"),  # needs TLS + certificate
    ],
)
def test_unknown_peers_get_an_association_reject(
    glab: GuardLab, calling: str, called: str, reason: str
) -> None:
    before = glab.pacs.quiet(glab.guard)
    run = echo(calling, glab.port, called=called)
    assert rejected(run) and run.has(reason), run.output
    assert run.has("Rejected Permanent")
    time.sleep(0.3)
    assert glab.pacs.requests() - before == Counter()


# -- TLS -----------------------------------------------------------------------------------


def test_tls_client_certificate_maps_to_a_client(glab: GuardLab) -> None:
    assert echo_ok(echo("TLSVIEWER", glab.tls_port, *glab.tls("tls-viewer")))
    found = find("TLSVIEWER", glab.tls_port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID",
                 extra=glab.tls("tls-viewer"))  # fmt: skip
    assert find_ok(found) and find_responses(found) == glab.data.totals.studies
    # another certificate from the same CA, or none at all: not that client
    for other in (glab.tls("intruder"), glab.tls(None)):
        run = echo("TLSVIEWER", glab.tls_port, *other)
        assert rejected(run) and run.has("Calling AE Title Not Recognized"), run.output
    # a client without a certificate requirement may use anonymous TLS
    assert echo_ok(echo("VIEWER", glab.tls_port, *glab.tls(None)))


def _tls_move(glab: GuardLab, port: int, name: str | None, study: str) -> list[Any]:
    """C-MOVE from a pynetdicom client (DCMTK 3.6.7's movescu and getscu have no TLS) with
    the client certificate of ``name``; the responses, or [] when the association failed."""

    from pacsguard.net import NoDelayAE, client_context

    ae = NoDelayAE("TLSMOVER")
    ae.add_requested_context(MOVE)
    cert = key = None
    if name is not None:
        key, cert = glab.pki.clients[name]
    tls = (client_context(glab.pki.ca, cert, key), LOOPBACK) if port == glab.tls_port else None
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    assoc = ae.associate(LOOPBACK, port, ae_title="PACS", tls_args=tls)
    if not assoc.is_established:
        return []
    try:
        return [status for status, _ in assoc.send_c_move(query, "VIEWERSTORE", MOVE)]
    finally:
        assoc.release()


def test_tls_move_reaches_the_destination(glab: GuardLab) -> None:
    """A C-MOVE over TLS, the client named by its certificate: the instances reach the
    destination (plain, as the guard's destinations are) and the counts are right."""
    study = glab.study(1)
    count = glab.instances_of(study)
    started = time.time() - 1  # storescp names files by UID: count those written since

    def written() -> int:
        return sum(1 for p in glab.viewer_store.received() if p.stat().st_mtime >= started)

    responses = _tls_move(glab, glab.tls_port, "tls-mover", study)
    assert responses, "the TLS association was refused"
    final = responses[-1]
    assert final.Status == 0x0000, hex(final.Status)
    assert final.NumberOfCompletedSuboperations == count
    assert final.NumberOfFailedSuboperations == 0
    assert written() == count
    # the same AE title without the certificate, or with another one: refused
    time.sleep(1.1)
    started = time.time()
    assert _tls_move(glab, glab.port, None, study) == []
    assert _tls_move(glab, glab.tls_port, "intruder", study) == []
    assert written() == 0


def test_tls_listener_refuses_weak_protocols(glab: GuardLab) -> None:
    import socket
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:AES256-SHA:AES128-SHA256")  # no forward secrecy, CBC
    with socket.create_connection((LOOPBACK, glab.tls_port), timeout=5) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|handshake failure"):
            context.wrap_socket(raw).do_handshake()
    # a BCP 195 suite over TLS 1.2 is accepted
    good = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    good.check_hostname = False
    good.verify_mode = ssl.CERT_NONE
    good.maximum_version = ssl.TLSVersion.TLSv1_2
    good.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    with (
        socket.create_connection((LOOPBACK, glab.tls_port), timeout=5) as raw,
        good.wrap_socket(raw) as tls,
    ):
        assert tls.version() == "TLSv1.2"
    # the listener still serves after a failed handshake
    assert echo_ok(echo("VIEWER", glab.tls_port, *glab.tls(None)))


# -- research role -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deid_reference(glab: GuardLab) -> dict[str, set[str]]:
    """What `pacsguard deid` makes of the archive's files with the same key."""
    out = glab.work / "deid-reference"
    done = subprocess.run(
        [PACSGUARD, "deid", *map(str, glab.files), str(out), "--key", str(glab.key_file)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    values: dict[str, set[str]] = {"PatientID": set(), "StudyInstanceUID": set(), "sop": set()}
    for path in out.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        values["PatientID"].add(str(ds.PatientID))
        values["StudyInstanceUID"].add(str(ds.StudyInstanceUID))
        values["sop"].add(str(ds.SOPInstanceUID))
    return values


def _leaks(glab: GuardLab, text: str) -> list[str]:
    return sorted(v for v in glab.data.planted if v in text)


def _answers(run: Any, keyword: str, vr: str) -> list[str]:
    import re

    tag = {"PatientID": "0010,0020", "StudyInstanceUID": "0020,000d"}[keyword]
    return [v.strip("\x00") for v in re.findall(rf"\({tag}\) {vr} \[([^\] ]+)", run.output)]


IDENTIFYING = [
    "PatientName=A*", "PatientID=*", "PatientBirthDate=19500101-20000101",
    "AccessionNumber=1*", "StudyDescription=*CT*", "ReferringPhysicianName=*",
    "IssuerOfPatientID=X", "StudyDate=20200101", "0009,0010=ACME",
]  # fmt: skip


@pytest.mark.parametrize("key", IDENTIFYING)
def test_research_identifying_query_keys_are_refused(glab: GuardLab, key: str) -> None:
    before = glab.pacs.quiet(glab.guard)
    run = find("RESEARCH", glab.port, "QueryRetrieveLevel=STUDY", key, "StudyInstanceUID")
    assert not find_ok(run) and find_responses(run) == 0, run.output
    assert run.count("0x0?124"), run.output
    records = (glab.guard.config.state / "audit.jsonl").read_text().splitlines()
    last = [r for r in map(json.loads, records) if r.get("service") == "find"][-1]
    name = key.split("=")[0]
    assert last["refused_key"] == (f"({name})" if "," in name else name)
    time.sleep(0.3)
    assert glab.pacs.requests() - before == Counter()


def test_research_answers_are_deidentified_and_match_deid(
    glab: GuardLab, deid_reference: dict[str, set[str]], tmp_path: Path
) -> None:
    asked = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "StudyDate",
             "StudyDescription", "AccessionNumber", "ReferringPhysicianName")  # fmt: skip
    run = find("RESEARCH", glab.port, "QueryRetrieveLevel=STUDY", *asked)
    assert find_ok(run) and find_responses(run) == glab.data.totals.studies
    assert _leaks(glab, run.output) == []
    patient_ids = set(_answers(run, "PatientID", "LO"))
    studies = set(_answers(run, "StudyInstanceUID", "UI"))
    assert patient_ids == deid_reference["PatientID"]
    assert studies == deid_reference["StudyInstanceUID"]

    # matching on a pseudonymous Patient ID, through the guard's mapping
    pseudo = sorted(patient_ids)[0]
    one = find("RESEARCH", glab.port, "QueryRetrieveLevel=STUDY", f"PatientID={pseudo}",
               "StudyInstanceUID")  # fmt: skip
    assert find_ok(one) and 0 < find_responses(one) < glab.data.totals.studies
    assert set(_answers(one, "PatientID", "LO")) <= {pseudo}

    # retrieving by pseudonymous study UID: de-identified instances, the same as deid's
    study = sorted(studies)[0]
    got = get("RESEARCH", glab.port, tmp_path / "get", "QueryRetrieveLevel=STUDY",
              f"StudyInstanceUID={study}")  # fmt: skip
    assert get_ok(got), got.output
    retrieved = sorted((tmp_path / "get").iterdir())
    assert retrieved
    assert f"Number of Completed Suboperations : {len(retrieved)}" in got.output
    for path in retrieved:
        ds = pydicom.dcmread(path)
        assert str(ds.StudyInstanceUID) == study
        assert str(ds.SOPInstanceUID) in deid_reference["sop"]
        assert str(ds.PatientID) in deid_reference["PatientID"]
        assert _leaks(glab, path.read_bytes().decode("latin-1")) == []

    before = len(glab.research_store.received())
    moved = move("RESEARCH", glab.port, "RESEARCHSTORE", "QueryRetrieveLevel=STUDY",
                 f"StudyInstanceUID={study}")  # fmt: skip
    assert move_ok(moved), moved.output
    arrived = glab.research_store.received()[before:]
    assert len(arrived) == len(retrieved)
    assert all(_leaks(glab, p.read_bytes().decode("latin-1")) == [] for p in arrived)

    mapping = glab.guard.config.state / "research-map.sqlite"
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600


def test_research_real_identifiers_match_nothing(glab: GuardLab, tmp_path: Path) -> None:
    """A real study UID (not a pseudonym the guard handed out) never reaches the PACS."""
    before = glab.pacs.quiet(glab.guard)
    run = get("RESEARCH", glab.port, tmp_path, "QueryRetrieveLevel=STUDY",
              f"StudyInstanceUID={glab.study()}")  # fmt: skip
    assert get_ok(run) and not list(tmp_path.glob("*.*"))
    found = find("RESEARCH", glab.port, "QueryRetrieveLevel=STUDY",
                 f"StudyInstanceUID={glab.study()}")  # fmt: skip
    assert find_ok(found) and find_responses(found) == 0
    time.sleep(0.3)
    assert glab.pacs.requests() - before == Counter()


# -- limits --------------------------------------------------------------------------------


def test_response_cap_per_query(glab: GuardLab) -> None:
    assert glab.data.totals.studies > 2
    run = find("CAPPED", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_responses(run) == 2
    assert not find_ok(run) and run.has("Refused: OutOfResources"), run.output


def test_response_rate_per_client(glab: GuardLab) -> None:
    first = find("RATED", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_responses(first) == 3 and first.has("Refused: OutOfResources")
    second = find("RATED", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert find_responses(second) == 0 and second.has("Refused: OutOfResources")


def _hold(port: int, results: list[str], hold: float, spans: list[tuple[float, float]]) -> None:
    ae = AE("FLOODER")
    ae.add_requested_context(VERIFICATION)
    pdus: list[Any] = []
    handlers: list[Any] = [(evt.EVT_PDU_RECV, lambda e: pdus.append(e.pdu))]
    assoc = ae.associate(LOOPBACK, port, ae_title="PACS", evt_handlers=handlers)
    if assoc.is_established:
        results.append("accepted")
        start = time.monotonic()
        time.sleep(hold)
        spans.append((start, time.monotonic()))
        assoc.release()
        return
    reject = next((p for p in pdus if isinstance(p, A_ASSOCIATE_RJ)), None)
    if reject is not None:
        results.append(f"rj-{reject.result}-{reject.source}-{reject.reason_diagnostic}")
    else:
        results.append("other")


def test_a_flood_from_one_client_does_not_stop_another(glab: GuardLab) -> None:
    results: list[str] = []
    spans: list[tuple[float, float]] = []
    flood_started = time.monotonic()
    threads = [
        threading.Thread(target=_hold, args=(glab.port, results, 1.5, spans)) for _ in range(30)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    found = find("VIEWER", glab.port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")
    assert echo_ok(echo("VIEWER", glab.port))
    served_in = time.monotonic() - started
    for thread in threads:
        thread.join()
    flood = time.monotonic() - flood_started
    assert find_ok(found) and find_responses(found) == glab.data.totals.studies
    assert served_in < 5
    # a burst of three, then 30 a minute, never more than two at once; the rest get a
    # transient "local limit exceeded" reject
    accepted = results.count("accepted")
    assert 1 <= accepted <= 3 + int(flood / 2) + 1, (accepted, flood)
    assert accepted < 15
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2
    assert results.count("rj-2-3-2") == 30 - accepted, results


def test_idle_and_total_timeouts(glab: GuardLab) -> None:
    ae = AE("IDLER")
    ae.add_requested_context(VERIFICATION)
    idle = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    assert idle.is_established
    time.sleep(2.0)
    assert not idle.is_established  # dropped after 1 s without a PDU
    busy = ae.associate(LOOPBACK, glab.port, ae_title="PACS")
    assert busy.is_established
    started = time.monotonic()
    while busy.is_established and time.monotonic() - started < 6:
        busy.send_c_echo()
        time.sleep(0.3)
    assert not busy.is_established
    assert 2.0 < time.monotonic() - started < 4.5  # aborted at 2.5 s although never idle


# -- audit, report and CLI ----------------------------------------------------------------


def test_audit_names_peers_and_keys_never_values(glab: GuardLab) -> None:
    log = (glab.guard.config.state / "audit.jsonl").read_text()
    assert _leaks(glab, log) == []
    records = [json.loads(line) for line in log.splitlines()]
    finds = [r for r in records if r.get("service") == "find" and r.get("client") == "research"]
    assert any(r.get("refused_key") == "PatientName" for r in finds)
    assert all("keys" in r and "level" in r for r in finds)
    moves = [r for r in records if r.get("service") == "move" and r.get("outcome") == "success"]
    assert moves and all(r["instances"] > 0 and r["destination"] for r in moves)
    assert stat.S_IMODE((glab.guard.config.state / "audit.jsonl").stat().st_mode) == 0o600
    dicom = (glab.guard.config.state / "dicom-audit.xml.log").read_text()
    assert _leaks(glab, dicom) == []
    assert 'csd-code="110112"' in dicom and 'csd-code="110104"' in dicom  # query, transfer
    assert 'csd-code="110126"' in dicom  # the rejected associations


def test_guard_report_summarises_per_client(glab: GuardLab, tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(_toml(glab), encoding="utf-8")
    done = subprocess.run(
        [PACSGUARD, "guard", "report", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["client"]: r for r in json.loads(done.stdout)}
    assert rows["viewer"]["queries"] >= 1 and rows["viewer"]["instances_retrieved"] > 0
    assert rows["echo-only"]["refusals"] >= 4
    assert rows["research"]["refusals"] >= len(IDENTIFYING)
    assert rows["flooder"]["associations_rejected"] >= 1


def _toml(glab: GuardLab) -> str:
    config = glab.guard.config
    return (
        f'[guard]\nae_title = "PACS"\nport = {glab.port}\nstate = "{config.state}"\n'
        f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\n'
        f"port = {glab.archive.port}\n"
    )


def test_guard_run_cli(glab: GuardLab, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "guard.toml"
    config.write_text(
        f'[guard]\nae_title = "PACS"\nhost = "{LOOPBACK}"\nport = {port}\nstate = "state"\n'
        f'[guard.upstream]\nae_title = "ARCHIVE"\nhost = "{LOOPBACK}"\n'
        f"port = {glab.archive.port}\n"
        f'[[guard.client]]\nname = "viewer"\nae_title = "VIEWER"\nhost = "{LOOPBACK}"\n'
        f'allow = ["echo"]\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [PACSGUARD, "guard", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not echo_ok(run := echo("VIEWER", port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert echo_ok(run), run.output
        assert rejected(echo("OTHER", port))
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"listening on {LOOPBACK}:{port}" in err
    assert load_config(config).state.joinpath("audit.jsonl").is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[guard]\n", "ae_title: is required"),
        (
            '[guard]\nae_title="PACS"\nport=1\nalow=1\n[guard.upstream]\nae_title="A"\n'
            'host="127.0.0.1"\nport=1\n',
            "unknown key(s): alow",
        ),
        ('[guard]\nae_title="PACS"\nport=1\n', "upstream: is required"),
        (
            '[guard]\nae_title="PACS"\nport=104\n[guard.upstream]\nae_title="A"\nhost="127.0.0.1"\n'
            'port=1\n[[guard.client]]\nname="x"\nae_title="X"\nhost="127.0.0.1"\nallow=["fnd"]\n',
            "unknown service 'fnd'",
        ),
        (
            '[guard]\nae_title="PACS"\nport=104\n[guard.upstream]\nae_title="A"\nhost="127.0.0.1"\n'
            'port=1\n[[guard.client]]\nname="x"\nae_title="X"\nhost="127.0.0.1"\nrole="research"\n',
            "is required by the research client 'x'",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_is_one_error_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [PACSGUARD, "guard", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
