"""The guard's association server: ``pacsguard.net``'s (TCP_NODELAY, TLS handshakes on the
connection's own thread), with C-MOVE and C-GET requests handed to the guard's streaming
relay.

pynetdicom's C-MOVE/C-GET service needs the number of sub-operations before the first one
and sends every sub-operation itself; a relay only learns the number from the PACS as the
move goes on, and must relay each instance as it arrives. Those two requests are therefore
served by the guard's ``retrieve.serve``, on the association's own thread.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE
from pynetdicom.transport import RequestHandler

from pacsguard.net.rawstore import (
    C_CANCEL_RQ_FIELD,
    AssociationLost,
    PduReader,
    StoreServer,
    command_elements,
    command_number,
    serve_taken_over,
)
from pacsguard.net.sockets import BulkRecvSocket, NoDelayServer, SharedContexts

RetrieveServer = Callable[[Any, Any, Any], None]
FindServer = Callable[[Any, Any, Any], bool]  # False: not served (pynetdicom's service then)
# How long an idle association's DUL waits in select() and its reactor on its Event before
# looking at pynetdicom's timers and flags; data and work wake them at once.
IDLE_WAIT = 0.02


class _Waking(queue.Queue[Any]):
    """A queue whose ``put`` also rings a bell (wakes whoever waits for work)."""

    def __init__(self, ring: Callable[[], None]) -> None:
        super().__init__()
        self._ring = ring

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._ring()


def _waking(old: queue.Queue[Any], ring: Callable[[], None]) -> _Waking:
    new = _Waking(ring)
    while not old.empty():
        new.put(old.get_nowait())
    return new


class WakingSocket(BulkRecvSocket):
    """The guard's accepted sockets: pynetdicom's DUL polls its socket every 1 ms (and
    its association reactor sleeps 1 ms a turn), which costs a request up to a millisecond
    at each of the four hand-overs of a C-FIND, more on a loaded machine. Here the DUL
    waits in ``select`` for the peer's data or for something to send (a byte on a socket
    pair, rung by its outgoing queue), so either is taken at once."""

    _wake: tuple[socket.socket, socket.socket] | None = None

    def arm(self) -> None:
        pair = socket.socketpair()
        for end in pair:
            end.setblocking(False)
        self._wake = pair

    def ring(self) -> None:
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):  # full: it is rung already
                wake[1].send(b"\0")

    def _wait_for_ring(self, timeout: float) -> None:
        wake = self._wake
        if wake is None:
            time.sleep(timeout)
            return
        with contextlib.suppress(OSError, ValueError):
            if select.select([wake[0]], [], [], timeout)[0]:
                while wake[0].recv(4096):
                    pass

    def disarm(self) -> None:
        wake, self._wake = self._wake, None
        for end in wake or ():
            end.close()

    @property
    def ready(self) -> bool:
        wake = self._wake
        sock = self.socket
        if wake is None:
            return bool(BulkRecvSocket.ready.fget(self))  # type: ignore[attr-defined]
        # The DUL acts on one event a turn, after this call: with an event still queued (the
        # PDU just read, behind the connection's own Evt5), no wait here, or each new
        # association waited IDLE_WAIT before its A-ASSOCIATE-RQ was acted on
        idle = IDLE_WAIT if self.event_queue.empty() else 0.0
        holder = self.holder
        if holder is not None:
            # seen only once every event read before the hold is acted on (nothing of the
            # peer's is then half-way through pynetdicom); woken when the hold ends
            if not idle:
                return False
            holder.set()
            self._wait_for_ring(idle)  # rung when the hold ends or something is to send
            return False
        if self.pushback:
            return True
        if sock is None or self._is_connected is False:
            time.sleep(0.001)
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            got, _, _ = select.select([sock, wake[0]], [], [], idle)
        except (OSError, ValueError):
            self.event_queue.put("Evt17")  # the connection closed, as pynetdicom says it
            return False
        if wake[0] in got:
            with contextlib.suppress(OSError):
                while wake[0].recv(4096):
                    pass
        return sock in got


class ClientHold:
    """A plain client association's socket, read and written on its reactor's thread for a
    while: ``ClientHold.take(assoc)`` (None where it cannot be taken), then ``command()``,
    ``consume()``, ``data()``, ``send()``, and ``release()`` at the end. Meanwhile the DUL
    reads nothing (``WakingSocket.ready``). What is read but not served here (a message
    other than those the caller serves, a release, an abort) is handed back whole: its
    PDUs are put back on the socket (``BulkRecvSocket.unread``) and the DUL reads them as
    if they had just come, so pynetdicom serves them as it always did."""

    def __init__(self, assoc: Any, wrapper: WakingSocket) -> None:
        self.assoc = assoc
        self.wrapper = wrapper
        self.sock: socket.socket = wrapper.socket  # type: ignore[assignment]
        self.peer_max = int(assoc.requestor.maximum_length or 0)
        self.limit = int(assoc.acceptor.maximum_length or 0)
        self._reader = PduReader(self.sock)
        self._pdvs: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self._other: list[bytes] = []  # PDUs other than P-DATA-TF, as read
        self._command_length = 0  # PDVs of the command that ``command`` returned
        self.gone = False  # the peer released, aborted or closed the connection

    @classmethod
    def take(cls, assoc: Any) -> ClientHold | None:
        wrapper = assoc.dul.socket
        if not isinstance(wrapper, WakingSocket) or not cls._quiet(assoc, wrapper):
            return None
        if wrapper.socket is None or isinstance(wrapper.socket, ssl.SSLSocket):
            return None  # one SSL object is not read by two threads
        seen = threading.Event()
        wrapper.holder = seen
        wrapper.ring()
        if seen.wait(1.0) and cls._quiet(assoc, wrapper) and wrapper.socket is not None:
            return cls(assoc, wrapper)
        wrapper.holder = None
        wrapper.ring()
        return None

    @staticmethod
    def _quiet(assoc: Any, wrapper: WakingSocket) -> bool:
        """Nothing of the peer's is part-way through pynetdicom."""
        dul, dimse = assoc.dul, assoc.dimse
        return bool(
            assoc.is_established
            and not assoc._kill
            and not wrapper.pushback
            and dimse.message is None
            and dimse.msg_queue.empty()
            and dul.event_queue.empty()
            and dul.to_user_queue.empty()
        )

    def release(self) -> None:
        """Hand back what was read and not served, and end the hold."""
        pieces = [
            struct.pack(">BBIIBB", 0x04, 0x00, len(value) + 6, len(value) + 2, context, control)
            + bytes(value)
            for context, control, value in self._pdvs
        ]
        self._pdvs.clear()
        self.wrapper.unread(b"".join(pieces + self._other))
        self._other = []
        self.wrapper.holder = None
        self.wrapper.ring()

    def wait(self, timeout: float) -> bool:
        """Whether something is there to read within ``timeout`` seconds."""
        if self._pdvs or self._other:
            return True
        try:
            return bool(select.select([self.sock], [], [], timeout)[0])
        except (OSError, ValueError):
            self.gone = True
            return False

    def _read(self) -> None:
        """One PDU off the socket (``AssociationLost`` if the connection failed)."""
        try:
            kind, body = self._reader.pdu(self.limit)
        except (OSError, ValueError) as exc:
            self.gone = True
            raise AssociationLost(str(exc) or type(exc).__name__) from None
        if kind != 0x04:
            self._other.append(struct.pack(">BBI", kind, 0x00, len(body)) + bytes(body))
            self.gone = kind in (0x05, 0x07)
            return
        offset = 0
        while offset < len(body):
            (length,) = struct.unpack_from(">I", body, offset)
            if length < 2 or offset + 4 + length > len(body):
                raise AssociationLost("a malformed PDV item")
            value = bytes(body[offset + 6 : offset + 4 + length])
            self._pdvs.append((body[offset + 4], body[offset + 5], value))
            offset += 4 + length

    def command(self) -> tuple[int, dict[int, bytes]] | None:
        """The next message's context ID and command elements, once its command set is
        whole (read as needed); None where the next thing read is not a command set (it
        is then handed back by ``release``). The message stays unread until ``consume``."""
        index = 0
        fragments: list[bytes] = []
        while True:
            while index >= len(self._pdvs):
                if self._other:
                    return None
                self._read()
            context, control, value = self._pdvs[index]
            if not control & 0x01:
                return None  # a data set whose command pynetdicom read
            fragments.append(value)
            index += 1
            if control & 0x02:
                try:
                    fields = command_elements(b"".join(fragments))
                except ValueError:
                    return None
                self._command_length = index
                return context, fields

    def consume(self) -> None:
        """The command set ``command`` returned is served here."""
        for _ in range(self._command_length):
            self._pdvs.popleft()
        self._command_length = 0

    def data(self, context_id: int) -> bytes:
        """The data set that follows the consumed command set (``AssociationLost`` if
        anything else comes)."""
        fragments: list[bytes] = []
        while True:
            while not self._pdvs:
                if self._other:
                    raise AssociationLost("the data set did not come")
                self._read()
            context, control, value = self._pdvs.popleft()
            if control & 0x01 or context != context_id:
                raise AssociationLost("a command inside a data set")
            fragments.append(value)
            if control & 0x02:
                return b"".join(fragments)

    def cancelled(self, message_id: int) -> bool:
        """Whether a C-CANCEL-RQ for ``message_id`` has come (what is on the socket is read
        now); any other message waits its turn."""
        if not self._pdvs and not self._other and self.wait(0):
            with contextlib.suppress(AssociationLost):
                self._read()
        head = self.command() if self._pdvs else None
        if head is None or command_number(head[1].get(0x0100)) != C_CANCEL_RQ_FIELD:
            return False
        self.consume()
        return command_number(head[1].get(0x0120)) == message_id

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


