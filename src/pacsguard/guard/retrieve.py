"""C-MOVE and C-GET through the guard, streamed.

C-MOVE: the guard asks the PACS to move to the guard's own AE title; the PACS's C-STOREs
arrive on another association, are matched to the move by their Move Originator Message ID,
and are relayed one by one to the real destination. C-GET: the PACS's C-STOREs arrive on the
upstream association and are relayed on the client's own. Either way the client gets pending
responses as sub-operations complete (at most every 0.1 s), with the counts as the guard saw
them (an instance the destination or the client refused is a failed sub-operation), and a
C-CANCEL from the client is passed on to the PACS. For a research client every instance goes through
the deid engine first; one it cannot clean is a failed sub-operation and is never sent.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.dsutils import decode, encode

from pacsguard.guard.links import (
    DestinationLink,
    LinkError,
    Spooled,
    UpstreamLink,
    received,
    spooled_file,
)
from pacsguard.guard.research import RefusedKey, key_names

if TYPE_CHECKING:
    from pacsguard.guard.proxy import Guard, Session

PENDING = (0xFF00, 0xFF01)
SUCCESS, WARNING, CANCEL = 0x0000, 0xB000, 0xFE00
NOT_AUTHORISED = 0x0124
OUT_OF_RESOURCES = 0xA700
ALL_FAILED = 0xA702
UNKNOWN_DESTINATION = 0xA801
BAD_IDENTIFIER = 0xA900
UNABLE_TO_PROCESS = 0xC000
QUEUE_DEPTH = 8
# Pending responses (PS3.4 C.4.2.1.x: optional) at most this often: one per instance costs
# an encode and a send per instance; the counts are exact in every response that is sent.
PENDING_EVERY = 0.1


@dataclass
class Counts:
    completed: int = 0
    failed: int = 0
    warning: int = 0
    upstream_total: int = 0  # completed + failed + warning + remaining, as the PACS last said
    upstream_failed: int = 0  # sub-operations the PACS could not deliver to the guard
    failed_uids: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.warning

    @property
    def remaining(self) -> int:
        return max(0, self.upstream_total - self.upstream_failed - self.done)


class RetrieveJob:
    """The instances of one upstream C-MOVE/C-GET, handed from the threads that receive
    them to the thread that relays them (a short queue: the PACS waits when it is full)."""

    def __init__(self, guard: Guard, *, in_memory: bool = False) -> None:
        self.guard = guard
        self.in_memory = in_memory  # instances relayed as received are kept in memory
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue(QUEUE_DEPTH)
        self.open = True
        self.message = guard.next_message_id()  # of the upstream request
        # set for a plain C-MOVE: each instance is relayed on the thread that received it
        # (no hand-over), under ``lock``, which also guards the destination link
        self.relay_now: Callable[[Spooled], None] | None = None
        self.lock = threading.Lock()
        self.in_flight = 0  # instances answered to the PACS, their relay not yet done
        self.upstream_total = 0  # sub-operations in all, as the PACS's pending responses say
        self.landed = threading.Condition()

    def deliver(self, event: Any) -> int:
        """A C-STORE event from the PACS (see ``deliver_request``)."""
        return self.deliver_request(event.request, str(event.context.transfer_syntax))

    def deliver_then(
        self, request: Any, transfer_syntax: str
    ) -> int | tuple[int, Callable[[], None]]:
        """A C-STORE request from the PACS, on the thread that received it: for a plain
        C-MOVE, (Success, the relay of the instance, to run once the PACS has its answer:
        the PACS reads its next instance meanwhile); otherwise as ``deliver_request``.
        The destination's status is counted for the client, never told to the PACS."""
        relay_now = self.relay_now
        if relay_now is None or not self.open:
            return self.deliver_request(request, transfer_syntax)
        item = received(request, transfer_syntax, self.guard.spool_dir, in_memory=True)
        with self.landed:
            self.in_flight += 1

        def relay() -> None:
            try:
                with self.lock:
                    if self.open:
                        relay_now(item)
                    else:
                        item.discard()
            finally:
                with self.landed:
                    self.in_flight -= 1
                    self.landed.notify_all()

        return SUCCESS, relay

    def settle(self, timeout: float) -> None:
        """Wait until every instance answered to the PACS has been relayed (the PACS
        sends its final response once it has the answer to its last C-STORE)."""
        with self.landed:
            self.landed.wait_for(lambda: self.in_flight == 0, timeout)

    def deliver_request(self, request: Any, transfer_syntax: str) -> int:
        """A C-STORE request from the PACS: kept as received, then queued for relay."""
        if not self.open:
            return OUT_OF_RESOURCES
        item = received(request, transfer_syntax, self.guard.spool_dir, in_memory=self.in_memory)
        try:
            self.events.put(("instance", item), timeout=self.guard.config.upstream.timeout)
        except queue.Full:
            item.discard()
            return OUT_OF_RESOURCES
        return SUCCESS

    def pump(self, replies: Callable[[], Iterator[tuple[Dataset, Dataset | None]]]) -> None:
        """Run the upstream request on its own thread; its responses go on the queue."""
        try:
            for status, _identifier in replies():
                if int(getattr(status, "Status", UNABLE_TO_PROCESS)) in PENDING:
                    # only the total is read from a pending response: no hand-over for it
                    self.upstream_total = max(self.upstream_total, _total(status))
                else:
                    self.events.put(("rsp", status))
        except Exception:
            self.events.put(("error", None))
        finally:
            self.events.put(("done", None))

    def close(self, thread: threading.Thread) -> None:
        """No more deliveries; discard what is still queued until the pump has finished."""
        self.open = False
        while thread.is_alive() or not self.events.empty():
            try:
                kind, value = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "instance":
                value.discard()


