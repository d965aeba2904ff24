"""pacsguard.net.rawstore: C-STOREs framed onto the socket, against DCMTK and pynetdicom."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import evt
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import decode, encode

from pacsguard.guard.links import dataset_bytes
from pacsguard.lab.procs import LOOPBACK, free_ports
from pacsguard.net.rawstore import (
    AssociationLost,
    RawStore,
    p_data_frames,
    p_data_pdus,
    send_pieces,
    serve_stores_on_arrival,
    store_command,
    store_response,
)
from pacsguard.net.sockets import NoDelayAE, start_server

ENV = {**os.environ, "TCP_NODELAY": "1"}


def _instances(folder: Path, count: int, odd_uid: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        uid: str = generate_uid()
        if odd_uid:  # odd lengths are padded with a NUL on the wire
            uid = f"1.2.826.0.1.3680043.10.1000.{index}" + ("" if index % 2 else ".1")
        meta.MediaStorageSOPInstanceUID = UID(uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.Rows, ds.Columns = "RAW-TEST", 64, 64
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = bytes(range(256)) * 32 * (index + 1)  # sizes across PDU boundaries
        ds.Rows = 64 * (index + 1)
        path = folder / f"i{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_command_sets_equal_pynetdicoms() -> None:
    """The hand-encoded command sets decode to what pynetdicom itself encodes."""
    primitive = C_STORE()
    primitive.MessageID = 7
    primitive.AffectedSOPClassUID = CTImageStorage
    primitive.AffectedSOPInstanceUID = "1.2.3.45"  # odd length: padded with NUL
    primitive.Priority = 0
    primitive.MoveOriginatorApplicationEntityTitle = "CLIENT"
    primitive.MoveOriginatorMessageID = 3
    primitive.DataSet = BytesIO(b"\x08\x00\x18\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    theirs = message.command_set
    ours = decode(BytesIO(store_command(
        CTImageStorage, "1.2.3.45", 7, originator_ae="CLIENT", originator_id=3
    )), True, True)  # fmt: skip
    for keyword in ("CommandGroupLength", "AffectedSOPClassUID", "CommandField", "MessageID",
                    "Priority", "AffectedSOPInstanceUID", "MoveOriginatorMessageID"):  # fmt: skip
        assert ours[keyword].value == theirs[keyword].value, keyword
    assert ours.MoveOriginatorApplicationEntityTitle.strip() == "CLIENT"
    assert ours.CommandDataSetType != 0x0101  # a data set follows
    assert encode(ours, True, True) == store_command(
        CTImageStorage, "1.2.3.45", 7, originator_ae="CLIENT", originator_id=3
    )
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 7
    response.AffectedSOPClassUID = CTImageStorage
    response.AffectedSOPInstanceUID = "1.2.3.45"
    response.Status = 0xA700
    rsp = C_STORE_RSP()
    rsp.primitive_to_message(response)
    mine = decode(BytesIO(store_response(CTImageStorage, "1.2.3.45", 7, 0xA700)), True, True)
    for element in rsp.command_set:
        assert mine[element.tag].value == element.value, element.keyword


def _theirs(message_class: Any, primitive: Any) -> Dataset:
    message = message_class()
    message.primitive_to_message(primitive)
    return message.command_set  # type: ignore[no-any-return]


def _same(ours: bytes, theirs: Dataset) -> None:
    mine = decode(BytesIO(ours), True, True)
    assert {e.tag for e in mine} == {e.tag for e in theirs}
    for element in theirs:
        value = mine[element.tag].value
        if element.VR == "AE":
            value, expected = str(value).strip(), str(element.value).strip()
        elif element.keyword == "CommandDataSetType":  # any value but 0x0101: a data set
            value, expected = value == 0x0101, element.value == 0x0101
        else:
            expected = element.value
        assert value == expected, element.keyword


def test_retrieve_and_find_commands_equal_pynetdicoms() -> None:
    """The hand-encoded C-FIND, C-MOVE, C-GET and C-CANCEL requests and the C-FIND, C-GET
    and C-MOVE responses hold exactly the elements and values pynetdicom encodes."""
    from pynetdicom.dimse_messages import (
        C_CANCEL_RQ,
        C_FIND_RQ,
        C_FIND_RSP,
        C_GET_RQ,
        C_GET_RSP,
        C_MOVE_RQ,
        C_MOVE_RSP,
    )
    from pynetdicom.dimse_primitives import C_CANCEL, C_FIND, C_GET, C_MOVE

    from pacsguard.net.rawstore import (
        C_GET_RSP_FIELD,
        C_MOVE_RSP_FIELD,
        cancel_command,
        find_command,
        find_response,
        get_command,
        move_command,
        retrieve_response,
    )

    FIND, MOVE, GET = (f"1.2.840.10008.5.1.4.1.2.2.{n}" for n in (1, 2, 3))  # Study Root
    identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    kind: Any
    message: Any
    for kind, message, command in (
        (C_FIND(), C_FIND_RQ, find_command(str(FIND), 9)),
        (C_GET(), C_GET_RQ, get_command(str(GET), 9)),
    ):
        kind.MessageID, kind.Priority, kind.Identifier = 9, 0, identifier
        kind.AffectedSOPClassUID = FIND if isinstance(kind, C_FIND) else GET
        _same(command, _theirs(message, kind))
    move = C_MOVE()
    move.MessageID, move.Priority, move.Identifier = 9, 0, identifier
    move.AffectedSOPClassUID, move.MoveDestination = MOVE, "STORE"  # odd: padded
    _same(move_command(str(MOVE), 9, "STORE"), _theirs(C_MOVE_RQ, move))
    cancel = C_CANCEL()
    cancel.MessageIDBeingRespondedTo = 9
    _same(cancel_command(9), _theirs(C_CANCEL_RQ, cancel))
    for status, with_data in ((0xFF00, True), (0x0000, False), (0xA700, False)):
        found = C_FIND()
        found.MessageIDBeingRespondedTo, found.Status = 9, status
        found.AffectedSOPClassUID = FIND
        found.Identifier = identifier if with_data else None
        _same(find_response(str(FIND), 9, status, with_data), _theirs(C_FIND_RSP, found))
    for field, kind, message, model in (
        (C_GET_RSP_FIELD, C_GET(), C_GET_RSP, GET),
        (C_MOVE_RSP_FIELD, C_MOVE(), C_MOVE_RSP, MOVE),
    ):
        kind.MessageIDBeingRespondedTo, kind.Status, kind.AffectedSOPClassUID = 9, 0xFF00, model
        kind.NumberOfRemainingSuboperations, kind.NumberOfCompletedSuboperations = 4, 3
        kind.NumberOfFailedSuboperations, kind.NumberOfWarningSuboperations = 1, 0
        _same(retrieve_response(field, str(model), 9, 0xFF00, 4, 3, 1, 0), _theirs(message, kind))


@pytest.mark.parametrize("max_pdu", [0, 7, 16384, 16390])
def test_p_data_framing_within_the_peers_maximum(max_pdu: int) -> None:
    data = os.urandom(50_000)
    stream = b"".join(p_data_pdus(1, 0x00, 0x02, data, max_pdu))
    offset, fragments, controls = 0, [], []
    while offset < len(stream):
        kind, _, length = struct.unpack(">BBI", stream[offset : offset + 6])
        assert kind == 0x04
        if max_pdu:
            assert length <= max_pdu
        item_length, context, control = struct.unpack(">IBB", stream[offset + 6 : offset + 12])
        assert item_length == length - 4 and context == 1
        fragments.append(stream[offset + 12 : offset + 6 + length])
        controls.append(control)
        offset += 6 + length
    assert b"".join(fragments) == data
    assert controls[-1] == 0x02 and all(c == 0x00 for c in controls[:-1])


def test_raw_store_to_storescp_is_byte_identical(tmp_path: Path) -> None:
    files = _instances(tmp_path / "in", 4, odd_uid=True)
    (port,) = free_ports(1)
    out = tmp_path / "out"
    out.mkdir()
    scp = subprocess.Popen(
        ["storescp", "-v", "-pdu", "16384", "-od", str(out), "-uf", str(port)], env=ENV,
        stdout=(tmp_path / "storescp.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        from pacsguard.lab.procs import listening

        for _ in range(200):
            if listening(port):
                break
            threading.Event().wait(0.05)
        ae = NoDelayAE("RAWTEST")
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate(LOOPBACK, port, ae_title="ANY")
        assert assoc.is_established and RawStore.usable(assoc)
        context = int(assoc.accepted_contexts[0].context_id or 0)
        raw = RawStore(assoc).__enter__()
        for index, path in enumerate(files):
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            data = dataset_bytes(path)
            assert data is not None
            status = raw.send(context, CTImageStorage, uid, data, index + 1,
                              originator_ae="MOVER", originator_id=9)  # fmt: skip
            assert status == 0
        raw.release()
        assert not assoc.is_established
        assoc.dul.join(5)
    finally:
        scp.terminate()
        scp.wait(10)
    received = sorted(out.iterdir())
    assert len(received) == len(files)
    for path in files:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        (twin,) = [p for p in received if p.name == f"CT.{uid}"]  # storescp -uf
        assert pydicom.dcmread(twin) == pydicom.dcmread(path)
        assert dataset_bytes(twin) == dataset_bytes(path)


def test_raw_store_reports_failures_and_a_lost_peer(tmp_path: Path) -> None:
    """The peer's failure status comes back as is; an aborting peer raises
    ``AssociationLost`` instead of waiting for ever."""
    (path,) = _instances(tmp_path / "in", 1)
    data = dataset_bytes(path)
    assert data is not None
    calls: list[int] = []

    def on_store(event: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            event.assoc.abort()
            return 0
        return 0xA700

    (port,) = free_ports(1)
    scp_ae = NoDelayAE("RECV")
    scp_ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
    server = start_server(scp_ae, LOOPBACK, port, [(evt.EVT_C_STORE, on_store)])
    try:
        ae = NoDelayAE("RAWTEST")
        ae.network_timeout = 10
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate(LOOPBACK, port, ae_title="RECV")
        context = int(assoc.accepted_contexts[0].context_id or 0)
        with RawStore(assoc) as raw:
            assert raw.send(context, CTImageStorage, "1.2.3", data, 1) == 0xA700
            with pytest.raises(AssociationLost):
                raw.send(context, CTImageStorage, "1.2.4", data, 2)
            assert not raw.alive
        assert not assoc.is_established
    finally:
        server.shutdown()


def test_stores_served_on_arrival_answer_storescu(tmp_path: Path) -> None:
    """DCMTK's storescu gets each status the serving function returns, and a function
    that raises is a failure status, never a hang or a dropped association."""
    files = _instances(tmp_path / "in", 3)
    seen: list[tuple[str, int]] = []

    def serve(_context: int, request: Any, syntax: str) -> int:
        seen.append((syntax, len(request.DataSet.getvalue())))
        if len(seen) == 2:
            raise RuntimeError("boom")
        return 0

    def on_requested(event: Any) -> None:
        serve_stores_on_arrival(event.assoc, serve)

    (port,) = free_ports(1)
    ae = NoDelayAE("RECV")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
    server = start_server(ae, LOOPBACK, port, [(evt.EVT_REQUESTED, on_requested)])
    try:
        done = subprocess.run(
            ["storescu", "-v", "-nh", "-xs", "-aec", "RECV", LOOPBACK, str(port), *map(str, files)],
            capture_output=True, text=True, env=ENV, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert [s for s, _ in seen] == [ExplicitVRLittleEndian] * 3
    assert [n for _, n in seen] == [len(dataset_bytes(p) or b"") for p in files]
    output = done.stdout + done.stderr
    assert output.count("Received Store Response (Success)") == 2, output
    assert "Received Store Response (Error: CannotUnderstand)" in output, output  # 0xC000


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=70_000),
    cuts=st.lists(st.integers(min_value=0, max_value=70_000), max_size=8),
    max_pdu=st.sampled_from([0, 7, 8, 9, 100, 16384, 16390, 65536]),
)
def test_frames_of_chunks_equal_the_joined_framing(data: bytes, cuts: list[int],
                                                   max_pdu: int) -> None:  # fmt: skip
    """The data set in PDV fragments as they came (any split, empty pieces too) is framed
    byte for byte as the joined data set: same PDUs, within the maximum, same bytes."""
    bounds = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    pieces = p_data_frames(5, 0x00, 0x02, [bytearray(c) for c in chunks], max_pdu)
    assert b"".join(pieces) == b"".join(p_data_pdus(5, 0x00, 0x02, data, max_pdu))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=700),
    seed=st.integers(min_value=0, max_value=1 << 30),
)
def test_send_pieces_writes_every_byte_in_order(sizes: list[int], seed: int) -> None:
    """More pieces than one sendmsg() takes, partial writes on a small send buffer: the
    peer reads exactly the pieces joined."""
    rng = random.Random(seed)
    pieces: list[Any] = [rng.randbytes(size) for size in sizes]
    expected = b"".join(pieces)
    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    got = bytearray()

    def read() -> None:
        while len(got) < len(expected):
            chunk = right.recv(65536)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        send_pieces(left, [memoryview(p) if i % 2 else p for i, p in enumerate(pieces)])
    finally:
        reader.join(10)
        left.close()
        right.close()
    assert bytes(got) == expected


def test_a_store_response_echoes_a_uid_outside_ascii_instead_of_failing() -> None:
    """A C-STORE whose SOP Instance UID held a byte outside ASCII (read as U+FFFD) was
    quarantined, but its C-STORE-RSP could not be encoded: the sender got an A-ABORT, took
    it for a passing failure and sent the instance again, once per retry (campaign 03)."""
    encoded = store_response(CTImageStorage, "1.2.3.\ufffd4", 7, 0xC000, "not DICOM")
    command = decode(BytesIO(encoded), True, True)
    assert command.Status == 0xC000 and command.ErrorComment == "not DICOM"
    assert command.AffectedSOPInstanceUID == "1.2.3.?4"


def test_an_abort_without_a_socket_is_a_quiet_end() -> None:
    """A sender that aborts right after the A-ASSOCIATE-AC leaves the takeover no socket:
    the abort was an AttributeError traceback on the gateway's stderr (campaign 02)."""
    taken = RawStore.__new__(RawStore)
    taken.assoc = type("Assoc", (), {"is_aborted": False})()
    taken.alive, taken._sock = True, None
    finished: list[bool] = []
    taken._finish = lambda: finished.append(True)  # type: ignore[method-assign]
    taken._abort()
    assert taken.assoc.is_aborted and finished == [True]


