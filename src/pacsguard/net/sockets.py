"""pynetdicom with TCP_NODELAY on every socket it opens, and TLS handshakes off the listener.

pynetdicom sets no TCP_NODELAY: Nagle's algorithm then holds back the small PDUs of a
C-STORE exchange (the response, the last fragment) for up to 40 ms each. The requestor's
sockets are made by ``AE._create_socket``, the acceptor's by ``AssociationServer.get_request``:
both are overridden here, once for every capability.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.transport import (
    T_CONNECT,
    AddressInformation,
    AssociationSocket,
    ThreadedAssociationServer,
)

HANDSHAKE_TIMEOUT = 10.0


def nodelay(sock: socket.socket) -> socket.socket:
    """Set TCP_NODELAY on a TCP socket (a no-op for other families)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def kernel_timeout(sock: Any, seconds: float) -> None:
    """Make a plain TCP socket blocking, with ``seconds`` as the kernel's receive and send
    timeouts (SO_RCVTIMEO, SO_SNDTIMEO) instead of Python's: with a Python timeout every
    ``recv``/``send`` is a ``poll()`` first, then the call (two system calls, and the wait in
    the first). A timed-out call raises ``OSError`` (EAGAIN) as Python's raises
    ``TimeoutError``. A TLS socket keeps Python's timeout (its reads are not one call)."""
    if isinstance(sock, ssl.SSLSocket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        sock.settimeout(seconds)
        return
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


# how long a held association's DUL waits, between looks at its outgoing queue, for the hold
# to end (the end of the hold wakes it at once)
HELD_POLL = 0.05


FIRST_RECV = 1 << 20  # bytes a read may set aside before the peer has sent them


class BulkRecvSocket(AssociationSocket):
    """``recv(n)`` straight into one buffer of ``n`` bytes. pynetdicom reads a PDU 4,096
    bytes at a time, each read a new bytes object appended to a bytearray: a 0.5 MB
    instance is ~130 reads and copies, taking the GIL each time. Same contract: blocks
    until ``n`` bytes are read, or returns what came before the peer closed.

    ``holder``: while it is set (an Event), the DUL reads nothing from this socket (it
    reports no data, and sets the Event to say it has seen the hold), so another thread may
    read it for a while; see ``net.rawstore.Held``. Unset (the default), ``ready`` is
    pynetdicom's own."""

    _holder: threading.Event | None = None
    _unheld: threading.Event | None = None
    # Whole PDUs that another thread read off the socket while it held it and hands back
    # (``unread``): the DUL reads them first, as if they had just arrived.
    pushback: bytearray | None = None

    @property
    def holder(self) -> threading.Event | None:
        return self._holder

    @holder.setter
    def holder(self, value: threading.Event | None) -> None:
        if self._unheld is None:
            self._unheld = threading.Event()
        self._holder = value
        if value is None:
            self._unheld.set()  # the DUL, waiting in ready, carries on at once
        else:
            self._unheld.clear()

    @property
    def ready(self) -> bool:
        holder = self.holder
        if holder is not None:
            holder.set()
            unheld = self._unheld
            if unheld is not None:  # the DUL's 1 ms poll would only take the GIL meanwhile
                unheld.wait(HELD_POLL)
            return False
        if self.pushback:
            return True
        return bool(AssociationSocket.ready.fget(self))  # type: ignore[attr-defined]

    def unread(self, data: bytes) -> None:
        """Hand back whole PDUs read while the socket was held (call before the hold ends)."""
        if data:
            self.pushback = (self.pushback or bytearray()) + data

    def recv(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        assert sock is not None
        # the length is the peer's claim, read before any AE title is checked: the buffer
        # grows as bytes come (doubling), never to a claimed 4 GiB at once
        buffer = bytearray(min(nr_bytes, FIRST_RECV))
        view = memoryview(buffer)
        got = 0
        pushback = self.pushback
        if pushback:
            got = min(len(buffer), len(pushback))
            view[:got] = pushback[:got]
            del pushback[:got]
        while got < nr_bytes:
            if got == len(buffer):
                view.release()
                buffer.extend(bytes(min(len(buffer), nr_bytes - got)))
                view = memoryview(buffer)
                if pushback:
                    more = min(len(buffer) - got, len(pushback))
                    view[got : got + more] = pushback[:more]
                    del pushback[:more]
                    got += more
                    continue
            count = sock.recv_into(view[got:], len(buffer) - got)
            if not count:
                view.release()
                return buffer[:got]
            got += count
        view.release()
        return buffer


class NoDelaySocket(BulkRecvSocket):
    """A requestor socket with TCP_NODELAY; once connected, reads time out after the
    association's network timeout (pynetdicom leaves a connected socket blocking for ever,
    so a peer that stalls mid-PDU would hang the reader thread)."""

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        return nodelay(super()._create_socket(address))

    def connect(self, primitive: T_CONNECT) -> None:
        super().connect(primitive)
        if self.socket is not None and self._is_connected:
            self.socket.settimeout(self.assoc.network_timeout)


class NoDelayAE(AE):
    """A pynetdicom AE whose associations (as requestor) use ``NoDelaySocket``."""

    def _create_socket(
        self, assoc: Any, address: AddressInformation, tls_args: tuple[ssl.SSLContext, str] | None
    ) -> AssociationSocket:
        sock = NoDelaySocket(assoc, address=address)
        sock.tls_args = tls_args
        return sock


class SharedContexts(list[Any]):
    """An acceptor's supported presentation contexts, shared by its associations.

    pynetdicom deep-copies the server's supported contexts for every association it accepts
    (``RequestHandler._create_association``); for every storage class with every transfer
    syntax (~180 contexts, ~6,700 UIDs) that is ~100 ms per association, before the
    A-ASSOCIATE-RQ is even read. Negotiation only reads them (it builds new contexts for its
    results), so one shallow copy of the list is enough."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


TlsRefused = Callable[[tuple[str, int], str], None]


class NoDelayServer(ThreadedAssociationServer):
    """Accepted sockets get TCP_NODELAY; TLS (``tls_context``) is negotiated in the
    connection's thread with a bounded handshake, and a refused handshake is reported to
    ``on_tls_refused(address, reason)`` instead of pynetdicom's traceback log."""

    tls_context: ssl.SSLContext | None = None
    on_tls_refused: TlsRefused | None = None
    daemon_threads = True

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[Any],
        ssl_context: ssl.SSLContext | None = None,
        evt_handlers: list[Any] | None = None,
        request_handler: Any = None,
    ) -> None:
        handlers = [(evt.EVT_REQUESTED, abort_on_undecodable), *(evt_handlers or [])]
        super().__init__(ae, address, ae_title, contexts, ssl_context, handlers, request_handler)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        return nodelay(client), address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if self.tls_context is not None:
            try:
                request.settimeout(HANDSHAKE_TIMEOUT)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(self.ae.network_timeout)
            except (ssl.SSLError, OSError) as exc:
                if self.on_tls_refused is not None:
                    self.on_tls_refused(client_address, _tls_reason(exc))
                with contextlib.suppress(OSError):
                    request.close()
                return
        super().process_request_thread(request, client_address)


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(getattr(exc, "reason", None) or "tls-error").lower()
    if isinstance(exc, TimeoutError):
        return "handshake-timeout"
    return type(exc).__name__


def start_server(
    ae: AE,
    host: str,
    port: int,
    handlers: Sequence[tuple[Any, ...]],
    *,
    tls: ssl.SSLContext | None = None,
    on_tls_refused: TlsRefused | None = None,
    ae_title: str | None = None,
    server_class: type[NoDelayServer] = NoDelayServer,
) -> NoDelayServer:
    """Start a non-blocking association server (stop it with ``server.shutdown()``);
    ``server_class``: a ``NoDelayServer`` subclass (``rawserver.RawStoreServer``)."""
    server = ae.make_server(
        (host, port),
        ae_title=ae_title,
        evt_handlers=list(handlers),
        server_class=server_class,
    )
    assert isinstance(server, NoDelayServer)
    server.tls_context = tls
    server.on_tls_refused = on_tls_refused
    thread = threading.Thread(
        target=server.serve_forever, name=f"pacsguard-scp-{port}", daemon=True
    )
    thread.start()
    ae._servers.append(server)
    return server


def abort_on_undecodable(event: Any) -> None:
    """A message pynetdicom's DIMSE decoder cannot read (a command set without its Command
    Field) raised in the association's reactor thread and killed it: the association never
    ended, holding its client's slot (the guard's ``max_associations``), with a traceback on
    stderr. Such a message is what PS3.8 calls an invalid PDU: the reactor aborts the
    association (Evt19: A-ABORT, service-provider source), as for any other."""
    assoc = event.assoc
    receive = assoc.dimse.receive_primitive

    def guarded(primitive: Any) -> None:
        try:
            receive(primitive)
        except Exception:
            assoc.dimse.message = None  # the message half-decoded is dropped with it
            assoc.dul.event_queue.put("Evt19")

    assoc.dimse.receive_primitive = guarded


def bound_port(server: NoDelayServer) -> int:
    """The port the server listens on (useful with port 0)."""
    return int(server.server_address[1])


def settle(assoc: Any, wait: float = 0.02) -> None:
    """Let a requestor association's reactor leave pynetdicom's pause checkpoint.

    pynetdicom's ``send_*`` methods pause the reactor (clear the checkpoint, spin until
    ``_is_paused``) and release it when they return. Called again at once, the next one can
    see the flag still True from the reactor's previous pause, before the reactor has run on:
    the reactor then takes the peer's response off the queue as an "unexpected" message and
    the sender waits for its DIMSE timeout (measured: a 30 s stall every few hundred
    back-to-back C-STOREs). Waiting for the reactor to wake first closes that window."""
    deadline = time.monotonic() + wait
    while assoc._is_paused and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.0001)
