"""Receive one instance: spool it, de-identify it, commit its row; then, only then, Success.

The received bytes go to ``spool/incoming`` (a working copy, never synced, never
acknowledged, removed as soon as the engine has read it), the deid engine writes its output
into a slot's tree ``spool/work/<n>/<patient>/<study>/<series>/<instance>.dcm`` without
syncing it, and ``GroupCommit`` syncs it and commits its row (one delivery per routed
destination) together with every other instance spooled at the same time. Any
failure on the way answers the matching failure status (PS3.4 Annex B.2.3): out of
resources (A700) when this node cannot store, cannot understand (C000) when the input is
unreadable or the engine quarantines it, data set does not match SOP class (A900). Nothing
is said about a value inside the input.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import FileDataset
from pydicom.filereader import read_partial

from pacsguard.core.errors import OutputError
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, FileDeidentifier
from pacsguard.gateway.commit import GroupCommit
from pacsguard.gateway.config import GatewayConfig
from pacsguard.gateway.queue import NewInstance, Queue

LOG = logging.getLogger("pacsguard.gateway")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
LAST_HEADER_TAG = 0x00080060  # Modality: the row needs SOP Class, SOP Instance, Modality


@dataclass(frozen=True)
class Received:
    status: int
    reason: str | None = None  # a short sentence with no value from the input
    uid: str | None = None  # the de-identified SOP Instance UID
    instance_id: int | None = None
    sop_class: str | None = None
    study: str | None = None  # the de-identified Study Instance UID

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


@dataclass
class Slot:
    """One de-identifier and its own output tree, ``spool/work/<n>``: the engine's durable
    output *is* the spool file (no second rename, no second directory sync). A slot is
    used by one reception at a time (its lock), and a spool file is removed only under its
    slot's lock, so a reception of the same instance cannot interleave with the removal."""

    index: int
    deid: FileDeidentifier
    lock: threading.Lock