def serve(guard: Guard, assoc: Any, req: Any, context: Any) -> None:
    """Serve one C-MOVE or C-GET request on a client association."""
    is_move = isinstance(req, C_MOVE)
    service = "move" if is_move else "get"
    syntax = context.transfer_syntax[0]
    rsp = C_MOVE() if is_move else C_GET()
    rsp.MessageIDBeingRespondedTo = req.MessageID
    rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
    record: dict[str, Any] = {"model": str(req.AffectedSOPClassUID)}
    session = guard.session(assoc)

    def send(status: int, counts: Counts | None, identifier: Dataset | None = None) -> None:
        rsp.Status = status
        rsp.Identifier = None
        if counts is not None:
            if status in PENDING or status == CANCEL:
                rsp.NumberOfRemainingSuboperations = counts.remaining
            else:
                rsp.NumberOfRemainingSuboperations = None
            rsp.NumberOfCompletedSuboperations = counts.completed
            rsp.NumberOfFailedSuboperations = counts.failed
            rsp.NumberOfWarningSuboperations = counts.warning
        if identifier is not None:
            data = encode(
                identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
            )
            rsp.Identifier = BytesIO(data or b"")
        assoc.dimse.send_msg(rsp, context.context_id)

    def finish(status: int, counts: Counts | None = None, **fields: Any) -> None:
        if session is not None:
            if counts is not None:
                fields.update(instances=counts.completed + counts.warning, failed=counts.failed)
            guard.operation(session, service, **record, status=status, **fields)
        failed = None
        if counts is not None and counts.failed_uids and status not in (SUCCESS, CANCEL):
            failed = Dataset()
            failed.FailedSOPInstanceUIDList = counts.failed_uids
        send(status, counts, failed)

    if session is None or session.client is None:
        finish(NOT_AUTHORISED, outcome="refused", reason="not-a-client")
        return
    client = session.client
    try:
        identifier = decode(
            req.Identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated
        )
        level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    except Exception:
        finish(BAD_IDENTIFIER, outcome="failure", reason="identifier")
        return
    record.update(level=level, keys=key_names(identifier))
    destination = None
    if is_move:
        target = str(req.MoveDestination or "").strip()
        record["destination"] = target
        destination = guard.config.destination(target)
    if not client.may(service):
        finish(NOT_AUTHORISED, outcome="refused", reason="service")
        return
    if is_move and (destination is None or destination.ae_title not in client.move_destinations):
        finish(UNKNOWN_DESTINATION, outcome="refused", reason="destination")
        return
    query = identifier
    if session.research:
        assert guard.research is not None
        try:
            translated = guard.research.query(identifier, add_patient_id=False)
        except RefusedKey as refusal:
            finish(NOT_AUTHORISED, outcome="refused", reason="identifying-key",
                   refused_key=refusal.keyword)  # fmt: skip
            return
        if translated.upstream is None:
            finish(SUCCESS, Counts(), outcome="success", reason="unknown-pseudonym")
            return
        query = translated.upstream
    # a clinical C-MOVE takes a pooled upstream association (its instances come back on
    # the PACS's own associations); a C-GET's come on its own, to this client: its session's
    pool = guard.pool if is_move and not session.research else None
    link_up: UpstreamLink | None = None
    try:
        if pool is not None:
            link_up = pool.take(str(req.AffectedSOPClassUID), "")
            upstream = link_up.open()
        else:
            upstream = guard.link(session, handed_back=False)
            link_up = session.upstream
    except LinkError:
        if pool is not None and link_up is not None:
            pool.give(link_up)
        finish(UNABLE_TO_PROCESS, outcome="failure", reason="upstream")
        return
    try:
        _retrieve(guard, session, assoc, req, context, query, is_move, service, record, link_up,
                  upstream, destination, send, finish)  # fmt: skip
    finally:
        if pool is not None and link_up is not None:
            pool.give(link_up)  # aborted instead if the move did not finish cleanly


