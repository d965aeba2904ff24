"""Group commit: instances spooled at the same time share one sync and one queue commit.

A reception de-identifies into the spool without syncing (``FileDeidentifier.run(...,
durable=False)``) and hands its output and row to ``GroupCommit.commit``, which blocks
until *that* instance is durable and its row committed, or raises. One thread takes every
instance waiting when it wakes: a group of one is synced by its own file and folder
fsyncs, a larger group by one ``syncfs`` of the spool's filesystem (every file and folder
of the group in one flush), and all their rows go in one SQLite transaction (one WAL
sync). The files' sync and the rows' commit run at the same time (a lone sender waits for
the longer of the two, not for both in a row); nobody is answered before both are done.
A row may therefore become durable before its file: each row carries its file's size and
SHA-256, and the start-up sweep drops a row whose file does not match (``Receiver.sweep``:
such an instance was never acknowledged); a sync that fails after its rows were committed
removes them at once. While a group is being synced the next one gathers, so the more
senders, the fewer syncs per instance.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pacsguard.core.io import sync_filesystems
from pacsguard.gateway.queue import NewInstance, Queue


@dataclass
class _Pending:
    output: Path
    new: NewInstance
    routed: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    instance_id: int | None = None
    error: BaseException | None = None


@dataclass
class CommitFigures:
    """What the committer did, for the benchmark and the metrics."""

    groups: int = 0
    instances: int = 0
    syncs: int = 0  # fsync / syncfs calls made for the spool (the queue's WAL sync apart)
    largest: int = 0


class GroupCommit:
    def __init__(self, spool: Path, queue: Queue) -> None:
        self.spool, self.queue = spool, queue
        self.figures = CommitFigures()
        self._pending: list[_Pending] = []
        self._wake = threading.Condition()
        self._closed = False
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="gateway-sync")
        self._thread = threading.Thread(target=self._loop, name="gateway-commit", daemon=True)
        self._thread.start()

    def commit(self, output: Path, new: NewInstance, routed: list[str]) -> int:
        """Sync ``output``, commit its row; returns its id once both are durable."""
        pending = _Pending(output, new, routed)
        with self._wake:
            if self._closed:
                raise OSError("the gateway is stopping")
            self._pending.append(pending)
            self._wake.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.instance_id is not None
        return pending.instance_id

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(30)
        self._syncer.shutdown(wait=False)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                group, self._pending = self._pending, []
                if not group and self._closed:
                    return
            self._run(group)

    def _run(self, group: list[_Pending]) -> None:
        synced = self._syncer.submit(self._sync, group)
        ids: list[int] = []
        try:
            ids = self.queue.add_many([(p.new, p.routed) for p in group])
            synced.result()
        except BaseException as exc:  # every waiter hears it; none is told Success
            with contextlib.suppress(BaseException):
                synced.result()  # not answered while its sync may still be running
            if ids:  # committed, but their files may not be durable: never acknowledged
                with contextlib.suppress(Exception):  # else the start-up sweep drops them
                    self.queue.forget(ids)
            for pending in group:
                pending.error = exc
                pending.done.set()
            return
        figures = self.figures
        figures.groups += 1
        figures.instances += len(group)
        figures.largest = max(figures.largest, len(group))
        for pending, instance_id in zip(group, ids, strict=True):
            pending.instance_id = instance_id
            pending.done.set()

    def _sync(self, group: list[_Pending]) -> None:
        if len(group) == 1:
            output = group[0].output
            fd = os.open(output, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir_strict(output.parent)
            self.figures.syncs += 2
        else:
            sync_filesystems(self.spool)
            self.figures.syncs += 1


def _fsync_dir_strict(path: Path) -> None:
    """A folder sync whose failure is an error, except where the filesystem does not sync
    folders at all (EINVAL): a spool that cannot be made durable must not say Success."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)