class GuardAssociation(Association):
    """An acceptor association whose C-MOVE and C-GET requests go to the relay."""

    retrieve_server: RetrieveServer | None = None
    find_server: FindServer | None = None
    store_server: StoreServer | None = None  # set at EVT_REQUESTED for a PACS's deliveries
    # serves what it can of a plain association on the reactor's thread (``ClientHold``),
    # returning when pynetdicom must serve the next message
    held_server: Callable[[Any], None] | None = None

    work: threading.Event | None = None  # set when a request, release or abort is queued

    def _run_reactor(self) -> None:
        serve = self.store_server
        if serve is not None:
            serve_taken_over(self, serve)  # the socket read and answered here, PDU by PDU
            self._kill = True
        elif self.work is not None:
            self._waking_reactor(self.work)
        else:
            super()._run_reactor()
        sock = self.dul.socket
        if isinstance(sock, WakingSocket):
            sock.disarm()

    def _waking_reactor(self, work: threading.Event) -> None:
        """pynetdicom's acceptor reactor (``Association._run_reactor``), waiting on ``work``
        instead of sleeping 1 ms a turn."""
        self._is_paused = False
        while not self._kill:
            held = self.held_server
            if held is not None and self.is_established:
                held(self)
            work.wait(IDLE_WAIT)
            work.clear()
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, int(context_id or 0))
                if not self.dimse.msg_queue.empty():
                    work.set()
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)  # EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return

    def _serve_request(self, msg: Any, context_id: int) -> None:
        finder = self.find_server
        if finder is not None and isinstance(msg, C_FIND) and msg.is_valid_request:
            context = self._accepted_cx.get(context_id)
            if context is not None and finder(self, msg, context):
                return
        server = self.retrieve_server
        if server is None or not isinstance(msg, C_MOVE | C_GET) or not msg.is_valid_request:
            super()._serve_request(msg, context_id)
            return
        context = self._accepted_cx.get(context_id)
        if context is None:
            self.abort()
            return
        self.dimse.cancel_req = {}
        self._is_paused = True  # the relay sends on this association from this thread
        try:
            server(self, msg, context)
        except Exception:
            self.abort()
        finally:
            self._is_paused = False
            self.dimse.cancel_req = {}


