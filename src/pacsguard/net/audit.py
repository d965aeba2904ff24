"""An audit log of who did what on the network, as JSON lines.

A line names peers (AE titles, addresses, certificate subjects), operations, SOP classes,
counts and outcomes; never a value read from a dataset. Instances, where a line must name
one, are named by their de-identified UIDs only (the caller's duty: this module writes
what it is given, so it is given no dataset).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Append-only JSON lines; each line is flushed (``durable`` adds an fsync)."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._lock = threading.Lock()
        self._durable = durable

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": utc_now(), "event": event, **fields}, sort_keys=True)
        data = (line + "\n").encode()
        with self._lock:
            os.write(self._fd, data)  # one write with O_APPEND: lines never interleave
            if self._durable:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class AssociationTally:
    """Counts of one association: operations per SOP class and outcome."""

    peer: dict[str, object]
    service: str
    started: str = field(default_factory=utc_now)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, operation: str, sop_class: str, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.counts[(operation, sop_class, outcome)] += n

    def summary(self) -> list[dict[str, object]]:
        with self._lock:
            items = sorted(self.counts.items())
        return [
            {"operation": op, "sop_class": sop, "outcome": outcome, "count": n}
            for (op, sop, outcome), n in items
        ]

    def close(self, audit: AuditLog, how: str) -> None:
        audit.write(
            "association-closed",
            service=self.service,
            peer=self.peer,
            started=self.started,
            closed=how,
            operations=self.summary(),
        )
