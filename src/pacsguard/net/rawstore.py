"""C-STORE requests written straight onto an established association's socket.

pynetdicom sends a DIMSE message as P-DATA primitives that its DUL reactor takes off a
queue one per loop, encodes and writes one PDU at a time, and ``send_c_store`` pauses and
resumes the association's reactor around every request (each pause waits out a reactor
sleep). A relay that already holds an instance's encoded dataset, in the transfer syntax
of an accepted presentation context, needs none of that: ``RawStore`` encodes the command
set (PS3.7 9.3.1.1, Implicit VR Little Endian), frames command and dataset as P-DATA-TF
PDUs within the peer's maximum PDU length (PS3.8 9.3.5, E.2) and writes them with one
``sendall``; the C-STORE-RSP is read straight off the socket (``RawStore`` owns it).

``serve_stores_on_arrival(assoc, serve)`` is the receiving half: on an acceptor association
(a PACS delivering a C-MOVE's instances), each C-STORE-RQ is served as soon as its last
fragment is decoded, on the DUL's own thread (the only thread that touches the socket, so
TLS is fine), and its C-STORE-RSP is written at once: no wait for the association reactor's
next 1 ms poll, nor for the DUL's next pass to send the response.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse_primitives import C_ECHO, C_STORE

from pacsguard.net.sockets import kernel_timeout

CONTROL_COMMAND_LAST = 0x03
CONTROL_DATA = 0x00
CONTROL_DATA_LAST = 0x02
UNLIMITED_FRAGMENT = 4 * 1024 * 1024  # when the peer sets no maximum (0)
UNABLE_TO_PROCESS = 0xC000
MAX_RESPONSE_PDU = 1 << 20
# A send buffer that takes a whole instance: ``sendall`` returns once the kernel holds it,
# and the peer reads it while this thread goes on (a relay answers its own sender meanwhile).
SEND_BUFFER = 4 * 1024 * 1024


def _element(group_element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0x0000, group_element, len(value)) + value


def _uid(value: str) -> bytes:
    # a request's UID is echoed as received, but for a byte outside ASCII (read as U+FFFD):
    # a "?" there still lets its C000 and Error Comment reach the sender, not an A-ABORT
    raw = value.encode("ascii", "replace")
    return raw + b"\x00" if len(raw) % 2 else raw


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def _lo(text: str) -> bytes:
    """An LO value of the command set: the default repertoire, no backslash (a value
    delimiter), at most 64 characters, padded with a space to even length."""
    raw = text.encode("ascii", "replace").replace(b"\\", b"/")[:64]
    return raw + b" " if len(raw) % 2 else raw


def store_command(
    sop_class: str,
    sop_instance: str,
    message_id: int,
    *,
    priority: int = 0,
    originator_ae: str | None = None,
    originator_id: int | None = None,
) -> bytes:
    """The command set of a C-STORE-RQ with a data set (PS3.7 9.3.1.1), encoded."""
    body = b"".join(
        [
            _element(0x0002, _uid(sop_class)),  # Affected SOP Class UID
            _element(0x0100, _us(0x0001)),  # Command Field: C-STORE-RQ
            _element(0x0110, _us(message_id)),
            _element(0x0700, _us(priority)),
            _element(0x0800, _us(0x0000)),  # Command Data Set Type: a data set follows
            _element(0x1000, _uid(sop_instance)),  # Affected SOP Instance UID
        ]
    )
    if originator_ae is not None and originator_id is not None:
        title = originator_ae.strip().encode("ascii")[:16]
        title += b" " if len(title) % 2 else b""
        body += _element(0x1030, title) + _element(0x1031, _us(originator_id))
    return _element(0x0000, struct.pack("<I", len(body))) + body


def store_response(
    sop_class: str, sop_instance: str, message_id: int, status: int, comment: str | None = None
) -> bytes:
    """The command set of a C-STORE-RSP (PS3.7 9.3.1.2), encoded; ``comment``: its Error
    Comment (0000,0902), on a failure only."""
    body = b"".join(
        [
            _element(0x0002, _uid(sop_class)),
            _element(0x0100, _us(0x8001)),  # Command Field: C-STORE-RSP
            _element(0x0120, _us(message_id)),  # Message ID Being Responded To
            _element(0x0800, _us(0x0101)),  # Command Data Set Type: none
            _element(0x0900, _us(status)),
            _element(0x0902, _lo(comment)) if comment and status != 0 else b"",
            _element(0x1000, _uid(sop_instance)),
        ]
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def p_data_pdus(
    context_id: int, control: int, last: int, data: bytes, max_pdu: int
) -> list[bytes | memoryview]:
    """``data`` as P-DATA-TF PDUs of one PDV each; ``last`` is the control header of the
    final fragment. ``max_pdu``: the peer's Maximum Length Received (0: no limit). The
    fragments are views of ``data`` (``b"".join`` makes the one copy)."""
    size = max_pdu - 6 if max_pdu > 6 else UNLIMITED_FRAGMENT
    view = memoryview(data)
    pieces: list[bytes | memoryview] = []
    start = 0
    while True:
        fragment = view[start : start + size]
        start += len(fragment)
        header = last if start >= len(view) else control
        pieces.append(struct.pack(">BBIIBB", 0x04, 0x00, len(fragment) + 6,
                                  len(fragment) + 2, context_id, header))  # fmt: skip
        pieces.append(fragment)
        if start >= len(view):
            return pieces


Buffer = bytes | bytearray | memoryview
# iovecs handed to one sendmsg() (the kernel takes at most 1024)
IOV_BATCH = 512


def p_data_frames(
    context_id: int, control: int, last: int, chunks: Sequence[Buffer], max_pdu: int
) -> list[Buffer]:
    """The bytes of ``chunks`` (one data set, in order) as P-DATA-TF PDUs of one PDV each,
    as ``p_data_pdus`` frames them, without joining the chunks first: the pieces (headers,
    and views of the chunks; a fragment that spans chunks is several views under one
    header) are for ``send_pieces``, or ``b"".join``. Each PDU stays within ``max_pdu``
    (the peer's Maximum Length Received; 0: no limit)."""
    size = max_pdu - 6 if max_pdu > 6 else UNLIMITED_FRAGMENT
    views = [memoryview(chunk).cast("B") for chunk in chunks]
    total = sum(len(view) for view in views)
    # fragments start at every multiple of ``size`` below ``total``; the one at ``whole``
    # is the last (the only one that may be short, and the only one that may be empty)
    whole = (total - 1) // size * size if total else 0
    full = struct.pack(">BBIIBB", 0x04, 0x00, size + 6, size + 2, context_id, control)
    tail = struct.pack(">BBIIBB", 0x04, 0x00, total - whole + 6, total - whole + 2, context_id,
                       last)  # fmt: skip
    if not total:
        return [tail]
    pieces: list[Buffer] = []
    start = 0  # where ``view`` begins in the data set
    for view in views:
        end = start + len(view)
        cut = start  # the data set's bytes before ``cut`` are in ``pieces``
        for boundary in range(-(-start // size) * size, end, size):
            if boundary > cut:
                pieces.append(view[cut - start : boundary - start])
            pieces.append(full if boundary < whole else tail)
            cut = boundary
        if end > cut:
            pieces.append(view[cut - start :])
        start = end
    return pieces


def send_pieces(sock: Any, pieces: list[Buffer]) -> None:
    """Write ``pieces`` in order, as ``sendall(b"".join(pieces))`` would, without joining
    them: ``sendmsg`` gathers them (at most ``IOV_BATCH`` a call), and a partial write goes
    on from where it stopped. A TLS socket (no ``sendmsg``) gets them joined. ``pieces``
    is consumed."""
    if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
        sock.sendall(b"".join(pieces))
        return
    index = 0
    while index < len(pieces):
        batch = pieces[index : index + IOV_BATCH]
        sent = sock.sendmsg(batch)
        if not sent and any(len(piece) for piece in batch):
            raise OSError("the connection took no bytes")
        for piece in batch:
            length = len(piece)
            if sent < length:
                pieces[index] = memoryview(piece)[sent:]
                break
            sent -= length
            index += 1


class AssociationLost(Exception):
    """The peer aborted or released, or the socket failed or timed out."""


class RawStore:
    """A requestor association taken over for C-STOREs: ``with RawStore(assoc) as raw:
    raw.send(...)``, then ``raw.release()``. Entering pauses pynetdicom's association reactor
    and stops its DUL thread, so that this thread alone reads and writes the socket: each
    request is framed and written with one ``sendall`` and its C-STORE-RSP read straight off
    the socket (no reactor poll between them), plain TCP or TLS alike. After ``release`` (or
    a lost association) the pynetdicom ``Association`` is closed and its threads end."""

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc
        peer = assoc.acceptor if assoc.is_requestor else assoc.requestor
        self.max_pdu = int(peer.maximum_length or 0)
        self.alive = False
        self._sock: Any = None
        self._outstanding: int | None = None

    @staticmethod
    def usable(assoc: Any) -> bool:
        dul = assoc.dul
        return (
            assoc.is_requestor
            and assoc.is_established
            and getattr(getattr(dul, "socket", None), "socket", None) is not None
            and dul.event_queue.empty()
            and dul.to_user_queue.empty()
        )

    def __enter__(self) -> RawStore:
        assoc = self.assoc
        assoc._reactor_checkpoint.clear()
        deadline = time.monotonic() + 5.0
        while not assoc._is_paused and assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.0001)
        assoc.dul.kill_dul()  # the DUL loop ends before it next reads the socket
        assoc.dul.join(timeout=5.0)
        if assoc.dul.is_alive() or not assoc._is_paused:
            self._finish()
            raise AssociationLost("pynetdicom's reactor did not stop")
        self._sock = assoc.dul.socket.socket
        with contextlib.suppress(OSError):  # the kernel caps it (net.core.wmem_max)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        timeout = self._sock.gettimeout()  # pynetdicom's network timeout, if it set one
        kernel_timeout(
            self._sock, timeout if timeout is not None else assoc.network_timeout or 60.0
        )
        self.alive = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.alive:
            self._abort()

    def send(
        self,
        context_id: int,
        sop_class: str,
        sop_instance: str,
        dataset: Buffer | Sequence[Buffer],
        message_id: int,
        *,
        originator_ae: str | None = None,
        originator_id: int | None = None,
    ) -> int:
        """Send one C-STORE-RQ and return the status of the peer's C-STORE-RSP; raises
        ``AssociationLost`` (the association is then closed)."""
        self.submit(context_id, sop_class, sop_instance, dataset, message_id,
                    originator_ae=originator_ae, originator_id=originator_id)  # fmt: skip
        return self.collect()

    def submit(
        self,
        context_id: int,
        sop_class: str,
        sop_instance: str,
        dataset: Buffer | Sequence[Buffer],
        message_id: int,
        *,
        originator_ae: str | None = None,
        originator_id: int | None = None,
    ) -> None:
        """Write one C-STORE-RQ; its response is read by ``collect`` (before the next
        ``submit``: one request outstanding, the default asynchronous operations window).
        ``dataset``: the encoded data set, or its bytes in consecutive chunks (sent as they
        are, in order, never joined). Raises ``AssociationLost`` (the association is then
        closed)."""
        if not self.alive:
            raise AssociationLost("the association is closed")
        if self._outstanding is not None:
            raise RuntimeError("collect the previous response first")
        command = store_command(
            sop_class, sop_instance, message_id, originator_ae=originator_ae,
            originator_id=originator_id,
        )  # fmt: skip
        pieces: list[Buffer] = []
        pieces += p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, command,
                              self.max_pdu)  # fmt: skip
        chunks = [dataset] if isinstance(dataset, bytes | bytearray | memoryview) else dataset
        pieces += p_data_frames(context_id, CONTROL_DATA, CONTROL_DATA_LAST, chunks, self.max_pdu)
        try:
            send_pieces(self._sock, pieces)
        except OSError as exc:
            self._abort()
            raise AssociationLost(str(exc) or type(exc).__name__) from None
        self._outstanding = message_id

    @property
    def outstanding(self) -> bool:
        return self._outstanding is not None

    def collect(self) -> int:
        """The status of the C-STORE-RSP to the last ``submit``; raises ``AssociationLost``
        (the association is then closed)."""
        message_id, self._outstanding = self._outstanding, None
        if message_id is None:
            raise RuntimeError("no request outstanding")
        try:
            while True:
                fields = self._command()
                if fields.get(0x0100) == 0x8001 and fields.get(0x0120) == message_id:
                    return int(fields.get(0x0900, UNABLE_TO_PROCESS))
                # anything else (a late response to an earlier request) is not this one
        except (OSError, ValueError, AssociationLost) as exc:
            self._abort()
            raise AssociationLost(str(exc) or type(exc).__name__) from None

    def release(self) -> None:
        """A-RELEASE-RQ, wait for the A-RELEASE-RP, close (an abort if that fails)."""
        if not self.alive:
            return
        try:
            self._sock.sendall(struct.pack(">BBI", 0x05, 0x00, 4) + b"\x00" * 4)
            while True:
                kind, _body = self._pdu()
                if kind == 0x06:
                    break
                if kind in (0x05, 0x07):
                    raise AssociationLost("released or aborted by the peer")
        except (OSError, ValueError, AssociationLost):
            self._abort()
            return
        self.assoc.is_released = True
        self._finish()

    def _abort(self) -> None:
        if self._sock is not None:  # None: the peer's socket was gone before the takeover
            with contextlib.suppress(OSError):
                self._sock.sendall(struct.pack(">BBIBBBB", 0x07, 0x00, 4, 0, 0, 0, 0))
        self.assoc.is_aborted = True
        self._finish()

    def _finish(self) -> None:
        self.alive = False
        assoc = self.assoc
        assoc.is_established = False
        sock = assoc.dul.socket
        remote = assoc.acceptor if assoc.is_requestor else assoc.requestor
        address = getattr(remote.address_info, "as_tuple", None)
        with contextlib.suppress(Exception):
            sock.close()
        if not assoc.dul.is_alive():  # its state machine would have said so: say it here
            evt.trigger(assoc, evt.EVT_CONN_CLOSE, {"address": address})
        assoc._reactor_checkpoint.set()  # the reactor finds the DUL gone and ends

    def _exact(self, n: int) -> bytes:
        reader: _Reader | None = getattr(self, "_reader", None)
        if reader is None or reader.sock is not self._sock:
            reader = self._reader = _Reader(self._sock)
        return bytes(reader.exact(n))

    def _pdu(self) -> tuple[int, bytes]:
        kind, _reserved, length = struct.unpack(">BBI", self._exact(6))
        if length > MAX_RESPONSE_PDU:
            raise ValueError("a PDU larger than a C-STORE response can be")
        return kind, self._exact(length)

    def _command(self) -> dict[int, int]:
        """Read P-DATA-TF PDUs until a whole command set has come; its US elements."""
        fragments: list[bytes] = []
        while True:
            kind, body = self._pdu()
            if kind != 0x04:
                raise AssociationLost("released or aborted by the peer")
            offset = 0
            while offset + 6 <= len(body):
                (item_length,) = struct.unpack(">I", body[offset : offset + 4])
                control = body[offset + 5]
                value = body[offset + 6 : offset + 4 + item_length]
                offset += 4 + item_length
                if not control & 0x01:
                    raise ValueError("a data set where a C-STORE response was expected")
                fragments.append(value)
                if control & 0x02:
                    return _us_elements(b"".join(fragments))


def _us_elements(command: bytes) -> dict[int, int]:
    """The 2-byte (US) elements of an Implicit VR Little Endian command set, by element."""
    fields: dict[int, int] = {}
    offset = 0
    while offset + 8 <= len(command):
        _group, element, length = struct.unpack("<HHI", command[offset : offset + 8])
        if length == 2:
            (fields[element],) = struct.unpack("<H", command[offset + 8 : offset + 10])
        offset += 8 + length
    return fields


# (context ID, C_STORE request, syntax) -> status, or (status, then): ``then()`` runs once
# the C-STORE-RSP is written (a relay answers its sender first and forwards meanwhile)
@dataclass(frozen=True)
class StoreAnswer:
    """What a store server answers: the status, the Error Comment of a failure (no value
    of the data set in it), and what to run once the response is out."""

    status: int
    comment: str | None = None
    then: Callable[[], None] | None = None


# serve(context ID, request, transfer syntax) -> a status, (status, then), or a StoreAnswer
StoreServer = Callable[[int, Any, str], "int | tuple[int, Callable[[], None]] | StoreAnswer"]


def _served(serve: StoreServer, context_id: int, request: Any, context: Any) -> StoreAnswer:
    """The answer to one C-STORE-RQ: a failure status, never an exception."""
    try:
        if context is None:
            raise LookupError("no such presentation context")
        answer = serve(context_id, request, str(context.transfer_syntax[0]))
    except Exception:
        return StoreAnswer(UNABLE_TO_PROCESS)
    if isinstance(answer, StoreAnswer):
        return answer
    return (
        StoreAnswer(answer[0], then=answer[1]) if isinstance(answer, tuple) else StoreAnswer(answer)
    )


def _then(then: Callable[[], None] | None) -> None:
    if then is not None:
        with contextlib.suppress(Exception):  # it accounts for its own failures
            then()


class _StoresOnArrival(queue.Queue[Any]):
    """A DIMSE message queue that serves C-STORE requests instead of queueing them."""

    def __init__(self, assoc: Any, serve: StoreServer) -> None:
        super().__init__()
        self._assoc = assoc
        self._serve = serve

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        context_id, message = item
        if not isinstance(message, C_STORE) or message.MessageIDBeingRespondedTo is not None:
            super().put(item, block, timeout)
            return
        assoc = self._assoc
        answer = _served(self._serve, context_id, message, assoc._accepted_cx.get(context_id))
        command = store_response(
            str(message.AffectedSOPClassUID), str(message.AffectedSOPInstanceUID),
            int(message.MessageID or 0), answer.status, answer.comment,
        )  # fmt: skip
        pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, command,
                             int(assoc.requestor.maximum_length or 0))  # fmt: skip
        assoc.dul.socket.send(b"".join(pieces))
        _then(answer.then)