def _retrieve(
    guard: Guard, session: Session, assoc: Any, req: Any, context: Any, query: Dataset,
    is_move: bool, service: str, record: dict[str, Any], link_up: UpstreamLink | None,
    upstream: Any, destination: Any, send: Callable[..., None], finish: Callable[..., None],
) -> None:  # fmt: skip
    """The relay of one checked C-MOVE or C-GET, on the upstream link ``link_up``."""
    if not is_move and session.upstream is not None:
        from pacsguard.guard import getrelay

        result = getrelay.relay(guard, session, assoc, req, context, query, session.upstream)
        if result is not None:  # done on held associations
            _conclude(guard, session, assoc, service, record, *result, finish)
            return

    job = RetrieveJob(guard, in_memory=is_move and not session.research)
    counts = Counts()
    message = job.message
    model = req.AffectedSOPClassUID
    link: DestinationLink | None = None
    if is_move:
        assert destination is not None
        link = DestinationLink(
            destination.host,
            destination.port,
            destination.ae_title,
            guard.config.ae_title,
            guard.config.upstream.timeout,
            guard.spool_dir,
        )
        if not session.research:

            def relay_now(item: Spooled) -> None:
                assert link is not None
                try:
                    done = link.submit(item, session.requester.calling_ae, int(req.MessageID))
                except (LinkError, ValueError, RuntimeError, OSError):
                    done = [(item.sop_instance, UNABLE_TO_PROCESS)]
                finally:
                    item.discard()
                for uid, status in done:
                    _tally(counts, session, uid, status)

            job.relay_now = relay_now
        with guard._lock:
            guard.moves[message] = job

        assert link_up is not None
        moving = link_up

        def replies() -> Iterator[tuple[Any, Dataset | None]]:
            return moving.move(query, guard.config.move_ae_title, str(model), message)

    else:
        session.get_job = job

        def replies() -> Iterator[tuple[Any, Dataset | None]]:
            assert session.upstream is not None
            return session.upstream.get().send_c_get(query, model, msg_id=message)  # type: ignore[no-any-return]

    thread = threading.Thread(target=job.pump, args=(replies,), daemon=True, name="guard-pump")
    thread.start()
    status: int = UNABLE_TO_PROCESS
    reason: str | None = "relay"
    try:
        status, reason = _relay(session, assoc, req, job, counts, send, link, link_up, upstream)
    finally:
        if thread.is_alive():  # the relay stopped early: stop the PACS too
            with contextlib.suppress(Exception):
                _cancel(link_up, upstream, message, model)
        job.close(thread)
        with guard._lock:
            guard.moves.pop(message, None)
        session.get_job = None
        if link is not None:
            with job.lock:
                link.close()
    _conclude(guard, session, assoc, service, record, status, reason, counts, finish)


def _conclude(
    guard: Guard, session: Session, assoc: Any, service: str, record: dict[str, Any],
    status: int, reason: str | None, counts: Counts, finish: Callable[..., None],
) -> None:  # fmt: skip
    """The final response to the client and the audit line (just the audit line when the
    client has gone)."""
    if not assoc.is_established:
        done = counts.completed + counts.warning
        guard.operation(
            session, service, **record, outcome="aborted", status=status, instances=done,
            failed=counts.failed,
        )  # fmt: skip
        return
    from pacsguard.guard.proxy import outcome

    finish(status, counts, outcome=outcome(status), **({"reason": reason} if reason else {}))


