"""Inputs streamed from the walk: looked up in the journal a chunk at a time.

A run over 10^8 inputs never holds them: the walk is read ``CHUNK`` inputs at a time, each
chunk is recorded as walked (in SQLite's temporary store, a file) and split by the journal
into what is done and what is left (``bookkeeping.resume``), and only what is left goes on
to the workers. What the client holds per input is then bounded by the chunk and the work
in flight, not by the size of the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from pacsguard.core.io import InputItem
from pacsguard.core.manifest import Journal
from pacsguard.core.remote import RemoteFolder
from pacsguard.deid.bookkeeping import resume

CHUNK = 4096  # inputs looked up at a time: one journal transaction, a few MB at most
# The first chunk is smaller: the workers start on it while the walk goes on (a cold walk
# of 2,000 files took ~0.3 s before any work was handed out; bench/README.md).
FIRST_CHUNK = 512


class Planner:
    """What is left to do, chunk by chunk, with the counts a report needs.

    ``lock`` serialises the journal with the thread that commits results while the walk
    goes on (one SQLite connection, one transaction at a time). The first chunk holds
    ``first`` inputs at most, the others ``chunk``."""

    def __init__(
        self,
        walk: Iterable[InputItem],
        journal: Journal,
        output: Path | RemoteFolder,
        *,
        check: bool,
        lock: threading.Lock | None = None,
        chunk: int = CHUNK,
        first: int = FIRST_CHUNK,
    ) -> None:
        self._walk, self._journal, self._output = iter(walk), journal, output
        self._check, self._lock, self._chunk = check, lock or threading.Lock(), chunk
        self._first = min(first, chunk)
        self.walked = 0
        self.resumed = 0
        self.redone = 0
        self.todo = 0
        self.finished = False

    def __iter__(self) -> Iterator[list[InputItem]]:
        size = self._first
        while True:
            items = list(islice(self._walk, size))
            if not items:
                self.finished = True
                return
            with self._lock:
                self._journal.mark_walked(item.fingerprint for item in items)
                plan = resume(items, self._journal, self._output, check=self._check)
            self.walked += len(items)
            self.resumed += plan.resumed
            self.redone += plan.redone
            self.todo += len(plan.todo)
            if len(items) < size:
                self.finished = True
            yield plan.todo
            if self.finished:
                return
            size = self._chunk