def serve_stores_on_arrival(assoc: Any, serve: StoreServer) -> None:
    """From now on, ``serve`` answers this acceptor association's C-STORE requests on its
    DUL thread (call it at EVT_REQUESTED, before any P-DATA); other messages go to
    pynetdicom's reactor as before."""
    assoc.dimse.msg_queue = _StoresOnArrival(assoc, serve)


# -- the receiving side, taken over ---------------------------------------------------------

NO_DATA_SET = 0x0101
C_STORE_RQ_FIELD, C_ECHO_RQ_FIELD = 0x0001, 0x0030


class _Encoded:
    """The ``DataSet`` of a request taken off the wire: ``getvalue()`` as a BytesIO's (the
    fragments joined at the first call)."""

    def __init__(self, chunks: Sequence[Buffer]) -> None:
        self._chunks = chunks
        self._data: bytes | None = None

    def getvalue(self) -> bytes:
        if self._data is None:
            self._data = b"".join(self._chunks)
        return self._data


class TakenRequest:
    """The parts of a C-STORE-RQ that a ``StoreServer`` reads (as a pynetdicom C_STORE).
    ``fragments``: the data set's bytes as they came, PDV by PDV (views of the PDUs read,
    each its own buffer, never reused), for a server that sends them on without joining
    them (``RawStore.submit`` takes them as they are)."""

    def __init__(self, fields: dict[int, bytes], data: Sequence[Buffer]) -> None:
        self.AffectedSOPClassUID = _text(fields.get(0x0002, b""))
        self.AffectedSOPInstanceUID = _text(fields.get(0x1000, b""))
        self.MessageID = _number(fields.get(0x0110))
        self.MoveOriginatorMessageID = _number(fields.get(0x1031))
        self.fragments = tuple(data)
        self.DataSet = _Encoded(self.fragments)