def _relay(
    session: Session,
    assoc: Any,
    req: Any,
    job: RetrieveJob,
    counts: Counts,
    send: Callable[[int, Counts | None], None],
    link: DestinationLink | None,
    link_up: UpstreamLink | None,
    upstream: Any,
) -> tuple[int, str | None]:
    """Relay until the PACS's final response; (the final status for the client, reason)."""
    cancelled = False
    upstream_final: int | None = None
    store_ids = iter(range(1, 1 << 30))
    last_pending, last_done = 0.0, 0
    while True:
        if not cancelled and req.MessageID in assoc.dimse.cancel_req:
            cancelled = True
            with contextlib.suppress(Exception):
                _cancel(link_up, upstream, job.message, req.AffectedSOPClassUID)
        now = time.monotonic()
        if (
            not cancelled
            and counts.done != last_done
            and now - last_pending >= PENDING_EVERY
            and assoc.is_established
        ):
            counts.upstream_total = max(counts.upstream_total, job.upstream_total)
            snapshot = replace(counts, failed_uids=[])  # a delivering thread counts on
            last_done = snapshot.done
            send(0xFF00, snapshot)
            last_pending = now
        try:
            kind, value = job.events.get(timeout=0.05)
        except queue.Empty:
            if not assoc.is_established:
                return UNABLE_TO_PROCESS, "client-gone"
            continue
        if kind == "instance":
            item: Spooled = value
            store_id = next(store_ids) % 65535 + 1
            status = _forward(job.guard, session, assoc, item, link, req, store_id)
            _tally(counts, session, item.sop_instance, status)
        elif kind == "rsp":
            upstream_final = int(getattr(value, "Status", UNABLE_TO_PROCESS))
            counts.upstream_failed = int(getattr(value, "NumberOfFailedSuboperations", 0) or 0)
        elif kind in ("done", "error"):
            break
    job.settle(job.guard.config.upstream.timeout)
    counts.upstream_total = max(counts.upstream_total, job.upstream_total)
    with job.lock:  # the last instance relayed on a delivering thread: its status too
        if link is not None:
            for uid, status in link.flush():
                _tally(counts, session, uid, status)
    return final_status(counts, cancelled, upstream_final)


def final_status(
    counts: Counts, cancelled: bool, upstream_final: int | None
) -> tuple[int, str | None]:
    """The final status for the client, and why (counts.failed takes in the PACS's own)."""
    counts.failed += counts.upstream_failed
    if cancelled:
        return CANCEL, "cancelled"
    if upstream_final is None:
        return UNABLE_TO_PROCESS, "upstream"
    if counts.done == 0 and upstream_final not in (SUCCESS, WARNING):
        return upstream_final, "upstream-status"
    if counts.failed and not counts.completed and not counts.warning:
        return ALL_FAILED, None
    if counts.failed or counts.warning:
        return WARNING, None
    return SUCCESS, None


def _total(status: Any) -> int:
    return sum(
        int(getattr(status, name, 0) or 0)
        for name in (
            "NumberOfRemainingSuboperations",
            "NumberOfCompletedSuboperations",
            "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations",
        )
    )


def _tally(counts: Counts, session: Session, uid: str, status: int) -> None:
    if status == SUCCESS:
        counts.completed += 1
    elif 0xB000 <= status <= 0xBFFF:
        counts.warning += 1
    else:
        counts.failed += 1
        if not session.research:
            counts.failed_uids.append(uid)


def _cancel(link: UpstreamLink | None, upstream: Any, message: int, model: Any) -> None:
    if link is not None:
        link.cancel(message, str(model))
    else:
        upstream.send_c_cancel(message, query_model=model)


def _forward(
    guard: Guard,
    session: Session,
    assoc: Any,
    item: Spooled,
    link: DestinationLink | None,
    req: Any,
    store_id: int,
) -> int:
    """Send one instance on (de-identified first for a research client); its status."""
    clean: Spooled | None = None
    try:
        if session.research:
            assert guard.research is not None
            path, _reason = guard.research.instance(item.file(guard.spool_dir))
            if path is None:
                return UNABLE_TO_PROCESS
            clean = spooled_file(path)
        outgoing = clean or item
        try:
            if link is not None:
                return link.send(outgoing, session.requester.calling_ae, int(req.MessageID))
            reply = assoc.send_c_store(outgoing.file(guard.spool_dir), msg_id=store_id)
            return int(getattr(reply, "Status", UNABLE_TO_PROCESS))
        except (LinkError, ValueError, RuntimeError, OSError):
            return UNABLE_TO_PROCESS
    finally:
        item.discard()
        if clean is not None:
            clean.discard()
