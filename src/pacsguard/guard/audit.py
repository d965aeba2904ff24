"""The audit log: one JSON object a line, appended and flushed as each event ends.

It names peers (AE titles, addresses, client names), operations, query levels, the keywords
of the keys used (never their values), counts and outcomes. Callers pass only those: the
type of ``keys`` is a list of DICOM keywords, and no field takes a dataset value.

(General, not guard-specific: a candidate for the shared ``pacsguard.net`` layer.)
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = json.dumps(record, separators=(",", ":"), sort_keys=False)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def read_audit(path: Path) -> list[dict[str, Any]]:
    """Every record of an audit log; a torn last line (a crash mid-write) is skipped."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