def _text(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def _number(value: bytes | None) -> int | None:
    return struct.unpack("<H", value)[0] if value is not None and len(value) == 2 else None


def _elements(command: bytes) -> dict[int, bytes]:
    """The elements of an Implicit VR Little Endian command set (group 0000), by element."""
    fields: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack("<HHI", command[offset : offset + 8])
        if group != 0x0000 or offset + 8 + length > len(command):
            raise ValueError("not a command set")
        fields[element] = command[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return fields


def _echo_response(message_id: int) -> bytes:
    body = b"".join(
        [
            _element(0x0002, _uid("1.2.840.10008.1.1")),
            _element(0x0100, _us(0x8030)),
            _element(0x0120, _us(message_id)),
            _element(0x0800, _us(NO_DATA_SET)),
            _element(0x0900, _us(0x0000)),
        ]
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


class _Reader:
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def exact(self, n: int) -> memoryview:
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            count = self.sock.recv_into(view[got:], n - got)
            if count == 0:
                raise AssociationLost("the peer closed the connection")
            got += count
        return view

    def pdu(self, limit: int) -> tuple[int, memoryview]:
        kind, _reserved, length = struct.unpack(">BBI", self.exact(6))
        if limit and length > limit:
            raise ValueError("a PDU longer than the maximum this side proposed")
        return kind, self.exact(length)


def serve_taken_over(
    assoc: Any, serve: StoreServer, on_echo: Callable[[], None] | None = None
) -> None:
    """Run an established acceptor association (a PACS delivering instances) on its own
    thread, instead of pynetdicom's reactor: the DUL thread is stopped once the
    A-ASSOCIATE-AC is out, what it had already read is finished through pynetdicom's DIMSE
    provider (``serve_stores_on_arrival`` must be in place), then each PDU is read whole and
    parsed here. C-STORE-RQs go to ``serve`` and are answered at once; a C-ECHO-RQ is
    answered; an A-RELEASE-RQ gets its A-RELEASE-RP; anything else, or a malformed PDU, is an
    A-ABORT. Returns when the association has ended (the socket closed)."""
    dul = assoc.dul
    deadline = time.monotonic() + 5.0
    while (not dul.to_provider_queue.empty() or dul.state_machine.current_state != "Sta6") and (
        time.monotonic() < deadline and dul.is_alive()
    ):
        time.sleep(0.0002)  # the A-ASSOCIATE-AC is sent by the DUL thread
    dul.kill_dul()
    ring = getattr(dul.socket, "ring", None)
    if ring is not None:  # a DUL waiting in select() (the guard's): woken to see the kill
        ring()
    dul.join(timeout=5.0)
    taken = RawStore.__new__(RawStore)  # for its abort/finish; it owns no reader state
    taken.assoc, taken.alive, taken.max_pdu, taken._outstanding = assoc, True, 0, None
    taken._sock = getattr(dul.socket, "socket", None)
    if dul.is_alive() or taken._sock is None or dul.state_machine.current_state != "Sta6":
        taken._abort()
        return
    while not dul.event_queue.empty():  # read by the DUL but not acted on
        dul.state_machine.do_action(dul.event_queue.get_nowait())
    peer_max = int(assoc.requestor.maximum_length or 0)
    limit = int(assoc.acceptor.maximum_length or 0)
    kernel_timeout(taken._sock, assoc.network_timeout or 60.0)
    reader = _Reader(taken._sock)
    command: list[memoryview] = []
    data: list[memoryview] = []
    fields: dict[int, bytes] | None = None
    try:
        if assoc.acse.is_release_requested() or assoc.acse.is_aborted():
            raise AssociationLost("released before any instance")
        _answer_queued(taken, peer_max, on_echo)  # what the DUL read whole before the takeover
        while True:
            kind, body = reader.pdu(limit)
            if kind == 0x05:  # A-RELEASE-RQ
                taken._sock.sendall(struct.pack(">BBI", 0x06, 0x00, 4) + b"\x00" * 4)
                assoc.is_released = True
                taken._finish()
                return
            if kind == 0x07:
                assoc.is_aborted = True
                taken._finish()
                return
            if kind != 0x04:
                raise ValueError("an unexpected PDU")
            if assoc.dimse.message is not None:  # a message the DUL had begun: pynetdicom's
                from pynetdicom.pdu import P_DATA_TF

                pdu = P_DATA_TF()
                pdu.decode(struct.pack(">BBI", 0x04, 0x00, len(body)) + bytes(body))
                assoc.dimse.receive_primitive(pdu.to_primitive())
                _answer_queued(taken, peer_max, on_echo)
                continue
            offset = 0
            while offset < len(body):
                (item_length,) = struct.unpack(">I", body[offset : offset + 4])
                if item_length < 2 or offset + 4 + item_length > len(body):
                    raise ValueError("a malformed PDV item")
                context_id, control = body[offset + 4], body[offset + 5]
                value = body[offset + 6 : offset + 4 + item_length]  # a view: joined once
                offset += 4 + item_length
                if control & 0x01:
                    command.append(value)
                    if control & 0x02:
                        fields = _elements(b"".join(command))
                        command = []
                        if _number(fields.get(0x0800)) == NO_DATA_SET:
                            _answer_without_data(taken, fields, context_id, peer_max, on_echo)
                            fields = None
                    continue
                if fields is None:
                    raise ValueError("a data set without its command")
                data.append(value)
                if control & 0x02:
                    _answer_store(taken, serve, fields, data, context_id, peer_max)
                    fields, data = None, []
    except (OSError, ValueError, AssociationLost, struct.error):
        if taken.alive:
            taken._abort()


def _answer_queued(taken: RawStore, peer_max: int, on_echo: Callable[[], None] | None) -> None:
    """Messages pynetdicom decoded before the takeover (its DUL thread may have read a whole
    request, under load, before it was stopped): a C-ECHO-RQ is answered like one read
    here; anything else this association does not serve (C-STOREs were served on arrival)."""
    pending = taken.assoc.dimse.msg_queue
    while not pending.empty():
        context_id, message = pending.get_nowait()
        if not isinstance(message, C_ECHO) or message.MessageIDBeingRespondedTo is not None:
            raise ValueError("a message other than C-STORE or C-ECHO")
        if on_echo is not None:
            on_echo()
        response = _echo_response(int(message.MessageID or 0))
        pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, response,
                             peer_max)  # fmt: skip
        taken._sock.sendall(b"".join(pieces))


def _answer_without_data(taken: RawStore, fields: dict[int, bytes], context_id: int,
                         peer_max: int, on_echo: Callable[[], None] | None) -> None:  # fmt: skip
    if _number(fields.get(0x0100)) != C_ECHO_RQ_FIELD:
        raise ValueError("a request this association does not serve")
    if on_echo is not None:
        on_echo()
    response = _echo_response(_number(fields.get(0x0110)) or 0)
    pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, response,
                         peer_max)  # fmt: skip
    taken._sock.sendall(b"".join(pieces))


def _answer_store(taken: RawStore, serve: StoreServer, fields: dict[int, bytes],
                  data: Sequence[Buffer], context_id: int, peer_max: int) -> None:  # fmt: skip
    if _number(fields.get(0x0100)) != C_STORE_RQ_FIELD:
        raise ValueError("a request this association does not serve")
    request = TakenRequest(fields, data)
    answer = _served(serve, context_id, request, taken.assoc._accepted_cx.get(context_id))
    response = store_response(request.AffectedSOPClassUID, request.AffectedSOPInstanceUID,
                              request.MessageID or 0, answer.status, answer.comment)  # fmt: skip
    pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, response,
                         peer_max)  # fmt: skip
    taken._sock.sendall(b"".join(pieces))
    _then(answer.then)


