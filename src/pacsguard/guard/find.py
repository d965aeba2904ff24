"""C-FIND through the guard: permissions and query levels, the research role's policing and
de-identification, the per-query cap and the per-client response rate."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from pacsguard.guard.links import LinkError, UpstreamLink
from pacsguard.guard.research import CHARSET, QUERY_LEVEL, RETRIEVE_AE, RefusedKey, key_names
from pacsguard.net.rawquery import Encoded, Identifier, encoded, encoded_element, key_name
from pacsguard.net.rawstore import (
    C_CANCEL_RQ_FIELD,
    C_FIND_RQ_FIELD,
    CONTROL_COMMAND_LAST,
    CONTROL_DATA,
    CONTROL_DATA_LAST,
    NO_DATA_SET,
    AssociationLost,
    command_number,
    command_text,
    find_response,
    p_data_pdus,
)

if TYPE_CHECKING:
    from pacsguard.guard.proxy import Guard, Session

PENDING = (0xFF00, 0xFF01)
CANCEL = 0xFE00
NOT_AUTHORISED = 0x0124
OUT_OF_RESOURCES = 0xA700
UNABLE_TO_PROCESS = 0xC000
BAD_IDENTIFIER = 0xA900

# a response for the client: decoded, or (clinical, served here) as bytes in its syntax
Result = tuple[int, Dataset | Encoded | None]

# Seconds the responses still coming after the guard's C-CANCEL are read and dropped: a PACS
# that ignores the cancel (and keeps sending) is left there; its association is not reused.
CANCEL_GRACE = 5.0


def handler(guard: Guard) -> Callable[[Any], Iterator[Result]]:
    def on_find(event: Any) -> Iterator[Result]:
        session = guard.session(event.assoc)
        if session is None or session.client is None:
            yield NOT_AUTHORISED, None
            return
        yield from _find(guard, session, event)

    return on_find


class _Request:
    """One C-FIND request as the handler reads it: pynetdicom's event has the same names
    (``request``, ``identifier``, ``is_cancelled``); served here, it also has the identifier
    as it came (``raw``) and the client's transfer syntax (``syntax``), so that a clinical
    query and its responses can go through as bytes."""

    def __init__(self, assoc: Any, model: str, message_id: int, data: bytes, syntax: str,
                 cancelled: Callable[[], bool]) -> None:  # fmt: skip
        self.assoc = assoc
        self.request = SimpleNamespace(AffectedSOPClassUID=model, MessageID=message_id)
        self.raw = Encoded(data, syntax)
        self.syntax = syntax
        self._cancelled = cancelled
        self._identifier: Dataset | None = None

    @property
    def identifier(self) -> Dataset:
        if self._identifier is None:
            self._identifier = self.raw.dataset()
        return self._identifier

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled()


def serve_raw(guard: Guard, assoc: Any, req: Any, context: Any) -> bool:
    """Serve a C-FIND that pynetdicom read on a plain client association, writing each
    response straight onto the socket (pynetdicom's service would encode the command set
    with pydicom and hand each PDU to its DUL thread). The DUL only reads meanwhile: this
    thread is the only writer. Over TLS (one SSL object may not be written and read by two
    threads) it returns False and pynetdicom serves the request with the same handler."""
    sock = getattr(assoc.dul.socket, "socket", None)
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return False
    message_id = int(req.MessageID)
    syntax = str(context.transfer_syntax[0])
    request = _Request(
        assoc, str(req.AffectedSOPClassUID), message_id, req.Identifier.getvalue(), syntax,
        lambda: message_id in assoc.dimse.cancel_req,
    )  # fmt: skip
    try:
        _serve(guard, assoc, request, int(context.context_id), sock.sendall,
               lambda: not assoc.is_established)  # fmt: skip
    finally:
        assoc.dimse.cancel_req.pop(message_id, None)
    return True


def serve_held(guard: Guard, assoc: Any) -> None:
    """Serve the C-FINDs of a plain client association on its reactor's thread, read and
    answered as bytes (``transport.ClientHold``: no pynetdicom DUL decode, no hand-over
    between threads); return, handing the message back, at the first message that is not a
    C-FIND (pynetdicom serves it), at a release or abort, once the association has idled
    for its network timeout (the reactor then ends it), or when it ends."""
    from pacsguard.guard.transport import ClientHold

    session = guard.session(assoc)
    if session is None or session.client is None:
        return
    hold = ClientHold.take(assoc)
    if hold is None:
        return
    idle = assoc.dul._idle_timer
    try:
        while assoc.is_established and not assoc._kill and not hold.gone:
            if not hold.wait(max(0.0, min(idle.remaining, 0.5))):
                if idle.expired:
                    return
                continue
            head = hold.command()
            if head is None:
                return
            context_id, fields = head
            field = command_number(fields.get(0x0100))
            if field == C_CANCEL_RQ_FIELD:  # late, for a request already answered
                hold.consume()
                continue
            context = assoc._accepted_cx.get(context_id)
            model = command_text(fields.get(0x0002, b""))
            message_id = command_number(fields.get(0x0110))
            if (field != C_FIND_RQ_FIELD or context is None or message_id is None
                    or str(context.abstract_syntax) != model
                    or command_number(fields.get(0x0800)) == NO_DATA_SET):  # fmt: skip
                return  # pynetdicom's to serve
            hold.consume()
            data = hold.data(context_id)
            idle.restart()
            request = _Request(assoc, model, message_id, data, str(context.transfer_syntax[0]),
                               lambda m=message_id: hold.cancelled(m))  # type: ignore[misc]  # fmt: skip
            _serve(guard, assoc, request, context_id, hold.send,
                   lambda: hold.gone or not assoc.is_established)  # fmt: skip
            idle.restart()
    except AssociationLost:
        if not hold.gone:  # a malformed message: nothing more is read from this client
            hold.gone = True
            with contextlib.suppress(Exception):
                assoc.abort(block=False)
    finally:
        hold.release()


def _serve(guard: Guard, assoc: Any, request: _Request, context_id: int,
           send: Callable[[bytes], None], gone: Callable[[], bool]) -> None:  # fmt: skip
    """Run the handler for ``request`` and write its responses with ``send``."""
    model, message_id = str(request.request.AffectedSOPClassUID), request.request.MessageID
    syntax = request.syntax
    peer_max = int(assoc.requestor.maximum_length or 0)

    def write(status: int, data: bytes | None) -> None:
        command = find_response(model, message_id, status, data is not None)
        pieces = p_data_pdus(context_id, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, command,
                             peer_max)  # fmt: skip
        if data is not None:
            pieces += p_data_pdus(context_id, CONTROL_DATA, CONTROL_DATA_LAST, data, peer_max)
        send(b"".join(pieces))

    results = handler(guard)(request)
    final = 0x0000  # a handler that stops without a final status: Success (as pynetdicom)
    try:
        for status, found in results:
            if gone():
                return
            if status not in PENDING:
                final = status
                break
            data = None
            if isinstance(found, Encoded):
                data = found.data
            elif found is not None:
                data = encoded(found, syntax)
            if not data:
                final = 0xC312  # the response identifier could not be encoded
                break
            write(status, data)
    except OSError:
        return  # the client went away: its association ends as pynetdicom sees it
    except Exception:
        final = 0xC311  # as pynetdicom answers a handler that raised
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # the handler's own accounting, if it stopped early
            close()
    with contextlib.suppress(OSError):
        write(final, None)


def _find(guard: Guard, session: Session, event: Any) -> Iterator[Result]:
    client = session.client
    assert client is not None and session.state is not None
    record: dict[str, Any] = {"responses": 0}
    try:
        model = str(event.request.AffectedSOPClassUID)
        identifier, level, keys = _read(event, session.research)
        record.update(level=level, keys=keys, model=model)
    except Exception:
        guard.operation(session, "find", outcome="failure", status=BAD_IDENTIFIER)
        yield BAD_IDENTIFIER, None
        return
    results, done = _run(guard, session, event, identifier, level, record)
    for result in results:
        if result[0] not in PENDING:
            # pynetdicom stops asking after a final status: account for the query first
            guard.operation(session, "find", **record, **done)
            yield result
            return
        yield result
    guard.operation(session, "find", **record, **done)


def _read(event: Any, research: bool) -> tuple[Dataset | Encoded, str, list[str]]:
    """(the identifier, its query level, the keys used): a clinical identifier that came as
    bytes is read as bytes (``net.rawquery``), and goes upstream as it came; anything that
    walk declines, and every research query, is decoded by pydicom."""
    raw: Encoded | None = getattr(event, "raw", None)
    if raw is not None and not research:
        walked = Identifier.walk(raw.data, raw.syntax)
        level = walked.text(int(QUERY_LEVEL)) if walked is not None else None
        if walked is not None and level is not None:
            skip = (int(QUERY_LEVEL), int(CHARSET))
            keys = [key_name(tag) for tag in walked.tags() if tag not in skip]
            return raw, level.strip().upper(), keys
    identifier = event.identifier
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    return identifier, level, key_names(identifier)


def _run(
    guard: Guard,
    session: Session,
    event: Any,
    identifier: Dataset | Encoded,
    level: str,
    record: dict[str, Any],
) -> tuple[Iterator[Result], dict[str, Any]]:
    """(the results to yield, the audit fields of the outcome), decided before any yield
    except for the relayed responses themselves, which stream."""
    client = session.client
    assert client is not None
    done: dict[str, Any] = {}

    def refuse(status: int, reason: str, key: str | None = None) -> Iterator[Result]:
        done.update(outcome="refused" if status == NOT_AUTHORISED else "failure")
        done.update(status=status, reason=reason)
        if key is not None:
            done["refused_key"] = key
        yield status, None

    if not client.may("find"):
        return refuse(NOT_AUTHORISED, "service"), done
    if level not in client.find_levels:
        return refuse(NOT_AUTHORISED, "level"), done
    asked: tuple[Any, ...] = ()
    query = identifier
    if session.research:
        assert guard.research is not None and isinstance(identifier, Dataset)
        asked = tuple(e.tag for e in identifier)
        try:
            model = str(event.request.AffectedSOPClassUID)
            translated = guard.research.query(identifier, add_patient_id=True, model=model)
        except RefusedKey as refusal:
            return refuse(NOT_AUTHORISED, "identifying-key", refusal.keyword), done
        if translated.upstream is None:  # a pseudonym the guard never handed out
            done.update(outcome="success", status=0, reason="unknown-pseudonym")
            return iter(()), done
        query = translated.upstream
    return _relay(guard, session, event, query, asked, record, done), done


def _relay(
    guard: Guard,
    session: Session,
    event: Any,
    query: Dataset | Encoded,
    asked: tuple[Any, ...],
    record: dict[str, Any],
    done: dict[str, Any],
) -> Iterator[Result]:
    model = event.request.AffectedSOPClassUID
    syntax: str | None = getattr(event, "syntax", None)  # None: pynetdicom encodes
    pool = guard.pool if not session.research else None
    link: UpstreamLink | None = None
    try:
        if pool is not None:
            link = pool.take(str(model), syntax or "")
            upstream = link.open()
        else:
            upstream = guard.link(session, handed_back=False)
            link = session.upstream
            assert link is not None
    except LinkError:
        if pool is not None and link is not None:
            pool.give(link)
        done.update(outcome="failure", status=UNABLE_TO_PROCESS, reason="upstream")
        yield UNABLE_TO_PROCESS, None
        return
    try:
        yield from _responses(guard, session, event, link, query, asked, record, done, syntax)
    finally:
        if pool is not None:
            pool.give(link)  # aborted instead if the query did not finish cleanly
    if not upstream.is_established and done.get("status") in PENDING:
        done.update(outcome="failure", status=UNABLE_TO_PROCESS)
    final = done["status"]
    if final != 0:
        yield final, None


def _responses(
    guard: Guard, session: Session, event: Any, link: UpstreamLink, query: Dataset | Encoded,
    asked: tuple[Any, ...], record: dict[str, Any], done: dict[str, Any], syntax: str | None,
) -> Iterator[Result]:  # fmt: skip
    """The PACS's pending responses, checked and made ready for the client; the outcome
    in ``done``. The upstream exchange is over when it returns."""
    state = session.state
    client = session.client
    assert state is not None and client is not None
    cap = client.limits.max_responses_per_query
    model = event.request.AffectedSOPClassUID
    message = guard.next_message_id()
    replies = link.find(query, str(model), message)
    stop: tuple[int, str] | None = None
    stopped, abandoned = 0.0, False  # when the C-CANCEL went out; left draining
    final = UNABLE_TO_PROCESS
    try:
        for status_ds, response in replies:
            status = int(getattr(status_ds, "Status", UNABLE_TO_PROCESS))
            if status not in PENDING:
                final = status
                break
            if stop is not None:  # draining after our C-CANCEL, for a while only: a PACS
                if time.monotonic() > stopped + CANCEL_GRACE:  # that ignores it is left
                    abandoned = True
                    break
                continue
            if event.is_cancelled:
                stop = (CANCEL, "cancelled")
            elif record["responses"] >= cap:
                stop = (OUT_OF_RESOURCES, "response-cap")
            elif not state.responses.take():
                stop = (OUT_OF_RESOURCES, "response-rate")
            if stop is not None:
                link.cancel(message, str(model))
                stopped = time.monotonic()
                continue
            try:
                answer = _answer(guard, session, response, asked, syntax)
            except Exception:
                # fail closed: a response that cannot be cleaned ends the query
                stop = (UNABLE_TO_PROCESS, "deid-failed")
                link.cancel(message, str(model))
                stopped = time.monotonic()
                continue
            record["responses"] += 1
            yield status, answer
    finally:
        replies.close()  # its own accounting of the link, before the link is given back
        if abandoned:  # responses still coming: the association serves no one else
            link.close(abort=True)
    if stop is not None:
        final = stop[0]
        done["reason"] = stop[1]
    done.update(outcome=_name(final), status=final)


def _answer(
    guard: Guard, session: Session, response: Dataset | Encoded | None, asked: Any,
    syntax: str | None,
) -> Dataset | Encoded:  # fmt: skip
    """The response for the client: de-identified for a research client; otherwise the
    PACS's, its Retrieve AE Title (if any) the guard's own (clients retrieve through the
    guard, never from the PACS's own address). A clinical response that came as bytes in
    the client's syntax (``syntax``) goes on as bytes, that one element rewritten in place
    (``rewrite_retrieve_ae``); anything else is decoded and rewritten by pydicom."""
    if response is None:
        raise ValueError("a pending C-FIND response without an identifier")
    if session.research:
        assert guard.research is not None
        ds = response.dataset() if isinstance(response, Encoded) else response
        return guard.research.response(ds, asked, guard.config.ae_title)
    if isinstance(response, Encoded) and response.syntax == syntax:
        rewritten = rewrite_retrieve_ae(response, guard.config.ae_title)
        if rewritten is not None:
            return rewritten
    return retrieve_ae_decoded(response, guard.config.ae_title)


def rewrite_retrieve_ae(response: Encoded, ae_title: str) -> Encoded | None:
    """``response`` with Retrieve AE Title (if present) set to ``ae_title``, as bytes: the
    element re-encoded as pydicom encodes it, every other byte as it came; None where the
    identifier cannot be walked exactly (``net.rawquery``)."""
    walked = Identifier.walk(response.data, response.syntax)
    if walked is None:
        return None
    element = encoded_element("RetrieveAETitle", ae_title, response.syntax)
    return Encoded(walked.replaced(int(RETRIEVE_AE), element), response.syntax)


def retrieve_ae_decoded(response: Dataset | Encoded, ae_title: str) -> Dataset:
    """The decoded path of the same rewrite (the reference)."""
    ds = response.dataset() if isinstance(response, Encoded) else response
    if RETRIEVE_AE in ds:
        ds.RetrieveAETitle = ae_title
    return ds


def _name(status: int) -> str:
    from pacsguard.guard.proxy import outcome

    return outcome(status)
