"""The embedded queue: SQLite in WAL mode, every commit synced (``synchronous=FULL``).

``instances``: one row per de-identified instance held in the spool, named by its
de-identified SOP Instance UID; ``deliveries``: one row per (instance, destination), the
per-destination queue; ``quarantined``: inputs the engine refused (a reason, never a value).
A row is committed before the sender is told Success; a delivery is marked ``sent`` only
after the destination confirmed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL,
    sop_class TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    modality TEXT NOT NULL DEFAULT '',
    relative TEXT NOT NULL,
    spool TEXT NOT NULL,
    size INTEGER NOT NULL,
    calling_ae TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    done_at REAL,
    sha256 TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    destination TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    next_at REAL NOT NULL,
    sent_at REAL,
    last_error TEXT,
    PRIMARY KEY (instance_id, destination)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (destination, state, next_at);
CREATE INDEX IF NOT EXISTS instances_spool ON instances (spool, done_at);
CREATE TABLE IF NOT EXISTS quarantined (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    calling_ae TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS folder_files (
    destination TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    landed_at REAL NOT NULL,
    PRIMARY KEY (destination, path)
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    calling_ae TEXT NOT NULL,
    source TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class NewInstance:
    uid: str
    sop_class: str
    transfer_syntax: str
    modality: str
    relative: str
    spool: str
    size: int
    calling_ae: str
    source: str
    sha256: str | None = None  # of the spool file: checked at start-up (``unintact``)


@dataclass(frozen=True)
class Item:
    """A delivery due: what a destination needs to send one instance."""

    instance_id: int
    destination: str
    uid: str
    sop_class: str
    transfer_syntax: str
    relative: str
    spool: str
    attempts: int
    enqueued_at: float
    received_at: float


class Queue:
    """Thread-safe (one connection, one lock); several processes may open the same file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(instances)")}
        if "sha256" not in columns:  # a queue from before the column: its rows are unchecked
            self._db.execute("ALTER TABLE instances ADD COLUMN sha256 TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # --- receive side -------------------------------------------------------------------
    def add(self, new: NewInstance, destinations: Iterable[str], now: float | None = None) -> int:
        """Commit an instance and its deliveries (durable when this returns)."""
        return self.add_many([(new, list(destinations))], now)[0]

    def add_many(
        self, group: Sequence[tuple[NewInstance, Sequence[str]]], now: float | None = None
    ) -> list[int]:
        """Commit instances and their deliveries in one transaction (one WAL sync)."""
        now = time.time() if now is None else now
        ids: list[int] = []
        with self._tx() as db:
            for new, destinations in group:
                cursor = db.execute(
                    "INSERT INTO instances (uid, sop_class, transfer_syntax, modality, relative,"
                    " spool, size, calling_ae, source, received_at, sha256)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (new.uid, new.sop_class, new.transfer_syntax, new.modality, new.relative,
                     new.spool, new.size, new.calling_ae, new.source, now, new.sha256),
                )  # fmt: skip
                instance_id = int(cursor.lastrowid or 0)
                routed = list(dict.fromkeys(destinations))
                db.executemany(
                    "INSERT INTO deliveries (instance_id, destination, state, enqueued_at,"
                    " next_at) VALUES (?, ?, 'queued', ?, ?)",
                    [(instance_id, name, now, now) for name in routed],
                )
                if not routed:  # routed nowhere: nothing to hold
                    db.execute("UPDATE instances SET done_at = ? WHERE id = ?", (now, instance_id))
                ids.append(instance_id)
        return ids

    def forget(self, instance_ids: Sequence[int]) -> None:
        """Remove instances and their deliveries: rows committed for files that were never
        made durable (so never acknowledged)."""
        with self._tx() as db:
            for instance_id in instance_ids:
                db.execute("DELETE FROM deliveries WHERE instance_id = ?", (instance_id,))
                db.execute("DELETE FROM instances WHERE id = ?", (instance_id,))

    def live_files(self) -> list[tuple[int, str, int, str | None]]:
        """(id, spool file, size, SHA-256) of every unfinished instance."""
        rows = self._rows("SELECT id, spool, size, sha256 FROM instances WHERE done_at IS NULL")
        return [(int(i), str(spool), int(size), sha) for i, spool, size, sha in rows]

    def quarantine(self, calling_ae: str, source: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO quarantined (received_at, calling_ae, source, reason)"
                " VALUES (?,?,?,?)",
                (time.time(), calling_ae, source, reason),
            )

    def refuse(self, calling_ae: str, source: str, status: int, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO refused (received_at, calling_ae, source, status, reason)"
                " VALUES (?,?,?,?,?)",
                (time.time(), calling_ae, source, status, reason),
            )

    # --- forward side -------------------------------------------------------------------
    def due(
        self, destination: str, limit: int, exclude: Iterable[int] = (), now: float | None = None
    ) -> list[Item]:
        now = time.time() if now is None else now
        skip = set(exclude)
        rows = self._rows(
            "SELECT d.instance_id, d.destination, i.uid, i.sop_class, i.transfer_syntax,"
            " i.relative, i.spool, d.attempts, d.enqueued_at, i.received_at"
            " FROM deliveries d JOIN instances i ON i.id = d.instance_id"
            " WHERE d.destination = ? AND d.state = 'queued' AND d.next_at <= ?"
            " ORDER BY d.next_at, d.instance_id LIMIT ?",
            (destination, now, limit + len(skip)),
        )
        rows = [row for row in rows if row[0] not in skip][:limit]
        return [Item(*row) for row in rows]

    def next_due(self, destination: str) -> float | None:
        rows = self._rows(
            "SELECT MIN(next_at) FROM deliveries WHERE destination = ? AND state = 'queued'",
            (destination,),
        )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    def sent(self, items: Sequence[Item], now: float | None = None) -> list[Item]:
        """Mark deliveries confirmed; returns the items whose instance is now complete
        (every destination confirmed), so that their spool files can go."""
        now = time.time() if now is None else now
        return self.sent_at([(item, now) for item in items])

    def sent_at(self, confirmed: Sequence[tuple[Item, float]]) -> list[Item]:
        """As ``sent``, each delivery with the time its destination confirmed it; one
        transaction for them all."""
        complete: list[Item] = []
        with self._tx() as db:
            for item, when in confirmed:
                db.execute(
                    "UPDATE deliveries SET state = 'sent', sent_at = ?, last_error = NULL"
                    " WHERE instance_id = ? AND destination = ?",
                    (when, item.instance_id, item.destination),
                )
                if self._finish_if_complete(db, item.instance_id, when):
                    complete.append(item)
        return complete

    @staticmethod
    def _finish_if_complete(db: sqlite3.Connection, instance_id: int, now: float) -> bool:
        left = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE instance_id = ? AND state != 'sent'",
            (instance_id,),
        ).fetchone()[0]
        if left:
            return False
        db.execute("UPDATE instances SET done_at = ? WHERE id = ?", (now, instance_id))
        return True

    def failed(self, item: Item, error: str, next_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?"
                " WHERE instance_id = ? AND destination = ? AND state = 'queued'",
                (next_at, error, item.instance_id, item.destination),
            )

    def dead(self, item: Item, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = ?"
                " WHERE instance_id = ? AND destination = ?",
                (error, item.instance_id, item.destination),
            )

    def requeue_dead(self, destination: str, now: float | None = None) -> list[tuple[str, str]]:
        """Dead letters of ``destination`` back in its queue; returns their (uid, relative)."""
        now = time.time() if now is None else now
        with self._tx() as db:
            rows = db.execute(
                "SELECT i.uid, i.relative FROM deliveries d"
                " JOIN instances i ON i.id = d.instance_id"
                " WHERE d.destination = ? AND d.state = 'dead'",
                (destination,),
            ).fetchall()
            db.execute(
                "UPDATE deliveries SET state = 'queued', attempts = 0, enqueued_at = ?,"
                " next_at = ?, last_error = NULL WHERE destination = ? AND state = 'dead'",
                (now, now, destination),
            )
        return [(str(uid), str(rel)) for uid, rel in rows]

    def live_spool_files(self, among: set[str] | None = None) -> set[str]:
        """Spool files that an unfinished instance names (all, or those of ``among``)."""
        if among is None:
            rows = self._rows("SELECT spool FROM instances WHERE done_at IS NULL")
            return {str(row[0]) for row in rows}
        found = set()
        for name in among:
            sql = "SELECT 1 FROM instances WHERE spool = ? AND done_at IS NULL LIMIT 1"
            if self._rows(sql, (name,)):
                found.add(name)
        return found

    # --- folder destinations ------------------------------------------------------------
    def folder_landed(self, destination: str, files: Sequence[tuple[str, int, str]]) -> None:
        """Record files synced into a folder destination (a resent one replaces its row)."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO folder_files (destination, path, size, sha256, landed_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT (destination, path) DO UPDATE SET"
                " size = excluded.size, sha256 = excluded.sha256, landed_at = excluded.landed_at",
                [(destination, path, size, sha, now) for path, size, sha in files],
            )

    def folder_files(self, destination: str, page: int = 10000) -> Iterator[tuple[str, int, str]]:
        """(path, size, sha256) of a folder destination, by path, a page at a time (the
        lock is not held between pages)."""
        after = ""
        while True:
            rows = self._rows(
                "SELECT path, size, sha256 FROM folder_files WHERE destination = ? AND path > ?"
                " ORDER BY path LIMIT ?",
                (destination, after, page),
            )
            for path, size, sha in rows:
                yield str(path), int(size), str(sha)
            if len(rows) < page:
                return
            after = str(rows[-1][0])

    def folder_counts(self, destination: str) -> dict[str, int]:
        files = self._rows("SELECT COUNT(*) FROM folder_files WHERE destination = ?",
                           (destination,))[0][0]  # fmt: skip
        states = dict(
            self._rows(
                "SELECT state, COUNT(*) FROM deliveries WHERE destination = ? GROUP BY state",
                (destination,),
            )
        )
        return {"files": int(files), "queued": int(states.get("queued", 0)),
                "dead_letter": int(states.get("dead", 0))}  # fmt: skip

    def pending_destinations(self) -> set[str]:
        rows = self._rows("SELECT DISTINCT destination FROM deliveries WHERE state != 'sent'")
        return {str(row[0]) for row in rows}

    # --- status -------------------------------------------------------------------------
    def status(self, destinations: Sequence[str], now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        accepted = self._rows("SELECT COUNT(*) FROM instances")[0][0]
        quarantined = self._rows("SELECT COUNT(*) FROM quarantined")[0][0]
        refused = self._rows("SELECT COUNT(*) FROM refused")[0][0]
        spooled = self._rows("SELECT COUNT(*) FROM instances WHERE done_at IS NULL")[0][0]
        recent = self._rows("SELECT COUNT(*) FROM instances WHERE received_at >= ?", (now - 60,))[
            0
        ][0]
        out: dict[str, Any] = {
            "received": accepted + quarantined,
            "accepted": accepted,
            "quarantined": quarantined,
            "refused": refused,
            "spooled": spooled,
            "received_per_s_1m": round(recent / 60.0, 3),
            "destinations": {},
        }
        names = list(dict.fromkeys([*destinations, *self.pending_destinations()]))
        for name in names:
            counts = dict(
                self._rows(
                    "SELECT state, COUNT(*) FROM deliveries WHERE destination = ? GROUP BY state",
                    (name,),
                )
            )
            oldest, retrying, errors = self._rows(
                "SELECT MIN(enqueued_at), SUM(attempts > 0), SUM(attempts)"
                " FROM deliveries WHERE destination = ? AND state = 'queued'",
                (name,),
            )[0]
            last = self._rows(
                "SELECT last_error FROM deliveries WHERE destination = ? AND last_error IS NOT NULL"
                " ORDER BY next_at DESC LIMIT 1",
                (name,),
            )
            sent_1m = self._rows(
                "SELECT COUNT(*) FROM deliveries WHERE destination = ? AND state = 'sent'"
                " AND sent_at >= ?",
                (name, now - 60),
            )[0][0]
            out["destinations"][name] = {
                "queued": int(counts.get("queued", 0)),
                "sent": int(counts.get("sent", 0)),
                "dead_letter": int(counts.get("dead", 0)),
                "retrying": int(retrying or 0),
                "failed_attempts": int(errors or 0),
                "oldest_queued_age_s": round(now - oldest, 3) if oldest is not None else None,
                "sent_per_s_1m": round(sent_1m / 60.0, 3),
                "last_error": last[0][0] if last else None,
                "configured": name in destinations,
            }
        return out
