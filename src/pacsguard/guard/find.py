"""C-FIND through the guard: permissions and query levels, the research role's policing and
de-identification, the per-query cap and the per-client response rate."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from pacsguard.guard.links import LinkError
from pacsguard.guard.research import RETRIEVE_AE, RefusedKey, key_names
from pacsguard.net.rawstore import (
    CONTROL_COMMAND_LAST,
    CONTROL_DATA,
    CONTROL_DATA_LAST,
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

Result = tuple[int, Dataset | None]


def handler(guard: Guard) -> Callable[[Any], Iterator[Result]]:
    def on_find(event: Any) -> Iterator[Result]:
        session = guard.session(event.assoc)
        if session is None or session.client is None:
            yield NOT_AUTHORISED, None
            return
        yield from _find(guard, session, event)

    return on_find


class _Request:
    """What the handler reads of pynetdicom's C-FIND event, for ``serve_raw``."""

    def __init__(self, assoc: Any, request: Any, syntax: Any) -> None:
        self.assoc, self.request, self._syntax = assoc, request, syntax
        self._identifier: Dataset | None = None

    @property
    def identifier(self) -> Dataset:
        if self._identifier is None:
            s = self._syntax
            self._identifier = decode(self.request.Identifier, s.is_implicit_VR,
                                      s.is_little_endian, s.is_deflated)  # fmt: skip
        return self._identifier

    @property
    def is_cancelled(self) -> bool:
        return self.request.MessageID in self.assoc.dimse.cancel_req


def serve_raw(guard: Guard, assoc: Any, req: Any, context: Any) -> bool:
    """Serve a C-FIND on a plain client association, writing each response straight onto
    the socket (pynetdicom's service would encode the command set with pydicom and hand each
    PDU to its DUL thread). The DUL only reads meanwhile: this thread is the only writer.
    Over TLS (one SSL object may not be written and read by two threads) it returns False
    and pynetdicom serves the request with the same handler."""
    sock = getattr(assoc.dul.socket, "socket", None)
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return False
    syntax = context.transfer_syntax[0]
    model, message_id = str(req.AffectedSOPClassUID), int(req.MessageID)
    peer_max = int(assoc.requestor.maximum_length or 0)
    cx = int(context.context_id)

    def write(status: int, data: bytes | None) -> None:
        command = find_response(model, message_id, status, data is not None)
        pieces = p_data_pdus(cx, CONTROL_COMMAND_LAST, CONTROL_COMMAND_LAST, command, peer_max)
        if data is not None:
            pieces += p_data_pdus(cx, CONTROL_DATA, CONTROL_DATA_LAST, data, peer_max)
        sock.sendall(b"".join(pieces))

    results = handler(guard)(_Request(assoc, req, syntax))
    final = 0x0000  # a handler that stops without a final status: Success (as pynetdicom)
    try:
        for status, found in results:
            if not assoc.is_established:
                return True
            if status not in PENDING:
                final = status
                break
            data = None
            if found is not None:
                data = encode(found, syntax.is_implicit_VR, syntax.is_little_endian,
                              syntax.is_deflated)  # fmt: skip
            if not data:
                final = 0xC312  # the response identifier could not be encoded
                break
            write(status, data)
    except OSError:
        return True  # the client went away: its association ends as pynetdicom sees it
    except Exception:
        final = 0xC311  # as pynetdicom answers a handler that raised
    finally:
        close = getattr(results, "close", None)
        if close is not None:  # the handler's own accounting, if it stopped early
            close()
        assoc.dimse.cancel_req.pop(message_id, None)
    with contextlib.suppress(OSError):
        write(final, None)
    return True


def _find(guard: Guard, session: Session, event: Any) -> Iterator[Result]:
    client = session.client
    assert client is not None and session.state is not None
    record: dict[str, Any] = {"responses": 0}
    try:
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
        model = str(event.request.AffectedSOPClassUID)
        record.update(level=level, keys=key_names(identifier), model=model)
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


def _run(
    guard: Guard,
    session: Session,
    event: Any,
    identifier: Dataset,
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
    asked = tuple(e.tag for e in identifier)
    query = identifier
    if session.research:
        assert guard.research is not None
        try:
            translated = guard.research.query(identifier, add_patient_id=True)
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
    query: Dataset,
    asked: tuple[Any, ...],
    record: dict[str, Any],
    done: dict[str, Any],
) -> Iterator[Result]:
    client = session.client
    state = session.state
    assert client is not None and state is not None
    cap = client.limits.max_responses_per_query
    try:
        upstream = guard.link(session, handed_back=False)
        link = session.upstream
        assert link is not None
    except LinkError:
        done.update(outcome="failure", status=UNABLE_TO_PROCESS, reason="upstream")
        yield UNABLE_TO_PROCESS, None
        return
    message = guard.next_message_id()
    model = event.request.AffectedSOPClassUID
    replies = link.find(query, str(model), message)
    stop: tuple[int, str] | None = None
    final = UNABLE_TO_PROCESS
    for status_ds, response in replies:
        status = int(getattr(status_ds, "Status", UNABLE_TO_PROCESS))
        if status not in PENDING:
            final = status
            break
        if stop is not None:
            continue  # draining after our C-CANCEL
        if event.is_cancelled:
            stop = (CANCEL, "cancelled")
        elif record["responses"] >= cap:
            stop = (OUT_OF_RESOURCES, "response-cap")
        elif not state.responses.take():
            stop = (OUT_OF_RESOURCES, "response-rate")
        if stop is not None:
            link.cancel(message, str(model))
            continue
        try:
            answer = _answer(guard, session, response, asked)
        except Exception:
            # fail closed: a response that cannot be cleaned ends the query
            stop = (UNABLE_TO_PROCESS, "deid-failed")
            link.cancel(message, str(model))
            continue
        record["responses"] += 1
        yield status, answer
    if stop is not None:
        final = stop[0]
        done["reason"] = stop[1]
    if not upstream.is_established and final in PENDING:
        final = UNABLE_TO_PROCESS
    done.update(outcome=_name(final), status=final)
    if final != 0:
        yield final, None


def _answer(guard: Guard, session: Session, response: Dataset | None, asked: Any) -> Dataset:
    if response is None:
        raise ValueError("a pending C-FIND response without an identifier")
    if session.research:
        assert guard.research is not None
        return guard.research.response(response, asked, guard.config.ae_title)
    if RETRIEVE_AE in response:
        # clients retrieve through the guard, never from the PACS's own address
        response.RetrieveAETitle = guard.config.ae_title
    return response


def _name(status: int) -> str:
    from pacsguard.guard.proxy import outcome

    return outcome(status)