class _Trickle:
    """A socket that yields ``data`` a few bytes at a time, then closes."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data, self.step = data, step

    def recv_into(self, view: memoryview, size: int) -> int:
        count = min(size, self.step, len(self.data))
        view[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


def test_a_claimed_pdu_length_is_not_set_aside_before_its_bytes_come() -> None:
    """A 6-byte header claiming 1 GiB made the guard and the gateway allocate 1 GiB, before
    any AE title was checked: any host that reached the port could exhaust memory
    (campaign D, 02)."""
    import tracemalloc

    from pacsguard.net.sockets import FIRST_RECV, BulkRecvSocket

    sock = BulkRecvSocket.__new__(BulkRecvSocket)
    sock.socket = _Trickle(b"x" * 1000)  # type: ignore[assignment]
    tracemalloc.start()
    try:
        got = sock.recv(1 << 30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == b"x" * 1000
    assert peak < 4 * FIRST_RECV


@pytest.mark.parametrize("size", [0, 1, 5000, (1 << 20) + 3, (3 << 20) + 11])
@pytest.mark.parametrize("pushed", [0, 10, (1 << 20) + 5])
def test_reads_past_the_first_allocation_are_whole_and_in_order(size: int, pushed: int) -> None:
    from pacsguard.net.sockets import BulkRecvSocket

    data = random.Random(size + pushed).randbytes(size + 100)
    sock = BulkRecvSocket.__new__(BulkRecvSocket)
    sock.pushback = bytearray(data[:pushed])
    sock.socket = _Trickle(data[pushed:], step=65536)  # type: ignore[assignment]
    assert sock.recv(size) == data[:size]
    rest = bytes(sock.pushback or b"") + sock.socket.data  # type: ignore[attr-defined]
    assert rest == data[size:]


def _associate_rq(calling: str, called: str) -> bytes:
    def item(kind: int, data: bytes) -> bytes:
        return struct.pack(">BBH", kind, 0, len(data)) + data

    context = struct.pack(">BBBB", 1, 0, 0, 0) + item(0x30, b"1.2.840.10008.1.1")
    context += item(0x40, b"1.2.840.10008.1.2")
    body = struct.pack(">HH", 1, 0) + called.encode().ljust(16) + calling.encode().ljust(16)
    body += b"\0" * 32 + item(0x10, b"1.2.840.10008.3.1.1.1") + item(0x20, context)
    body += item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4"))
    return struct.pack(">BBI", 1, 0, len(body)) + body


def _pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    head = b""
    while len(head) < 6:
        chunk = sock.recv(6 - len(head))
        if not chunk:
            return None
        head += chunk
    kind, _, length = struct.unpack(">BBI", head)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return kind, body


def test_a_command_set_pynetdicom_cannot_decode_aborts_the_association() -> None:
    """A command set without its Command Field raised in pynetdicom's reactor thread: the
    association never ended, its client's slot stayed taken, and a traceback went to stderr
    (campaign D, 03). It is now an invalid PDU: A-ABORT, and the association ends."""
    from pynetdicom.sop_class import Verification

    ended: list[str] = []
    (port,) = free_ports(1)
    ae = NoDelayAE("RECV")
    ae.add_supported_context(Verification, ["1.2.840.10008.1.2"])
    handlers = [(evt.EVT_ABORTED, lambda e: ended.append("aborted")),
                (evt.EVT_CONN_CLOSE, lambda e: ended.append("closed"))]  # fmt: skip
    failures: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)  # type: ignore[assignment]
    server = start_server(ae, LOOPBACK, port, handlers)
    try:
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(_associate_rq("SENDER", "RECV"))
            accepted = _pdu(sock)
            assert accepted is not None and accepted[0] == 0x02
            command = struct.pack("<HHII", 0, 0, 4, 12) + struct.pack("<HHI", 0, 2, 4) + b"1.2\0"
            pdv = struct.pack(">IBB", len(command) + 2, 1, 0x03) + command
            sock.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
            answer = _pdu(sock)
            assert answer is not None and answer[0] == 0x07  # A-ABORT
        deadline = time.monotonic() + 10
        while "closed" not in ended and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
        threading.excepthook = previous
    assert "closed" in ended and not failures, (ended, failures)
