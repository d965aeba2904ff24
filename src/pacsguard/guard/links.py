"""The guard's outgoing associations: to the protected PACS (one per client association,
proposing what the client proposed) and to C-MOVE destinations (contexts grown as new SOP
classes and transfer syntaxes arrive). Received instances are spooled as raw bytes, never
decoded on the way through."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, build_role, evt
from pynetdicom.presentation import PresentationContext

from pacsguard.net.part10 import dataset_offset, file_prefix
from pacsguard.net.rawquery import Encoded, encoded
from pacsguard.net.rawstore import (
    C_FIND_RSP_FIELD,
    C_MOVE_RSP_FIELD,
    AssociationLost,
    Buffer,
    Held,
    RawStore,
    cancel_command,
    find_command,
    move_command,
)
from pacsguard.net.sockets import NoDelayAE, settle

MAX_CONTEXTS = 128
# the Query/Retrieve FIND information models (Patient Root, Study Root, Patient/Study Only)
QUERY_MODELS = frozenset(
    {"1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1", "1.2.840.10008.5.1.4.1.2.3.1"}
)


class LinkError(Exception):
    """An outgoing association could not be made (the message names the peer, no values)."""


IN_MEMORY_LIMIT = 32 * 1024 * 1024  # larger instances are spooled to disk as they arrive


@dataclass
class Spooled:
    """One instance as received: its dataset's encoded bytes in memory (``data``, or
    ``fragments``: the same bytes in consecutive pieces, as they came off the wire) or a
    file of file meta + those bytes (``path``); never decoded on the way through."""

    path: Path | None
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    data: bytes | None = None
    fragments: tuple[Buffer, ...] | None = None

    def file(self, folder: Path) -> Path:
        """A DICOM file of the instance (written now if it is held in memory)."""
        if self.path is None:
            self.path = _write(folder, self, self.pieces() or ())
        return self.path

    def dataset(self) -> bytes | None:
        """The encoded dataset (no file meta), or None where the file's meta has no group
        length to find where it ends."""
        if self.data is None and self.fragments is not None:
            self.data, self.fragments = b"".join(self.fragments), None
        if self.data is not None:
            return self.data
        assert self.path is not None
        return dataset_bytes(self.path)

    def pieces(self) -> Sequence[Buffer] | None:
        """The encoded dataset in consecutive pieces, not joined (``RawStore.submit`` sends
        them as they are); None as ``dataset``."""
        if self.fragments is not None:
            return self.fragments
        data = self.dataset()
        return None if data is None else (data,)

    def discard(self) -> None:
        self.data = self.fragments = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _write(folder: Path, item: Spooled, data: Sequence[Buffer]) -> Path:
    path = folder / f"{uuid.uuid4().hex}.dcm"
    with path.open("wb") as handle:
        handle.write(file_prefix(item.sop_class, item.sop_instance, item.transfer_syntax))
        handle.writelines(data)
    return path


def dataset_bytes(path: Path) -> bytes | None:
    """The bytes after a Part 10 file's meta (``net.part10.dataset_offset``: the meta walked,
    not its group length trusted)."""
    data = path.read_bytes()
    offset = dataset_offset(data)
    return None if offset is None else data[offset:]


def spool(event: Any, folder: Path, *, in_memory: bool = False) -> Spooled:
    """A C-STORE request's dataset, undecoded (see ``received``)."""
    return received(event.request, str(event.context.transfer_syntax), folder, in_memory=in_memory)


def received(request: Any, transfer_syntax: str, folder: Path, *, in_memory: bool) -> Spooled:
    """A C-STORE request's dataset, undecoded: kept in memory (``in_memory``, up to
    ``IN_MEMORY_LIMIT``) or written as a DICOM file to ``folder``. A request read by
    ``net.rawstore`` keeps its fragments as they came (never joined on this path)."""
    fragments: tuple[Buffer, ...] | None = getattr(request, "fragments", None)
    item = Spooled(
        None,
        str(request.AffectedSOPClassUID),
        str(request.AffectedSOPInstanceUID),
        transfer_syntax,
    )
    if fragments is not None:
        item.fragments = fragments
        size = sum(len(fragment) for fragment in fragments)
    else:
        item.data = request.DataSet.getvalue()
        size = len(item.data)
    if not in_memory or size > IN_MEMORY_LIMIT:
        item.path = _write(folder, item, item.pieces() or ())
        item.data = item.fragments = None
    return item


def spooled_file(path: Path) -> Spooled:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return Spooled(
        path,
        str(meta.MediaStorageSOPClassUID),
        str(meta.MediaStorageSOPInstanceUID),
        str(meta.TransferSyntaxUID),
    )