class Receiver:
    """Thread-safe: each call takes one of ``slots`` de-identifiers."""

    def __init__(self, config: GatewayConfig, key: ProjectKey, queue_: Queue, slots: int = 4):
        self.config, self.queue = config, queue_
        self.spool = config.spool
        self.incoming = self.spool / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
        deid = DeidConfig(options=frozenset(config.options), policy=config.policy)
        self.slots = [
            Slot(n, FileDeidentifier(key, deid, self.spool / "work" / str(n), config.quarantine),
                 threading.Lock())
            for n in range(slots)
        ]  # fmt: skip
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in self.slots:
            self._free.put(slot)
        self.committer = GroupCommit(self.spool, queue_)

    def close(self) -> None:
        """Stop the committer: the instances already waiting are committed (and answered);
        a reception that arrives later is refused (A700), never answered Success."""
        self.committer.close()

    def discard(self, spool_file: str) -> None:
        """Remove a spool file once no unfinished instance names it (forwarders call this
        when every destination confirmed)."""
        parts = Path(spool_file).parts
        if len(parts) < 3 or parts[0] != "work" or not parts[1].isdigit():
            return
        slot = self.slots[int(parts[1])] if int(parts[1]) < len(self.slots) else None
        if slot is None:
            return
        with slot.lock:
            if spool_file not in self.queue.live_spool_files({spool_file}):
                (self.spool / spool_file).unlink(missing_ok=True)

    def sweep(self) -> int:
        """At start-up, before serving: drop the rows whose spool file is not the one they
        committed (a crash after the commit, before the file's sync: never acknowledged),
        then remove working copies and spool files that no committed row names (a crash
        between spooling and committing: never acknowledged)."""
        self.queue.forget(self.unintact())
        live = self.queue.live_spool_files()
        removed = 0
        for path in self.incoming.iterdir():
            path.unlink(missing_ok=True)
            removed += 1
        work = self.spool / "work"
        for path in sorted(work.rglob("*"), reverse=True) if work.exists() else []:
            if path.is_file():
                if path.relative_to(self.spool).as_posix() not in live:
                    path.unlink(missing_ok=True)
                    removed += 1
            else:
                with contextlib.suppress(OSError):
                    path.rmdir()  # only empty folders go
        return removed

    def unintact(self) -> list[int]:
        """Unfinished instances whose spool file matches none of the rows that name it
        (size and SHA-256). A file replaced by a later reception of the same instance is
        synced before its rename, so it is always some row's whole file: only a file whose
        sync never finished can match none."""
        by_file: dict[str, list[tuple[int, int, str | None]]] = {}
        for instance_id, spool_file, size, sha256 in self.queue.live_files():
            by_file.setdefault(spool_file, []).append((instance_id, size, sha256))
        drop: list[int] = []
        for spool_file, rows in by_file.items():
            if any(sha256 is None for _, _, sha256 in rows):
                continue  # committed before rows carried a digest: synced first, trusted
            path = self.spool / spool_file
            try:
                with path.open("rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            except OSError:
                size, digest = -1, ""
            if not any(size == s and digest == d for _, s, d in rows):
                drop += [instance_id for instance_id, _, _ in rows]
        return drop

    def receive(
        self, data: bytes | memoryview, calling_ae: str, source: str, sop_class: str | None = None
    ) -> Received:
        """``data`` is a DICOM file (preamble, file meta, data set) as received."""
        incoming = self.incoming / f"{uuid.uuid4().hex}.dcm"
        try:
            try:
                with incoming.open("xb") as handle:
                    handle.write(data)
            except OSError as exc:
                return self._refuse(
                    calling_ae, source, f"spool cannot be written ({_errname(exc)})"
                )
            return self._process(incoming, calling_ae, source, sop_class)
        finally:
            incoming.unlink(missing_ok=True)

    def _process(
        self, incoming: Path, calling_ae: str, source: str, sop_class: str | None
    ) -> Received:
        slot = self._free.get()
        try:
            with slot.lock:
                try:
                    outcome = slot.deid.run(incoming, durable=False)
                    incoming.unlink(missing_ok=True)  # before any sync: it need never reach disk
                except OutputError as exc:
                    return self._refuse(calling_ae, source, str(exc).split(":")[0][:120])
                except OSError as exc:
                    return self._refuse(calling_ae, source, f"cannot store ({_errname(exc)})")
                if outcome.status != "output" or outcome.output is None:
                    reason = outcome.reason or "refused by the de-identification engine"
                    self._record_quarantine(calling_ae, source, reason)
                    return Received(CANNOT_UNDERSTAND, reason)
                return self._commit(slot, outcome.output, outcome.size, outcome.sha256,
                                    calling_ae, source, sop_class)  # fmt: skip
        finally:
            self._free.put(slot)

    def _commit(
        self, slot: Slot, output: Path, size: int, sha256: str | None, calling_ae: str,
        source: str, sop_class: str | None,
    ) -> Received:  # fmt: skip
        relative = output.relative_to(slot.deid.output).as_posix()
        spool_file = output.relative_to(self.spool).as_posix()

        def live() -> bool:
            """An earlier, unfinished instance names the same file (a resend); when the
            queue cannot say, the file stays (the start-up sweep removes it if unnamed)."""
            try:
                return bool(self.queue.live_spool_files({spool_file}))
            except sqlite3.Error:
                return True

        try:
            if sha256 is None:  # the start-up check needs it: a row may be durable first
                with output.open("rb") as handle:
                    sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
            header = _read_row_fields(output)
            meta = header.file_meta
            uid = str(header.get("SOPInstanceUID", "") or "")
            klass = str(header.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", ""))
            if sop_class is not None and klass != sop_class:
                if not live():
                    output.unlink(missing_ok=True)
                return self._refuse(
                    calling_ae,
                    source,
                    "data set does not match SOP class",
                    DOES_NOT_MATCH_SOP_CLASS,
                )
            modality = str(header.get("Modality", "") or "")
            new = NewInstance(
                uid, klass, str(meta.TransferSyntaxUID), modality, relative,
                spool_file, size, calling_ae, source, sha256,
            )  # fmt: skip
            routed = [
                d.name for d in self.config.destinations if d.accepts(calling_ae, modality, klass)
            ]
            instance_id = self.committer.commit(output, new, routed)
        except (OSError, sqlite3.Error) as exc:
            if not live():
                output.unlink(missing_ok=True)
            return self._refuse(calling_ae, source, f"queue cannot be written ({_errname(exc)})")
        except Exception as exc:  # a header the engine wrote but we cannot read back: refuse
            if not live():
                output.unlink(missing_ok=True)
            return self._refuse(
                calling_ae, source, f"spooled file unreadable ({type(exc).__name__})"
            )
        if not routed and not live():
            output.unlink(missing_ok=True)
        study = relative.split("/")[1] if relative.count("/") >= 3 else None
        return Received(SUCCESS, None, uid, instance_id, klass, study)

    def _record_quarantine(self, calling_ae: str, source: str, reason: str) -> None:
        with contextlib.suppress(OSError, sqlite3.Error):
            self.queue.quarantine(calling_ae, source, reason)

    def _refuse(
        self, calling_ae: str, source: str, reason: str, status: int = OUT_OF_RESOURCES
    ) -> Received:
        LOG.warning("refused an instance from %s: %s", calling_ae, reason)
        with contextlib.suppress(OSError, sqlite3.Error):
            self.queue.refuse(calling_ae, source, status, reason)
        return Received(status, reason)


def _read_row_fields(output: Path) -> FileDataset:
    """The written file's meta and its header up to Modality, no further (the row's
    fields come from the bytes that will be sent, not from the request)."""
    with output.open("rb") as handle:
        return read_partial(handle, stop_when=lambda tag, vr, length: tag > LAST_HEADER_TAG)


def _errname(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, type(exc).__name__)
    return type(exc).__name__
