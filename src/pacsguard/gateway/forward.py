"""Destinations: C-STORE SCU, STOW-RS, folder; per destination a queue, workers, retries.

A delivery is marked sent only on the destination's confirmation (a C-STORE Success or
Warning status, a STOW-RS response that lists the instance as stored, a synced rename in
the folder). A transient failure is retried with exponential backoff and jitter until the
delivery is older than the destination's ``max_age``; then it goes to the dead-letter folder
with its reason, until ``pacsguard gateway retry DEST``. A permanent one (``outcome``: the
destination refuses the SOP class, or says the data set is wrong) goes there at once.
The instance is named by its de-identified SOP Instance UID, so a resend after a crash
lands on the same object at the destination.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from pacsguard.core.io import fsync_dir
from pacsguard.core.keys import read_secret
from pacsguard.gateway.config import Destination, GatewayConfig
from pacsguard.gateway.folder import FolderSender
from pacsguard.gateway.outcome import Failure, http_failure, store_failure
from pacsguard.gateway.queue import Item, Queue
from pacsguard.net import AuditLog, NoDelayAE, client_context
from pacsguard.net.part10 import dataset_offset
from pacsguard.net.rawstore import AssociationLost, RawStore

LOG = logging.getLogger("pacsguard.gateway")
MAX_CONTEXTS = 128  # PS3.8: presentation context IDs are odd numbers 1-255
KEEP_ALIVE = 5.0  # seconds an idle association is kept (peers close theirs after ~30 s)
# Seconds a confirmed delivery may wait for its mark: marks are committed in groups, so a
# steady stream does not pay a queue sync per instance (a crash before the commit only
# resends, which the de-identified SOP Instance UID makes idempotent at the destination).
CONFIRM_DELAY = 0.25

Result = tuple[Item, Failure | None]  # None: confirmed


class Sender(Protocol):
    def send(self, items: Sequence[Item], spool: Path) -> list[Result]: ...

    def settle(self, idle: bool, changed: bool) -> None:
        """After a batch was recorded (``changed``) or when nothing is due (``idle``): bring
        any summary of the destination up to date, close what has been idle too long."""

    def release(self) -> None:
        """The calling worker thread is done: let go of what it holds open."""


def _ok_store_status(code: int) -> bool:
    return code == 0x0000 or 0xB000 <= code <= 0xBFFF  # Success or Warning (PS3.4 B.2.3)


@dataclass
class _Open:
    """One worker thread's association, kept between batches, taken over by ``RawStore``
    once established: pynetdicom negotiates it, and from then on each instance's data set
    is framed straight onto its socket."""

    assoc: Any
    raw: RawStore
    pairs: frozenset[tuple[str, str]]  # the (SOP class, transfer syntax) pairs it requested
    used: float
    message_id: int = 0

    @property
    def alive(self) -> bool:
        return self.raw.alive

    def context(self, item: Item) -> int | None:
        for cx in self.assoc.accepted_contexts:
            syntax = cx.transfer_syntax[0]
            if cx.abstract_syntax == item.sop_class and syntax == item.transfer_syntax:
                return int(cx.context_id)
        return None

    def next_message(self) -> int:
        self.message_id = self.message_id % 65535 + 1
        return self.message_id


class DicomSender:
    """Each worker thread keeps its association open between batches (``KEEP_ALIVE``
    seconds idle at most), so a steady stream does not pay an association per instance;
    a batch that needs a context it did not request opens a new one asking for both. Each
    file's data set is sent as stored (its bytes, never decoded: ``RawStore``), so the
    destination must accept its syntax."""

    def __init__(self, dest: Destination, calling_ae: str) -> None:
        self.dest = dest
        self.calling_ae = dest.calling_ae or calling_ae
        self.tls = None
        if dest.tls:
            self.tls = client_context(dest.ca_file, dest.cert_file, dest.key_file)
        self._local = threading.local()

    def settle(self, idle: bool, changed: bool) -> None:
        current: _Open | None = getattr(self._local, "open", None)
        if idle and current is not None and time.monotonic() - current.used >= KEEP_ALIVE:
            self.release()

    def release(self) -> None:
        """Release this thread's association, if it holds one."""
        current: _Open | None = getattr(self._local, "open", None)
        self._local.open = None
        if current is not None:
            with contextlib.suppress(Exception):
                current.raw.release()

    def _associate(self, pairs: frozenset[tuple[str, str]]) -> tuple[_Open | Any, bool]:
        """This thread's open association if it requested ``pairs`` (reused: True), else a
        new one taken over (an ``_Open``), or pynetdicom's failed attempt."""
        current: _Open | None = getattr(self._local, "open", None)
        if current is not None and current.alive and pairs <= current.pairs:
            return current, True
        wanted = pairs
        if current is not None and len(current.pairs | pairs) <= MAX_CONTEXTS:
            wanted = current.pairs | pairs
        self.release()
        ae = NoDelayAE(self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.dest.timeout
        ae.connection_timeout = self.dest.timeout
        for sop_class, syntax in sorted(wanted):
            ae.add_requested_context(sop_class, [syntax])
        assert self.dest.host is not None and self.dest.port is not None
        assoc = ae.associate(
            self.dest.host,
            self.dest.port,
            ae_title=self.dest.ae_title or "ANY-SCP",
            tls_args=(self.tls, None) if self.tls is not None else None,  # type: ignore[arg-type]
        )
        if not assoc.is_established:
            return assoc, False
        try:
            raw = RawStore(assoc).__enter__()
        except AssociationLost:
            return assoc, False  # no longer established: reported as no association
        opened = _Open(assoc, raw, wanted, time.monotonic())
        self._local.open = opened
        return opened, False

    def send(self, items: Sequence[Item], spool: Path) -> list[Result]:
        pairs: dict[tuple[str, str], None] = {}
        batch: list[Item] = []
        for item in items:
            key = (item.sop_class, item.transfer_syntax)
            if key not in pairs and len(pairs) >= MAX_CONTEXTS:
                break
            pairs[key] = None
            batch.append(item)
        opened, reused = self._associate(frozenset(pairs))
        if not isinstance(opened, _Open):
            assoc = opened
            if assoc.rejected_contexts and not assoc.accepted_contexts:
                return [(item, _refused_context(item)) for item in batch]
            # pynetdicom reports a refused connection as an abort: one reason for both
            why = Failure("association rejected" if assoc.is_rejected else "no association")
            return [(item, why) for item in batch]
        results = self._send_on(opened, batch, spool)
        if reused and results and results[0][1] is not None and not opened.alive:
            # the kept association died while idle (the peer closed it): once more, fresh
            self.release()
            return self.send(items, spool)
        if opened.alive:
            opened.used = time.monotonic()
        else:
            self._local.open = None
        return results

    def _send_on(self, opened: _Open, batch: list[Item], spool: Path) -> list[Result]:
        results: list[Result] = []
        for index, item in enumerate(batch):
            if not opened.alive:
                results += [(i, Failure("association lost")) for i in batch[index:]]
                break
            context = opened.context(item)
            if context is None:  # the destination refused this (class, syntax) context
                results.append((item, _refused_context(item)))
                continue
            try:
                data = (spool / item.spool).read_bytes()
            except OSError as exc:
                results.append((item, Failure(f"spool file unreadable ({type(exc).__name__})")))
                continue
            start = dataset_offset(data)
            if start is None:
                results.append((item, Failure("spool file is not a DICOM file", permanent=True)))
                continue
            try:
                code = opened.raw.send(
                    context, item.sop_class, item.uid, data[start:], opened.next_message()
                )
            except AssociationLost:
                failure = Failure("association lost")
                results += [(i, failure) for i in batch[index:]]
                break
            if _ok_store_status(code):
                results.append((item, None))
            else:
                results.append((item, store_failure(code)))
        return results


def _secret(path: Path | None, env: str | None, what: str) -> str | None:
    if path is None and env is None:
        return None
    data, _ = read_secret(
        path, file_env=f"{env}_FILE" if env else "", value_env=env or "", what=what, option="a file"
    )
    return data.decode("utf-8").strip()


class StowSender:
    """STOW-RS (PS3.18 10.5): one multipart/related request per batch."""

    def __init__(self, dest: Destination) -> None:
        assert dest.url is not None
        self.url = dest.url + "/studies"
        headers = {"Accept": "application/dicom+json"}
        token = _secret(dest.token_file, dest.token_env, f"destination {dest.name} token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        auth = None
        password = _secret(
            dest.password_file, dest.password_env, f"destination {dest.name} password"
        )
        if dest.username is not None:
            auth = httpx.BasicAuth(dest.username, password or "")
        verify: Any = True if dest.ca_file is None else str(dest.ca_file)
        self.client = httpx.Client(
            headers=headers, auth=auth, timeout=dest.timeout, verify=verify, trust_env=False
        )  # httpcore sets TCP_NODELAY on its sockets

    def settle(self, idle: bool, changed: bool) -> None:
        return

    def release(self) -> None:
        return

    def send(self, items: Sequence[Item], spool: Path) -> list[Result]:
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for item in items:
            parts += [
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                (spool / item.spool).read_bytes(),
                b"\r\n",
            ]
        parts.append(f"--{boundary}--\r\n".encode())
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        try:
            reply = self.client.post(
                self.url, content=b"".join(parts), headers={"Content-Type": content_type}
            )
        except httpx.HTTPError as exc:
            failure = Failure(f"STOW-RS request failed ({type(exc).__name__})")
            return [(item, failure) for item in items]
        stored, failed = _stow_outcome(reply)
        results: list[Result] = []
        for item in items:
            if item.uid in failed:
                code = failed[item.uid]
                if code is None:
                    results.append((item, Failure("STOW-RS failure without a reason")))
                else:
                    reason = store_failure(code)
                    results.append((item, Failure(f"STOW-RS {reason.reason}", reason.permanent)))
            elif item.uid in stored or (reply.status_code == 200 and not stored and not failed):
                results.append((item, None))
            else:
                results.append((item, http_failure(reply.status_code)))
        return results


def _stow_outcome(reply: httpx.Response) -> tuple[set[str], dict[str, int | None]]:
    """UIDs the response lists as stored (00081199) and as failed (00081198, reason)."""
    try:
        body = reply.json()
    except ValueError:
        return set(), {}
    if isinstance(body, list):
        body = body[0] if body else {}
    if not isinstance(body, dict):
        return set(), {}

    def items(tag: str) -> list[dict[str, Any]]:
        value = body.get(tag, {}).get("Value", [])
        return [v for v in value if isinstance(v, dict)]

    def uid(entry: dict[str, Any]) -> str:
        values = entry.get("00081155", {}).get("Value", [""])
        return str(values[0]) if values else ""

    stored = {uid(e) for e in items("00081199")}
    failed: dict[str, int | None] = {}
    for entry in items("00081198"):
        reason = entry.get("00081197", {}).get("Value", [None])
        failed[uid(entry)] = reason[0] if reason and isinstance(reason[0], int) else None
    return stored, failed


def _refused_context(item: Item) -> Failure:
    """The destination accepted no presentation context for this instance's SOP class in
    its transfer syntax (A-ASSOCIATE-AC result 3 or 4): resending the same cannot help."""
    return Failure(
        f"the destination refuses SOP class {item.sop_class} in {item.transfer_syntax}",
        permanent=True,
    )


def make_sender(dest: Destination, config: GatewayConfig, queue: Queue) -> Sender:
    if dest.type == "dicom":
        return DicomSender(dest, config.ae_title)
    if dest.type == "stow":
        return StowSender(dest)
    return FolderSender(dest, config, queue)


def backoff(attempts: int, initial: float, ceiling: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay."""
    nominal = min(ceiling, initial * (2 ** max(0, attempts - 1)))
    return float(nominal * (0.5 + random.random()))


class DestinationWorkers:
    """``concurrency`` threads draining one destination's queue. A confirmed delivery
    stays claimed until its mark is committed (``_flush``: a batch's worth, or after
    ``CONFIRM_DELAY``), and its spool file is discarded only after that."""

    def __init__(
        self,
        dest: Destination,
        config: GatewayConfig,
        queue: Queue,
        audit: AuditLog,
        discard: Callable[[str], None],
        on_sent: Callable[[Item, float], None] = lambda item, latency: None,
    ) -> None:
        self.dest, self.config, self.queue, self.audit = dest, config, queue, audit
        self.sender = make_sender(dest, config, queue)
        self.on_sent, self.discard = on_sent, discard
        self.spool = config.spool
        self.dead_dir = config.dead_letter / dest.name
        self._claimed: set[int] = set()
        self._confirmed: list[tuple[Item, float]] = []  # (delivery, confirmed at), unmarked
        self._confirmed_since = 0.0  # monotonic time the oldest unmarked one came
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._woken = False  # a notify that came while no worker was waiting is not lost
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"forward-{dest.name}-{n}", daemon=True)
            for n in range(dest.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._settle(idle=True, changed=self._flush(force=True))

    def _claim(self) -> list[Item]:
        with self._lock:
            items = self.queue.due(self.dest.name, self.dest.batch, exclude=self._claimed)
            self._claimed.update(i.instance_id for i in items)
        return items

    def _release(self, items: Sequence[Item]) -> None:
        """Claims end, except those of confirmed deliveries still to be marked."""
        with self._lock:
            held = {item.instance_id for item, _ in self._confirmed}
            self._claimed.difference_update(
                i.instance_id for i in items if i.instance_id not in held
            )

    def _confirm(self, items: Sequence[Item], when: float) -> None:
        with self._lock:
            if not self._confirmed:
                self._confirmed_since = time.monotonic()
            self._confirmed += [(item, when) for item in items]
            full = len(self._confirmed) >= self.dest.batch
        if full:
            self._flush(force=True)

    def _flush_in(self) -> float | None:
        """Seconds until the unmarked confirmations are due to be committed (None: none)."""
        with self._lock:
            if not self._confirmed:
                return None
            return max(0.0, self._confirmed_since + CONFIRM_DELAY - time.monotonic())

    def _flush(self, force: bool = False) -> bool:
        """Commit the marks of confirmed deliveries (all of them, or once they are due),
        then discard the spool files of instances every destination has confirmed; True
        if marks were committed (a summary of the destination is then out of date)."""
        due = self._flush_in()
        if due is None or (due > 0 and not force):
            return False
        with self._lock:
            confirmed, self._confirmed = self._confirmed, []
        try:
            complete = self.queue.sent_at(confirmed)
        except Exception:  # still queued in the database: sent again, idempotently
            LOG.exception("confirmations for %s not recorded", self.dest.name)
            complete, confirmed = [], []
        finally:
            with self._lock:
                self._claimed.difference_update(i.instance_id for i, _ in confirmed)
        for item in complete:
            self.discard(item.spool)
        for item, when in confirmed:
            self.on_sent(item, when - item.received_at)
        return bool(confirmed)

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            with contextlib.suppress(Exception):
                self.sender.release()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._claim()
            except Exception:
                LOG.exception("queue read failed for %s", self.dest.name)
                self._stop.wait(1.0)
                continue
            if not items:
                self._idle()
                continue
            try:
                self._deliver(items)
            except Exception:
                LOG.exception("delivery to %s failed", self.dest.name)
                self._stop.wait(1.0)
            finally:
                self._release(items)
            self._flush()
            self._settle(idle=False, changed=True)

    def _settle(self, idle: bool, changed: bool = False) -> None:
        with self._lock:  # one worker at a time writes a destination's summary
            try:
                self.sender.settle(idle, changed)
            except Exception:
                LOG.exception("summary of %s not written (tried again)", self.dest.name)

    def _idle(self) -> None:
        self._settle(idle=True, changed=self._flush())
        flush_in = self._flush_in()
        if flush_in is not None:  # what is due is held until then (new arrivals notify)
            wait = max(0.01, flush_in)
        else:
            due = self.queue.next_due(self.dest.name)
            wait = 1.0 if due is None else max(0.01, min(1.0, due - time.time()))
        with self._wake:
            if not self._woken:
                self._wake.wait(wait)
            self._woken = False

    def _deliver(self, items: list[Item]) -> None:
        try:
            results = self.sender.send(items, self.spool)
        except Exception as exc:  # a sender bug must not lose items: they stay queued
            failure = Failure(f"send failed ({type(exc).__name__})")
            results = [(item, failure) for item in items]
        now = time.time()
        done = [item for item, error in results if error is None]
        if done:
            self._confirm(done, now)
        failures = [(item, error) for item, error in results if error is not None]
        dead = permanent = 0
        for item, error in failures:
            assert error is not None
            if error.permanent or now - item.enqueued_at >= self.dest.max_age:
                self._dead_letter(item, error)
                dead += 1
                permanent += error.permanent
            else:
                delay = backoff(item.attempts + 1, self.dest.retry_initial, self.dest.retry_max)
                self.queue.failed(item, error.reason, now + delay)
        # Items a sender did not reach (the context limit) are released unchanged: still due.
        self.audit.write(
            "forward",
            destination=self.dest.name,
            type=self.dest.type,
            sent=len(done),
            failed=len(failures) - dead,
            dead_letter=dead,
            permanent=permanent,
            errors=sorted({e.reason for _, e in failures if e}),
        )

    def _dead_letter(self, item: Item, error: Failure) -> None:
        self.dead_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in item.uid) or "instance"
        target = self.dead_dir / f"{name}.dcm"
        with contextlib.suppress(FileExistsError):
            try:
                os.link(self.spool / item.spool, target)
            except OSError:
                shutil.copyfile(self.spool / item.spool, target)
        record = {
            "uid": item.uid,
            "destination": self.dest.name,
            "reason": error.reason,
            "permanent": error.permanent,
            "attempts": item.attempts + 1,
            "enqueued_at": item.enqueued_at,
            "dead_at": time.time(),
        }
        (self.dead_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        fsync_dir(self.dead_dir)
        self.queue.dead(item, error.reason)


def clear_dead_letters(config: GatewayConfig, dest: str, uids: Sequence[str]) -> None:
    folder = config.dead_letter / dest
    for uid in uids:
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in uid) or "instance"
        for suffix in (".dcm", ".json"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
