"""fsync written files in a background thread, so the disk works while extraction goes on."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path


class BackgroundSync:
    """``add(path)`` queues a file or folder for fsync; ``finish()`` waits and re-raises."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Path | None] = queue.Queue(maxsize=1024)
        self._error: OSError | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="pacsguard-fsync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (path := self._queue.get()) is not None:
            if self._error is not None or self._cancelled:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._error = exc

    def add(self, path: Path) -> None:
        self._queue.put(path)

    def finish(self) -> None:
        """Wait until every queued path is on disk; raise the first fsync error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Stop without syncing what is still queued (the files are about to be removed)."""
        self._cancelled = True
        self._queue.put(None)
        self._thread.join()
