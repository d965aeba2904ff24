"""The research role's local mapping: pseudonym -> real value, for the identifiers a research
client may match on (Patient ID, study/series/instance UIDs). SQLite, mode 0600, in the
guard's state folder; filled from what the guard itself de-identified, so a pseudonym the
guard never handed out maps to nothing (and matches nothing)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

MAPPING_FILE = "research-map.sqlite"


class Mapping:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pseudonym ("
            " kind TEXT NOT NULL, pseudonym TEXT NOT NULL, real TEXT NOT NULL,"
            " PRIMARY KEY (kind, pseudonym)) WITHOUT ROWID"
        )
        for suffix in ("-wal", "-shm"):  # SQLite creates these with the umask's mode
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(0o600)

    def remember(self, pairs: list[tuple[str, str, str]]) -> None:
        """``(kind, pseudonym, real)`` triples; an existing pseudonym keeps its first value."""
        if not pairs:
            return
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO pseudonym (kind, pseudonym, real) VALUES (?, ?, ?)", pairs
            )

    def real(self, kind: str, pseudonym: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT real FROM pseudonym WHERE kind = ? AND pseudonym = ?", (kind, pseudonym)
            ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