def _ae(calling_ae: str, timeout: float) -> NoDelayAE:
    ae = NoDelayAE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.maximum_pdu_size = 262_144
    return ae


@dataclass
class MoveStatus:
    """The parts of a C-MOVE-RSP the relay reads (named as pynetdicom's status Dataset)."""

    Status: int
    NumberOfRemainingSuboperations: int | None
    NumberOfCompletedSuboperations: int | None
    NumberOfFailedSuboperations: int | None
    NumberOfWarningSuboperations: int | None


def _status(value: Any) -> int:
    return int(getattr(value, "Status", 0xC000)) if value is not None else 0xC000


class UpstreamLink:
    """The association to the PACS that serves one client association, opened on first use
    with the client's own presentation contexts and SCP/SCU roles."""

    def __init__(
        self,
        host: str,
        port: int,
        called_ae: str,
        calling_ae: str,
        timeout: float,
        requested: list[PresentationContext],
        roles: dict[str, Any],
        on_store: Callable[[Any], int],
        accepted: Sequence[PresentationContext] = (),
    ) -> None:
        self.address = (host, port)
        self.called_ae = called_ae
        self.timeout = timeout
        self._ae = _ae(calling_ae, timeout)
        self._contexts = [
            build_context(str(cx.abstract_syntax), list(cx.transfer_syntax))
            for cx in requested[:MAX_CONTEXTS]
        ]
        # A query model's context again, with only the transfer syntax the guard accepted
        # from the client: the PACS may prefer another of the client's, and a query and its
        # responses in the client's own syntax go through as bytes (find.py)
        for cx in accepted:
            if len(self._contexts) >= MAX_CONTEXTS:
                break
            if str(cx.abstract_syntax) in QUERY_MODELS and cx.transfer_syntax:
                self._contexts.insert(0, build_context(str(cx.abstract_syntax),
                                                       [cx.transfer_syntax[0]]))  # fmt: skip
        self._roles: list[Any] = [
            build_role(uid, scu_role=bool(item.scu_role), scp_role=bool(item.scp_role))
            for uid, item in roles.items()
        ]
        self._on_store = on_store
        self.assoc: Any = None
        self._hold: Held | None = None  # kept between requests
        self._held: Held | None = None  # while a C-MOVE or C-FIND is in progress on it
        self._held_context = 0
        self._chosen: dict[tuple[str, str], Any] = {}  # (model, syntax) -> its context
        self.served = 0  # requests answered in full on this link

    def open(self) -> Any:
        """The association, opened if there is none (held or not, as it was)."""
        if self.assoc is not None and self.assoc.is_established:
            return self.assoc
        self.close(abort=True)
        assoc = self._ae.associate(
            *self.address,
            ae_title=self.called_ae,
            contexts=self._contexts,
            ext_neg=self._roles or None,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        if not assoc.is_established:
            raise LinkError("the upstream PACS refused or did not answer the association")
        self.assoc = assoc
        self._chosen = {}
        return assoc

    def get(self) -> Any:
        """The association for pynetdicom's own requests (handed back if it was held)."""
        assoc = self.open()
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.__exit__(None, None, None)
            if not assoc.is_established:
                assoc = self.open()
        settle(assoc)  # the previous operation may have just returned
        return assoc

    def holding(self) -> Held | None:
        """The association held for raw requests, and kept held between them (its DUL and
        reactor idle, no pynetdicom polling): opened or reopened as needed. Reopened too if
        the PACS sent something unasked (a release, an abort, a late response). None where
        it cannot be held."""
        assoc = self.open()
        hold = self._hold
        if hold is not None and (hold.lost or hold.unsolicited()):
            self.close(abort=True)
            assoc, hold = self.open(), None
        if hold is None:
            if not Held.usable(assoc):
                return None
            try:
                hold = Held(assoc).__enter__()
            except AssociationLost:
                return None
            self._hold = hold
        return hold

    def find(
        self, query: Dataset | Encoded, model: str, message_id: int
    ) -> Generator[tuple[Any, Any], None, None]:
        """A C-FIND: (status, identifier or None) for each response, read straight off the
        held association, the identifier as it came (``Encoded``); pynetdicom's
        ``send_c_find`` where it cannot be held (a decoded Dataset then). An association
        that served before (kept, or pooled) may have been dropped by the PACS since in a
        way only a request shows: lost before the PACS said anything, the query is sent
        once more on a new association."""
        retry = self.served > 0
        while True:
            try:
                held = self.holding()
            except LinkError:
                yield MoveStatus(0xC000, None, None, None, None), None
                return
            if held is None:
                if isinstance(query, Encoded):
                    query = query.dataset()
                yield from self.get().send_c_find(query, model, msg_id=message_id)
                return
            context, identifier = self._request(model, query)
            finished = heard = False
            try:
                held.send(context, find_command(model, message_id), identifier)
                syntax = str(self.assoc._accepted_cx[context].transfer_syntax[0])
                while True:
                    message = held.message()
                    heard = True
                    if (message.number(0x0100) != C_FIND_RSP_FIELD
                            or message.number(0x0120) != message_id):  # fmt: skip
                        continue  # not a response to this request
                    status = message.number(0x0900)
                    if status is None:
                        held.lost = True
                        raise AssociationLost("a C-FIND response without a status")
                    found = None if message.data is None else Encoded(message.data, syntax)
                    pending = status in (0xFF00, 0xFF01)
                    finished = not pending
                    if finished:
                        self.served += 1
                    yield MoveStatus(status, None, None, None, None), found
                    if not pending:
                        return
            except AssociationLost:
                if retry and not heard:
                    retry = False
                    self.close(abort=True)
                    continue
                yield MoveStatus(0xC000, None, None, None, None), None
                return
            finally:
                self._held = None
                if not finished:  # left mid-way: the rest of its responses are not wanted here
                    held.lost = True

    def _request(self, model: str, query: Dataset | Encoded) -> tuple[int, bytes]:
        """(the context ID for ``model`` as SCU, ``query`` encoded for it: as it came where
        it came in that context's transfer syntax)"""
        wanted = query.syntax if isinstance(query, Encoded) else ""
        context = self._chosen.get((model, wanted))
        if context is None:
            context = self.assoc._get_valid_context(model, wanted, "scu")
            self._chosen[(model, wanted)] = context
        syntax = str(context.transfer_syntax[0])
        if isinstance(query, Encoded) and query.syntax == syntax:
            identifier: bytes | None = query.data
        else:
            identifier = encoded(query.dataset() if isinstance(query, Encoded) else query, syntax)
        if identifier is None:
            raise ValueError("the identifier cannot be encoded")
        self._held, self._held_context = self._hold, int(context.context_id)
        return int(context.context_id), identifier

    def move(
        self, query: Dataset, destination: str, model: str, message_id: int
    ) -> Iterator[tuple[Any, Dataset | None]]:
        """A C-MOVE on the association: its responses (``MoveStatus``), read straight off
        the held association, so that no pending response costs a pynetdicom decode;
        pynetdicom's own ``send_c_move`` where it cannot be held."""
        held = self.holding()
        if held is None:
            yield from self.get().send_c_move(query, destination, model, msg_id=message_id)
            return
        context, identifier = self._request(model, query)
        finished = False
        try:
            held.send(context, move_command(model, message_id, destination), identifier)
            while True:
                message = held.message()
                if (
                    message.number(0x0100) != C_MOVE_RSP_FIELD
                    or message.number(0x0120) != message_id
                ):
                    continue  # not a response to this request
                if 0x0900 not in message.fields:
                    held.lost = True
                    raise AssociationLost("a C-MOVE response without a status")
                status = MoveStatus(
                    message.number(0x0900) or 0,
                    message.number(0x1020),
                    message.number(0x1021),
                    message.number(0x1022),
                    message.number(0x1023),
                )
                finished = status.Status not in (0xFF00, 0xFF01)
                if finished:
                    self.served += 1
                yield status, None
                if finished:
                    return
        finally:
            self._held = None
            if not finished:
                held.lost = True

    def cancel(self, message_id: int, model: str) -> None:
        """C-CANCEL the request ``message_id`` (a C-MOVE or C-GET in progress)."""
        held = self._held
        if held is not None:
            held.send(self._held_context, cancel_command(message_id))
        elif self.assoc is not None:
            self.assoc.send_c_cancel(message_id, query_model=model)

    def reusable(self) -> bool:
        """Established, and nothing left over from the last request (a request left
        mid-way, a message the PACS sent unasked): another client may use it."""
        assoc, hold = self.assoc, self._hold
        if assoc is None or not assoc.is_established or self._held is not None:
            return False
        return hold is None or not (hold.lost or hold.unsolicited())

    def close(self, *, abort: bool = False) -> None:
        hold, self._hold, self._held = self._hold, None, None
        assoc, self.assoc = self.assoc, None
        if hold is not None:
            hold.__exit__(None, None, None)  # handed back (aborted if it was lost)
            if assoc is not None:
                # pynetdicom's release() takes a reactor still waking from the hold's pause
                # for a paused one, and the reactor then takes the A-RELEASE-RP: release()
                # waited out its ACSE timeout (30 s; seen when an idle pooled link was let go)
                settle(assoc)
        if assoc is not None and assoc.is_established:
            try:
                assoc.abort() if abort else assoc.release()
            except Exception:
                with contextlib.suppress(Exception):
                    assoc.abort()


def refuse_store(_event: Any) -> int:
    return 0xA700  # a pooled association takes no C-STORE (a C-GET's are its session's)


class UpstreamPool:
    """Upstream associations for clinical C-FIND and C-MOVE, shared by client associations
    one at a time: a client association's query no longer waits for an association to the
    PACS (a findscu run opened one for its one query). Links are kept per (query model,
    transfer syntax); each proposes only that model, in that syntax first (so that a
    C-FIND goes through as bytes), then both uncompressed little-endian syntaxes, and
    takes no C-STORE (a C-GET stays on its client's own upstream association, whose
    store handler is bound to the client). A link goes back to the pool only if it
    finished its request cleanly (``UpstreamLink.reusable``); any other is aborted, so no
    state of one client's request (responses still coming, a cancel) meets the next
    client. Idle links are released after ``idle_timeout`` seconds, at ``drain`` and at
    ``close``; one the PACS dropped meanwhile is found at the next use and replaced."""

    MAX_IDLE = 4  # per key: more idle links than concurrent clients are released at once

    def __init__(self, make: Callable[[list[Any], list[Any]], UpstreamLink],
                 idle_timeout: float) -> None:  # fmt: skip
        self._make = make
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, str], list[tuple[float, UpstreamLink]]] = {}
        self._keys: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.opened = 0  # links made, for the report and the tests
        self._reaper = threading.Thread(target=self._reap, name="guard-pool", daemon=True)
        self._reaper.start()

    def take(self, model: str, syntax: str) -> UpstreamLink:
        """An idle link for ``model`` (its association open, or opened at first use)."""
        key = (model, syntax)
        with self._lock:
            idle = self._idle.get(key)
            link = idle.pop()[1] if idle else None
        if link is None:
            syntaxes = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
            first = [build_context(model, [syntax])] if syntax else []
            link = self._make([build_context(model, syntaxes)], first)
            with self._lock:
                self.opened += 1
        with self._lock:
            self._keys[id(link)] = key
        return link

    def give(self, link: UpstreamLink) -> None:
        """Back to the pool once its request is over (aborted instead if not reusable)."""
        with self._lock:
            key = self._keys.pop(id(link), None)
            keep = key is not None and not self._closed.is_set()
        if not keep or not link.reusable():
            link.close(abort=True)
            return
        assert key is not None
        with self._lock:
            idle = self._idle.setdefault(key, [])
            idle.append((time.monotonic(), link))
            extra = idle[: max(0, len(idle) - self.MAX_IDLE)]
            del idle[: len(extra)]
        for _, old in extra:
            old.close()

    def drain(self) -> None:
        """Release every idle link now."""
        with self._lock:
            links = [link for idle in self._idle.values() for _, link in idle]
            self._idle.clear()
        for link in links:
            link.close()

    def close(self) -> None:
        self._closed.set()
        self.drain()

    def _reap(self) -> None:
        period = max(0.05, min(1.0, self.idle_timeout / 2))
        while not self._closed.wait(period):
            deadline = time.monotonic() - self.idle_timeout
            with self._lock:
                old = [link for idle in self._idle.values() for t, link in idle if t < deadline]
                for key, idle in self._idle.items():
                    self._idle[key] = [(t, link) for t, link in idle if t >= deadline]
            for link in old:
                link.close()


