"""The guard's association server: ``pacsguard.net``'s (TCP_NODELAY, TLS handshakes on the
connection's own thread), with C-MOVE and C-GET requests handed to the guard's streaming
relay.

pynetdicom's C-MOVE/C-GET service needs the number of sub-operations before the first one
and sends every sub-operation itself; a relay only learns the number from the PACS as the
move goes on, and must relay each instance as it arrives. Those two requests are therefore
served by the guard's ``retrieve.serve``, on the association's own thread.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.transport import RequestHandler

from pacsguard.net.rawstore import StoreServer, serve_taken_over
from pacsguard.net.sockets import BulkRecvSocket, NoDelayServer, SharedContexts

RetrieveServer = Callable[[Any, Any, Any], None]


class GuardAssociation(Association):
    """An acceptor association whose C-MOVE and C-GET requests go to the relay."""

    retrieve_server: RetrieveServer | None = None
    store_server: StoreServer | None = None  # set at EVT_REQUESTED for a PACS's deliveries

    def _run_reactor(self) -> None:
        serve = self.store_server
        if serve is None:
            super()._run_reactor()
            return
        serve_taken_over(self, serve)  # the socket read and answered here, PDU by PDU
        self._kill = True

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
            assoc.dul.socket.__class__ = BulkRecvSocket  # same object, reads whole PDUs
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
    ) -> None:
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            ssl_context,
            evt_handlers=evt_handlers,
            request_handler=_handler_for(retrieve),
        )
        self.contexts = SharedContexts(self.contexts)