# -- an association held for a while, then handed back ---------------------------------------

C_MOVE_RQ_FIELD, C_MOVE_RSP_FIELD, C_CANCEL_RQ_FIELD = 0x0021, 0x8021, 0x0FFF


def move_command(sop_class: str, message_id: int, destination: str, priority: int = 0) -> bytes:
    """The command set of a C-MOVE-RQ with its identifier (PS3.7 9.3.4.1), encoded."""
    title = destination.strip().encode("ascii")[:16]
    title += b" " if len(title) % 2 else b""
    body = b"".join(
        [
            _element(0x0002, _uid(sop_class)),
            _element(0x0100, _us(C_MOVE_RQ_FIELD)),
            _element(0x0110, _us(message_id)),
            _element(0x0600, title),  # Move Destination
            _element(0x0700, _us(priority)),
            _element(0x0800, _us(0x0000)),
        ]
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


C_FIND_RQ_FIELD, C_FIND_RSP_FIELD = 0x0020, 0x8020


def find_command(sop_class: str, message_id: int, priority: int = 0) -> bytes:
    """The command set of a C-FIND-RQ with its identifier (PS3.7 9.3.2.1), encoded."""
    return _query_command(C_FIND_RQ_FIELD, sop_class, message_id, priority)


def _query_command(field: int, sop_class: str, message_id: int, priority: int) -> bytes:
    """A request's command set whose identifier follows (C-FIND-RQ, C-GET-RQ)."""
    body = b"".join(
        [
            _element(0x0002, _uid(sop_class)),
            _element(0x0100, _us(field)),
            _element(0x0110, _us(message_id)),
            _element(0x0700, _us(priority)),
            _element(0x0800, _us(0x0000)),
        ]
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def find_response(sop_class: str, message_id: int, status: int, with_data: bool) -> bytes:
    """The command set of a C-FIND-RSP (PS3.7 9.3.2.2), encoded; ``with_data``: an
    identifier follows (pending responses)."""
    body = b"".join(
        [
            _element(0x0002, _uid(sop_class)),
            _element(0x0100, _us(C_FIND_RSP_FIELD)),
            _element(0x0120, _us(message_id)),
            _element(0x0800, _us(0x0000 if with_data else NO_DATA_SET)),
            _element(0x0900, _us(status)),
        ]
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def cancel_command(message_id: int) -> bytes:
    """The command set of a C-CANCEL-RQ (PS3.7 9.3.2.3) for the request ``message_id``."""
    body = _element(0x0100, _us(C_CANCEL_RQ_FIELD)) + _element(0x0120, _us(message_id))
    body += _element(0x0800, _us(NO_DATA_SET))
    return _element(0x0000, struct.pack("<I", len(body))) + body


class Message:
    """One DIMSE message read off the wire: its command elements and its data set."""

    def __init__(self, context_id: int, fields: dict[int, bytes], data: bytes | None) -> None:
        self.context_id = context_id
        self.fields = fields
        self.data = data

    def number(self, element: int) -> int | None:
        """A US element of the command set (``None`` if absent)."""
        return _number(self.fields.get(element))

    def text(self, element: int) -> str:
        """A UI or AE element of the command set, unpadded ('' if absent)."""
        return _text(self.fields.get(element, b""))


class Held:
    """An established association whose socket this thread reads and writes for a while:
    ``with Held(assoc) as held: held.send(...); held.message()``. pynetdicom's association
    reactor is paused and its DUL reads nothing meanwhile (``BulkRecvSocket.holder``); on
    leaving, both carry on where they were, so the association serves pynetdicom's own
    requests again. Only whole messages are read, so nothing is left half read. A lost
    association (``AssociationLost``) is aborted on leaving."""

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc
        self.wrapper = assoc.dul.socket
        peer = assoc.acceptor if assoc.is_requestor else assoc.requestor
        mine = assoc.requestor if assoc.is_requestor else assoc.acceptor
        self.peer_max = int(peer.maximum_length or 0)
        self.limit = int(mine.maximum_length or 0)
        self.lost = False
        self._pdvs: list[tuple[int, int, memoryview]] = []
        self._paused = False
        self._writing = threading.Lock()  # a C-CANCEL may come from another thread

    @staticmethod
    def usable(assoc: Any) -> bool:
        wrapper = getattr(assoc.dul, "socket", None)
        return (
            assoc.is_established
            and hasattr(type(wrapper), "holder")
            and getattr(wrapper, "socket", None) is not None
            and assoc.dul.event_queue.empty()
            and assoc.dul.to_user_queue.empty()
        )

    def __enter__(self) -> Held:
        assoc = self.assoc
        if assoc.is_requestor:  # its reactor runs on its own thread: pause it
            from pacsguard.net.sockets import settle

            settle(assoc)
            assoc._reactor_checkpoint.clear()
            self._paused = True
            deadline = time.monotonic() + 5.0
            while not assoc._is_paused and assoc.is_established and time.monotonic() < deadline:
                time.sleep(0.0001)
        seen = threading.Event()
        self.wrapper.holder = seen
        ring = getattr(self.wrapper, "ring", None)
        if ring is not None:  # a DUL that waits in select(): woken to see the hold
            ring()
        if not seen.wait(5.0) or not assoc.is_established or not assoc.dul.to_user_queue.empty():
            self.__exit__(None, None, None)
            raise AssociationLost("the association could not be held")
        self._sock = self.wrapper.socket
        self._reader = _Reader(self._sock)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wrapper.holder = None
        if self._paused:
            self._paused = False
            self.assoc._reactor_checkpoint.set()
        if self.lost:
            with contextlib.suppress(Exception):
                self.assoc.abort()

    def send(self, context_id: int, command: bytes, dataset: bytes | None = None) -> None:
        pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, command,
                             self.peer_max)  # fmt: skip
        if dataset is not None:
            pieces += p_data_pdus(context_id, CONTROL_DATA, CONTROL_DATA_LAST, dataset,
                                  self.peer_max)  # fmt: skip
        try:
            with self._writing:
                self._sock.sendall(b"".join(pieces))
        except OSError as exc:
            self.lost = True
            raise AssociationLost(str(exc) or type(exc).__name__) from None

    @property
    def sock(self) -> Any:
        return self._sock

    def unsolicited(self) -> bool:
        """Something to read although no request is in progress (a release or abort from
        the peer, or the rest of an abandoned exchange)."""
        import select

        if self._pdvs:
            return True
        try:
            return bool(select.select([self._sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def buffered(self) -> bool:
        """Part of a message already read (a P-DATA-TF PDU can carry several)."""
        return bool(self._pdvs)

    def message(self) -> Message:
        """The next whole DIMSE message; ``AssociationLost`` if the peer released or aborted
        or the association failed (it is then aborted on leaving)."""
        try:
            return self._message()
        except (OSError, ValueError, AssociationLost, struct.error) as exc:
            self.lost = True
            raise AssociationLost(str(exc) or type(exc).__name__) from None

    def _message(self) -> Message:
        command: list[memoryview] = []
        data: list[memoryview] = []
        fields: dict[int, bytes] | None = None
        while True:
            if not self._pdvs:
                self._read_pdvs()
            context_id, control, value = self._pdvs.pop(0)
            if control & 0x01:
                if fields is not None:
                    raise ValueError("a command inside a data set")
                command.append(value)
                if control & 0x02:
                    fields = _elements(b"".join(command))
                    if _number(fields.get(0x0800)) == NO_DATA_SET:
                        return Message(context_id, fields, None)
                continue
            if fields is None:
                raise ValueError("a data set without its command")
            data.append(value)
            if control & 0x02:
                return Message(context_id, fields, b"".join(data))

    def _read_pdvs(self) -> None:
        kind, body = self._reader.pdu(self.limit)
        if kind in (0x05, 0x07):
            raise AssociationLost("released or aborted by the peer")
        if kind != 0x04:
            raise ValueError("an unexpected PDU")
        offset = 0
        while offset < len(body):
            (item_length,) = struct.unpack(">I", body[offset : offset + 4])
            if item_length < 2 or offset + 4 + item_length > len(body):
                raise ValueError("a malformed PDV item")
            self._pdvs.append(
                (body[offset + 4], body[offset + 5], body[offset + 6 : offset + 4 + item_length])
            )
            offset += 4 + item_length


C_GET_RQ_FIELD, C_GET_RSP_FIELD, C_STORE_RSP_FIELD = 0x0010, 0x8010, 0x8001


def get_command(sop_class: str, message_id: int, priority: int = 0) -> bytes:
    """The command set of a C-GET-RQ with its identifier (PS3.7 9.3.3.1), encoded."""
    return _query_command(C_GET_RQ_FIELD, sop_class, message_id, priority)


def retrieve_response(
    field: int,
    sop_class: str,
    message_id: int,
    status: int,
    remaining: int | None,
    completed: int,
    failed: int,
    warning: int,
) -> bytes:
    """The command set of a C-GET-RSP or C-MOVE-RSP without an identifier (PS3.7 9.3.3.2,
    9.3.4.2), encoded; ``remaining`` only where the status allows it (pending, cancel)."""
    parts = [
        _element(0x0002, _uid(sop_class)),
        _element(0x0100, _us(field)),
        _element(0x0120, _us(message_id)),
        _element(0x0800, _us(NO_DATA_SET)),
        _element(0x0900, _us(status)),
    ]
    if remaining is not None:
        parts.append(_element(0x1020, _us(min(remaining, 0xFFFF))))
    for element, value in ((0x1021, completed), (0x1022, failed), (0x1023, warning)):
        parts.append(_element(element, _us(min(value, 0xFFFF))))
    body = b"".join(parts)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def readable(helds: list[Held], timeout: float) -> list[Held]:
    """Those of ``helds`` with a message (part) to read within ``timeout`` seconds."""
    import select
    import ssl

    ready = [h for h in helds if h.buffered()]
    if ready:
        return ready
    by_socket = {h._sock: h for h in helds}
    got, _, _ = select.select(list(by_socket), [], [], timeout)
    ready = [by_socket[s] for s in got]
    ready += [h for h in helds if h not in ready and isinstance(h._sock, ssl.SSLSocket)
              and h._sock.pending()]  # fmt: skip
    return ready


# the command-set and PDU readers, for the guard's held client associations
command_elements = _elements
command_number = _number
command_text = _text
PduReader = _Reader