class DestinationLink:
    """The association to one C-MOVE destination, for the life of one C-MOVE; reopened with
    a wider set of presentation contexts when an instance needs one it lacks. Instances go
    out as received (``RawStore``: the dataset's bytes framed straight onto the socket, the
    association's reactor paused while the link is open)."""

    def __init__(
        self, host: str, port: int, called_ae: str, calling_ae: str, timeout: float,
        spool_dir: Path,
    ) -> None:  # fmt: skip
        self.address = (host, port)
        self.called_ae = called_ae
        self.timeout = timeout
        self.spool_dir = spool_dir
        self._ae = _ae(calling_ae, timeout)
        self._pairs: dict[str, list[str]] = {}
        self.assoc: Any = None
        self._raw: RawStore | None = None
        self._plain = False  # pynetdicom's own sending, from the first instance it must
        self._message = 0
        self._outstanding: str | None = None  # the instance whose response is not read yet
        self._contexts_of: Any = None  # the association ``_contexts`` is of
        self._contexts: dict[tuple[str, str], int] = {}

    def _context(self, item: Spooled) -> int | None:
        assoc = self.assoc
        if assoc is None or not assoc.is_established:
            return None
        if self._contexts_of is not assoc:  # (SOP class, transfer syntax) -> context ID
            self._contexts_of, self._contexts = assoc, {}
            for cx in assoc.accepted_contexts:
                key = (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                self._contexts.setdefault(key, int(cx.context_id))
        return self._contexts.get((item.sop_class, item.transfer_syntax))

    def _open(self, item: Spooled) -> None:
        syntaxes = self._pairs.setdefault(item.sop_class, [])
        if item.transfer_syntax not in syntaxes:
            syntaxes.append(item.transfer_syntax)
        contexts = []
        for sop_class, wanted in self._pairs.items():
            # one context per transfer syntax, so that each can be accepted on its own
            for syntax in wanted:
                contexts.append(build_context(sop_class, [syntax]))
        if len(contexts) > MAX_CONTEXTS:
            raise LinkError("the move needs more than 128 presentation contexts")
        self.close()
        assoc = self._ae.associate(*self.address, ae_title=self.called_ae, contexts=contexts)
        if not assoc.is_established:
            raise LinkError("the move destination refused or did not answer the association")
        self.assoc = assoc
        if not self._plain and RawStore.usable(assoc):
            try:
                self._raw = RawStore(assoc).__enter__()
            except AssociationLost:
                raise LinkError("the move destination's association was lost") from None

    def send(self, item: Spooled, originator_ae: str, originator_id: int) -> int:
        """C-STORE one instance; the destination's status (a failure if unsent)."""
        done = self.submit(item, originator_ae, originator_id) + self.flush()
        return done[-1][1]

    def submit(
        self, item: Spooled, originator_ae: str, originator_id: int
    ) -> list[tuple[str, int]]:
        """C-STORE one instance, reading its response only at the next ``submit`` or
        ``flush`` (the destination stores it while the next one arrives); the instances
        whose statuses are known now, with them (SOP Instance UID, status)."""
        done = self.flush()
        self._message = self._message % 65535 + 1
        raw = self._raw
        context = self._context(item) if raw is not None else None
        if raw is not None and context is not None:
            data = item.pieces()
            if data is not None:
                try:
                    raw.submit(
                        context, item.sop_class, item.sop_instance, data, self._message,
                        originator_ae=originator_ae, originator_id=originator_id,
                    )  # fmt: skip
                except AssociationLost:
                    self._raw = None
                    self.assoc = None  # the next instance opens a new association
                    return [*done, (item.sop_instance, 0xA700)]
                self._outstanding = item.sop_instance
                return done
        return [*done, (item.sop_instance, self._send_now(item, originator_ae, originator_id))]

    def flush(self) -> list[tuple[str, int]]:
        """The status of the instance submitted last, if it is still to be read."""
        uid, self._outstanding = self._outstanding, None
        raw = self._raw
        if uid is None or raw is None:
            return []
        try:
            return [(uid, raw.collect())]
        except AssociationLost:
            self._raw = None
            self.assoc = None
            return [(uid, 0xA700)]

    def _send_now(self, item: Spooled, originator_ae: str, originator_id: int) -> int:
        context = self._context(item)
        if context is None:
            self._open(item)
            context = self._context(item)
            if context is None:
                return 0x0122  # the destination accepts no context for this instance
        raw = self._raw
        data = item.pieces() if raw is not None else None
        if raw is not None and data is not None:
            try:
                return raw.send(
                    context, item.sop_class, item.sop_instance, data, self._message,
                    originator_ae=originator_ae, originator_id=originator_id,
                )  # fmt: skip
            except AssociationLost:
                self._raw = None
                self.assoc = None  # the next instance opens a new association
                return 0xA700
        if raw is not None:  # no group length in its file meta: pynetdicom's own path
            self._reopen_plain(item)
        reply = self.assoc.send_c_store(
            item.file(self.spool_dir),
            msg_id=self._message,
            originator_aet=originator_ae,
            originator_id=originator_id,
        )
        settle(self.assoc)
        return _status(reply)

    def _reopen_plain(self, item: Spooled) -> None:
        """A pynetdicom association for the rest of the move (once ``RawStore`` has taken
        an association over, pynetdicom cannot send on it again)."""
        self.close()
        self._plain = True
        self._open(item)

    def close(self) -> None:
        self._outstanding = None  # flush() first to count it
        assoc, self.assoc = self.assoc, None
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.release()
            return
        if assoc is not None and assoc.is_established:
            try:
                assoc.release()
            except Exception:
                with contextlib.suppress(Exception):
                    assoc.abort()
