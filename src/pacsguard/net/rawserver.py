"""A C-STORE SCP whose associations are read and answered raw, as ``rawstore`` does.

pynetdicom's acceptor decodes every P-DATA PDU through its DUL state machine, hands each
DIMSE message to the association's reactor (a 1 ms poll) and encodes the response through
the same layers. ``RawStoreServer`` keeps pynetdicom for what it does well (the
A-ASSOCIATE negotiation, the EVT_REQUESTED/EVT_ESTABLISHED handlers, TLS through
``NoDelayServer``) and, once an association is established with a store server bound to it
(``take_over_stores`` at EVT_REQUESTED), runs it with ``rawstore.serve_taken_over``: each
PDU read whole, each C-STORE-RQ's data set handed to the server as the bytes that came, its
C-STORE-RSP written at once. An association with no store server bound is pynetdicom's.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.transport import RequestHandler

from pacsguard.net.rawstore import StoreServer, serve_stores_on_arrival, serve_taken_over
from pacsguard.net.sockets import BulkRecvSocket, NoDelayServer, SharedContexts


class RawStoreAssociation(Association):
    """An acceptor association served by ``serve_taken_over`` once it is established."""

    store_server: StoreServer | None = None
    on_echo: Callable[[], None] | None = None

    def _run_reactor(self) -> None:
        serve = self.store_server
        if serve is None:
            super()._run_reactor()
            return
        serve_taken_over(self, serve, self.on_echo)
        self._kill = True


class _RawRequestHandler(RequestHandler):
    def _create_association(self) -> Association:
        assoc = super()._create_association()
        # pynetdicom builds the Association inside this method and offers no hook for its
        # class: the same object, given the subclass that can be taken over.
        assoc.__class__ = RawStoreAssociation
        assoc.dul.socket.__class__ = BulkRecvSocket  # same object, reads whole PDUs
        return assoc


class RawStoreServer(NoDelayServer):
    """``NoDelayServer`` whose associations can be taken over (``take_over_stores``), and
    whose supported contexts are not deep-copied for every association."""

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[Any],
        ssl_context: ssl.SSLContext | None = None,
        evt_handlers: list[Any] | None = None,
    ) -> None:
        super().__init__(
            ae,
            address,
            ae_title,
            contexts,
            ssl_context,
            evt_handlers=evt_handlers,
            request_handler=_RawRequestHandler,
        )
        self.contexts = SharedContexts(self.contexts)


def take_over_stores(
    assoc: Any, serve: StoreServer, on_echo: Callable[[], None] | None = None
) -> bool:
    """Call at EVT_REQUESTED: this association's C-STOREs go to ``serve(context ID,
    request, transfer syntax) -> status`` (``request.DataSet.getvalue()``: the data set's
    bytes as received), whether pynetdicom's DUL read them before the takeover or the
    takeover reads them; each C-ECHO it answers is told to ``on_echo`` (pynetdicom's
    EVT_C_ECHO handlers never see them). False when the association is not a
    ``RawStoreServer``'s."""
    if not isinstance(assoc, RawStoreAssociation):
        return False
    serve_stores_on_arrival(assoc, serve)
    assoc.store_server, assoc.on_echo = serve, on_echo
    return True
