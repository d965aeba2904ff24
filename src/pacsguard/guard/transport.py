"""pynetdicom plumbing for the guard: TCP_NODELAY on every socket, TLS handshakes off the
accept loop, and C-MOVE/C-GET requests handed to the guard's own streaming relay.

pynetdicom sets no TCP_NODELAY; with Nagle's algorithm on, every PDU that does not fill a
segment waits for the peer's delayed ACK (~40 ms an instance). Its server also completes
the TLS handshake inside the accept loop, so one client that stalls mid-handshake would stop
every other client from connecting: here the handshake happens on the association's own
thread, under its timeout. Its C-MOVE/C-GET service needs the number of sub-operations
before the first one; a relay only learns it from the PACS as the move goes on, so those two
requests are served by ``serve_retrieve`` instead.

(TCP_NODELAY and the deferred handshake are general: candidates for ``pacsguard.net``.)
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.transport import (
    AddressInformation,
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

RetrieveServer = Callable[[Any, Any, Any], None]


def no_delay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelaySocket(AssociationSocket):
    """A requestor socket with TCP_NODELAY set before it connects."""

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = super()._create_socket(address)
        no_delay(sock)
        return sock


class GuardAE(AE):
    """An AE whose outgoing associations (upstream, destinations) use ``NoDelaySocket``."""

    def _create_socket(
        self, assoc: Any, address: AddressInformation, tls_args: tuple[ssl.SSLContext, str] | None
    ) -> AssociationSocket:
        sock = NoDelaySocket(assoc, address=address)
        sock.tls_args = tls_args
        return sock


class GuardAssociation(Association):
    """An acceptor association whose C-MOVE and C-GET requests go to the relay."""

    retrieve_server: RetrieveServer | None = None

    def _serve_request(self, msg: Any, context_id: int) -> None:
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


def _handler_for(retrieve: RetrieveServer) -> type[RequestHandler]:
    class GuardRequestHandler(RequestHandler):
        def _create_association(self) -> Association:
            assoc = super()._create_association()
            # The same object, served by the subclass that routes C-MOVE/C-GET: pynetdicom
            # builds the Association inside this method and offers no hook for its class.
            assoc.__class__ = GuardAssociation
            assert isinstance(assoc, GuardAssociation)
            assoc.retrieve_server = retrieve
            return assoc

    return GuardRequestHandler


class GuardServer(ThreadedAssociationServer):
    """A threaded association server: TCP_NODELAY, handshake on the association's thread."""

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
        idle_timeout: float,
    ) -> None:
        self._idle_timeout = idle_timeout
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            ssl_context,
            evt_handlers=evt_handlers,
            request_handler=_handler_for(retrieve),
        )

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        no_delay(client)
        client.settimeout(self._idle_timeout)
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address


def tls_handshake(assoc: Any) -> None:
    """Finish a deferred TLS handshake (no-op on plain sockets); raises on failure."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if isinstance(sock, ssl.SSLSocket):
        sock.do_handshake()
