"""C-GET through the guard on held associations: one thread, no pynetdicom per instance.

The client's C-GET goes to the PACS on the session's upstream association. For the length
of the C-GET both associations are held (``net.rawstore.Held``: pynetdicom reads nothing
meanwhile and carries on afterwards), and this thread alone reads and writes them: each
C-STORE-RQ from the PACS is answered (the guard has taken the instance) and sent on to the
client as received, de-identified first for a research client, and the client's
C-STORE-RSP is counted; pending C-GET responses go to the client at most every 0.1 s; a
C-CANCEL from the client is passed on to the PACS. The final response is pynetdicom's,
once the associations are handed back.
"""

from __future__ import annotations

import itertools
import time
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pynetdicom.dsutils import decode, encode

from pacsguard.guard.links import Spooled, UpstreamLink, spooled_file
from pacsguard.guard.retrieve import (
    PENDING,
    PENDING_EVERY,
    UNABLE_TO_PROCESS,
    Counts,
    _tally,
    final_status,
)
from pacsguard.net.rawstore import (
    C_CANCEL_RQ_FIELD,
    C_GET_RSP_FIELD,
    C_STORE_RQ_FIELD,
    C_STORE_RSP_FIELD,
    AssociationLost,
    Held,
    Message,
    cancel_command,
    get_command,
    readable,
    retrieve_response,
    store_command,
    store_response,
)

if TYPE_CHECKING:
    from pacsguard.guard.proxy import Guard, Session

SUCCESS = 0x0000


class _Get:
    """One C-GET in progress: the two held associations and what is known so far."""

    def __init__(self, guard: Guard, session: Session, assoc: Any, req: Any, context: Any,
                 upstream: Any, up: Held, down: Held, up_context: int) -> None:  # fmt: skip
        self.guard, self.session, self.assoc, self.req = guard, session, assoc, req
        self.context_id = int(context.context_id)  # the client's, of its C-GET
        self.upstream, self.up, self.down, self.up_context = upstream, up, down, up_context
        self.message = guard.next_message_id()
        self.counts = Counts()
        self.cancelled = False
        self.final: int | None = None
        self._store_ids = itertools.count(1)

    def run(self, identifier: bytes) -> tuple[int, str | None, Counts]:
        model = str(self.req.AffectedSOPClassUID)
        self.up.send(self.up_context, get_command(model, self.message), identifier)
        if self.req.MessageID in getattr(self.assoc.dimse, "cancel_req", {}):
            self._cancel()
        timeout = self.guard.config.upstream.timeout
        heard = time.monotonic()
        last_pending, last_done = 0.0, 0
        while self.final is None:
            for held in readable([self.up, self.down], 0.05):
                if held is self.down:
                    self._from_client(self.down.message())
                else:
                    self._from_pacs(self.up.message())
                    heard = time.monotonic()
            now = time.monotonic()
            if now - heard > timeout:
                self.up.lost = True
                raise AssociationLost("the PACS went quiet")
            if (not self.cancelled and self.counts.done != last_done
                    and now - last_pending >= PENDING_EVERY):  # fmt: skip
                last_done, last_pending = self.counts.done, now
                self._pending()
        status, reason = final_status(self.counts, self.cancelled, self.final)
        return status, reason, self.counts

    def _cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.up.send(self.up_context, cancel_command(self.message))

    def _from_client(self, message: Message) -> None:
        if (
            message.number(0x0100) == C_CANCEL_RQ_FIELD
            and message.number(0x0120) == self.req.MessageID
        ):
            self._cancel()
        # nothing else may come while the C-GET is in progress (no asynchronous window)

    def _from_pacs(self, message: Message) -> None:
        field = message.number(0x0100)
        if field == C_STORE_RQ_FIELD and message.data is not None:
            sop_class, sop_instance = message.text(0x0002), message.text(0x1000)
            answer = store_response(sop_class, sop_instance, message.number(0x0110) or 0, SUCCESS)
            self.up.send(message.context_id, answer)  # taken: the PACS sends the next one
            _tally(self.counts, self.session, sop_instance,
                   self._to_client(message, sop_class, sop_instance))  # fmt: skip
            return
        if field == C_GET_RSP_FIELD and message.number(0x0120) == self.message:
            status = message.number(0x0900)
            if status is None:
                self.up.lost = True
                raise AssociationLost("a C-GET response without a status")
            numbers = [message.number(e) or 0 for e in (0x1020, 0x1021, 0x1022, 0x1023)]
            if status in PENDING:
                self.counts.upstream_total = max(self.counts.upstream_total, sum(numbers))
            else:
                self.final = status
                self.counts.upstream_failed = numbers[2]
            return
        self.up.lost = True
        raise AssociationLost("the PACS sent what a C-GET does not expect")

    def _to_client(self, message: Message, sop_class: str, sop_instance: str) -> int:
        """Send one instance on; the client's status (a failure if it could not be sent)."""
        assert message.data is not None
        syntax = str(self.upstream._accepted_cx[message.context_id].transfer_syntax[0])
        data = message.data
        if self.session.research:
            clean, sop_class, sop_instance, syntax = self._clean(data, sop_class, sop_instance,
                                                                 syntax)  # fmt: skip
            if clean is None:
                return UNABLE_TO_PROCESS  # never sent: the engine could not clean it
            data = clean
        try:
            context = self.assoc._get_valid_context(sop_class, syntax, "scu")
        except ValueError:
            return UNABLE_TO_PROCESS  # the client took no storage context for it
        wanted = context.transfer_syntax[0]
        if str(wanted) != syntax:  # an uncompressed syntax to another, as pynetdicom would
            converted = _convert(data, syntax, wanted)
            if converted is None:
                return UNABLE_TO_PROCESS
            data = converted
        store_id = next(self._store_ids) % 65535 + 1
        self.down.send(int(context.context_id), store_command(sop_class, sop_instance, store_id),
                       data)  # fmt: skip
        while True:
            reply = self.down.message()
            if reply.number(0x0100) == C_STORE_RSP_FIELD and reply.number(0x0120) == store_id:
                status = reply.number(0x0900)
                return UNABLE_TO_PROCESS if status is None else status
            self._from_client(reply)

    def _clean(self, data: bytes, sop_class: str, sop_instance: str,
               syntax: str) -> tuple[bytes | None, str, str, str]:  # fmt: skip
        """The research client's copy: through the deid engine (a file in, a file out)."""
        research = self.guard.research
        assert research is not None
        item = Spooled(None, sop_class, sop_instance, syntax, data=data)
        try:
            path, _reason = research.instance(item.file(self.guard.spool_dir))
        finally:
            item.discard()
        if path is None:
            return None, sop_class, sop_instance, syntax
        clean = spooled_file(path)
        try:
            return clean.dataset(), clean.sop_class, clean.sop_instance, clean.transfer_syntax
        finally:
            clean.discard()

    def _pending(self) -> None:
        c = self.counts
        command = retrieve_response(
            C_GET_RSP_FIELD, str(self.req.AffectedSOPClassUID), int(self.req.MessageID),
            0xFF00, c.remaining, c.completed, c.failed, c.warning,
        )  # fmt: skip
        self.down.send(self.context_id, command)