def _handler_for(
    retrieve: RetrieveServer, find: FindServer | None, held: Callable[[Any], None] | None
) -> type[RequestHandler]:
    class GuardRequestHandler(RequestHandler):
        def _create_association(self) -> Association:
            assoc = super()._create_association()
            # The same object, served by the subclass that routes C-MOVE/C-GET: pynetdicom
            # builds the Association inside this method and offers no hook for its class.
            assoc.__class__ = GuardAssociation
            assert isinstance(assoc, GuardAssociation)
            assoc.retrieve_server = retrieve
            assoc.find_server = find
            assoc.held_server = held
            sock = assoc.dul.socket
            sock.__class__ = WakingSocket  # same object: whole-PDU reads, woken at once
            assert isinstance(sock, WakingSocket)
            sock.arm()
            dul = assoc.dul
            dul.to_provider_queue = _waking(dul.to_provider_queue, sock.ring)
            dul._run_loop_delay = 0.0  # it waits in select() instead
            work = threading.Event()
            assoc.work = work
            dul.to_user_queue = _waking(dul.to_user_queue, work.set)
            assoc.dimse.msg_queue = _waking(assoc.dimse.msg_queue, work.set)
            return assoc

    return GuardRequestHandler


class GuardServer(NoDelayServer):
    """``pacsguard.net``'s server, with the guard's request handler."""

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[Any],
        ssl_context: ssl.SSLContext | None = None,
        evt_handlers: list[Any] | None = None,
        *,
        retrieve: RetrieveServer,
        find: FindServer | None = None,
        held: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            ssl_context,
            evt_handlers=evt_handlers,
            request_handler=_handler_for(retrieve, find, held),
        )
        self.contexts = SharedContexts(self.contexts)