def _convert(data: bytes, syntax: str, wanted: Any) -> bytes | None:
    from pydicom.uid import UID

    source = UID(syntax)
    try:
        ds = decode(BytesIO(data), source.is_implicit_VR, source.is_little_endian,
                    source.is_deflated)  # fmt: skip
        return encode(ds, wanted.is_implicit_VR, wanted.is_little_endian, wanted.is_deflated)
    except Exception:
        return None


def relay(guard: Guard, session: Session, assoc: Any, req: Any, context: Any, query: Any,
          link: UpstreamLink) -> tuple[int, str | None, Counts] | None:  # fmt: skip
    """Serve the C-GET ``req`` with ``query`` for the PACS; (final status, reason, counts),
    or None where an association cannot be held (nothing has been sent then)."""
    if not Held.usable(assoc):
        return None
    up = link.holding()
    upstream = link.assoc
    if up is None or upstream is None:
        return None
    model = str(req.AffectedSOPClassUID)
    try:
        up_cx = upstream._get_valid_context(model, "", "scu")
    except ValueError:
        return UNABLE_TO_PROCESS, "upstream", Counts()
    syntax = up_cx.transfer_syntax[0]
    identifier = encode(query, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)
    if identifier is None:
        return UNABLE_TO_PROCESS, "upstream", Counts()
    # (left held afterwards: the session's next request reads it raw too)
    try:
        down = Held(assoc).__enter__()
    except AssociationLost:
        return None
    get = _Get(guard, session, assoc, req, context, upstream, up, down, int(up_cx.context_id))
    try:
        return get.run(identifier)
    except AssociationLost:
        if down.lost:  # the client went away: the PACS's C-GET is stopped with it
            up.lost = True
            return UNABLE_TO_PROCESS, "client-gone", get.counts
        up.lost = True
        get.counts.failed += get.counts.upstream_failed
        return UNABLE_TO_PROCESS, "upstream", get.counts
    finally:
        down.__exit__(None, None, None)
        if up.lost:  # aborted now: the PACS stops; the next request opens another
            link.close(abort=True)
