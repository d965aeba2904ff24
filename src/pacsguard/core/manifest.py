"""Every input accounted for: a journal that makes runs resumable and cannot lie.

The journal (an SQLite database in WAL mode, committed per batch) lives in the run's state
folder, outside the output tree. It names inputs by their path: it is the operator's, and
never travels. Each output's record carries its size and SHA-256, so a re-run can tell an
output that is still there from one that was deleted or changed, and redo it; the output
name of every record is indexed, so two inputs that claim one output name are caught. The
settings that made the output are kept beside the records (``settings``). Memory stays
flat at any scale: nothing is held per input but what a lookup fetches.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from pacsguard.core.io import atomic_write, atomic_write_text

Status = Literal["output", "quarantine", "duplicate"]

DEID_MANIFEST_NAME = "pacsguard-deid.json"


@dataclass(frozen=True)
class Outcome:
    """What became of one input. ``duplicate``: same bytes as the input that owns
    ``output``, recorded once there."""

    input: str
    fingerprint: str
    status: Status
    output: str | None = None
    reason: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    fingerprint TEXT PRIMARY KEY, input TEXT NOT NULL, status TEXT NOT NULL, output TEXT,
    reason TEXT, details TEXT NOT NULL DEFAULT '{}', size INTEGER, sha256 TEXT);
CREATE INDEX IF NOT EXISTS outcomes_by_output ON outcomes (output);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "input, fingerprint, status, output, reason, details, size, sha256"
_NAMES_A_QUERY = 500  # SQLite's older builds allow 999 parameters a statement


def _outcome(row: tuple[object, ...]) -> Outcome:
    label, fingerprint, status, output, reason, details, size, sha = row
    return Outcome(
        str(label),
        str(fingerprint),
        status,  # type: ignore[arg-type]
        None if output is None else str(output),
        None if reason is None else str(reason),
        json.loads(str(details)),
        None if size is None else int(str(size)),
        None if sha is None else str(sha),
    )


class Journal:
    """Outcomes by input fingerprint; ``done`` tells what a re-run may skip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed record survives a crash
        self._db.executescript(_SCHEMA)

    def done(self, fingerprint: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM outcomes WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return row is not None

    def get(self, fingerprint: str) -> Outcome | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM outcomes WHERE fingerprint = ?",  # noqa: S608 - constant
            (fingerprint,),
        ).fetchone()
        return None if row is None else _outcome(row)

    def get_many(self, fingerprints: list[str]) -> dict[str, Outcome]:
        """The outcomes recorded for these inputs, in one query (a chunk of the walk)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM outcomes WHERE fingerprint IN "  # noqa: S608 - constant
            "(SELECT value FROM json_each(?))",
            (json.dumps(fingerprints),),
        )
        found = (_outcome(row) for row in rows)
        return {outcome.fingerprint: outcome for outcome in found}

    def owner(self, output: str) -> Outcome | None:
        """The record that owns the output name ``output`` (status ``output``)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM outcomes WHERE output = ? AND status = 'output'",  # noqa: S608
            (output,),
        ).fetchone()
        return None if row is None else _outcome(row)

    def owners(self, outputs: Iterable[str]) -> dict[str, Outcome]:
        """``owner`` of each of ``outputs`` that has one, in one query a few hundred names
        (the committer asks for every output of a commit at once)."""
        names = sorted(set(outputs))
        found: dict[str, Outcome] = {}
        for start in range(0, len(names), _NAMES_A_QUERY):
            part = names[start : start + _NAMES_A_QUERY]
            cursor = self._db.execute(
                f"SELECT {_COLUMNS} FROM outcomes WHERE output IN "  # noqa: S608
                f"({', '.join('?' * len(part))}) AND status = 'output' ORDER BY rowid",
                part,
            )
            for row in cursor:
                found.setdefault(str(row[3]), _outcome(row))  # the row ``owner`` would give
        return found

    def __iter__(self) -> Iterator[Outcome]:
        cursor = self._db.execute(f"SELECT {_COLUMNS} FROM outcomes ORDER BY rowid")  # noqa: S608
        for row in cursor:
            yield _outcome(row)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outcomes").fetchone()[0])

    def record(self, outcome: Outcome) -> None:
        self.record_many([outcome])

    def record_many(self, outcomes: list[Outcome]) -> None:
        """Record outcomes in one transaction (their outputs must already be durable)."""
        if not outcomes:
            return
        rows = [
            (o.input, o.fingerprint, o.status, o.output, o.reason,
             json.dumps(o.details, sort_keys=True), o.size, o.sha256)
            for o in outcomes
        ]  # fmt: skip
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                f"INSERT OR REPLACE INTO outcomes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                rows,
            )

    def forget(self, fingerprints: Iterable[str]) -> None:
        """Drop records, so that their inputs are processed again."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "DELETE FROM outcomes WHERE fingerprint = ?", [(f,) for f in fingerprints]
            )

    def clear(self) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM outcomes")
            self._db.execute("DELETE FROM settings")

    def settings(self) -> dict[str, object] | None:
        row = self._db.execute("SELECT value FROM settings WHERE name = 'run'").fetchone()
        return None if row is None else dict(json.loads(str(row[0])))

    def set_settings(self, settings: dict[str, object]) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES ('run', ?)",
                (json.dumps(settings, sort_keys=True),),
            )

    # What this run walked, in walk order: a table in SQLite's temporary store (a file,
    # not memory), so that 10^8 inputs cost the client no memory per input.
    def begin_walk(self) -> None:
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS walked (fingerprint TEXT)")
        self._db.execute("DELETE FROM temp.walked")

    def mark_walked(self, fingerprints: Iterable[str]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO temp.walked (fingerprint) VALUES (?)", [(f,) for f in fingerprints]
            )

    def walked(self) -> Iterator[Outcome]:
        """The outcomes of the inputs this run walked, in walk order (first walk wins)."""
        columns = ", ".join(f"o.{c.strip()}" for c in _COLUMNS.split(","))
        cursor = self._db.execute(
            f"SELECT {columns} FROM temp.walked w JOIN outcomes o USING (fingerprint) "  # noqa: S608
            "GROUP BY w.fingerprint ORDER BY min(w.rowid)"
        )
        for row in cursor:
            yield _outcome(row)

    def walked_statuses(self) -> Counter[str]:
        rows = self._db.execute(
            "SELECT o.status, count(DISTINCT o.fingerprint) FROM temp.walked w "
            "JOIN outcomes o USING (fingerprint) GROUP BY o.status"
        )
        return Counter({str(status): int(n) for status, n in rows})

    def walked_reasons(self) -> Counter[str]:
        rows = self._db.execute(
            "SELECT coalesce(o.reason, ''), count(DISTINCT o.fingerprint) FROM temp.walked w "
            "JOIN outcomes o USING (fingerprint) WHERE o.status = 'quarantine' GROUP BY 1"
        )
        return Counter({str(reason): int(n) for reason, n in rows})

    def walked_detail(self, name: str, value: str) -> int:
        """How many walked inputs' outcomes have ``details[name] == value``."""
        row = self._db.execute(
            "SELECT count(DISTINCT o.fingerprint) FROM temp.walked w JOIN outcomes o "
            "USING (fingerprint) WHERE json_extract(o.details, '$.' || ?) = ?",
            (name, value),
        ).fetchone()
        return int(row[0])

    def with_detail(self, name: str) -> int:
        """How many outcomes have a ``details[name]`` at all."""
        row = self._db.execute(
            "SELECT count(*) FROM outcomes WHERE json_extract(details, '$.' || ?) IS NOT NULL",
            (name,),
        ).fetchone()
        return int(row[0])

    def walked_count(self) -> int:
        row = self._db.execute("SELECT count(DISTINCT fingerprint) FROM temp.walked").fetchone()
        return int(row[0])

    def statuses(self) -> Counter[str]:
        rows = self._db.execute("SELECT status, count(*) FROM outcomes GROUP BY status")
        return Counter({str(status): int(n) for status, n in rows})

    def files(self) -> Iterator[tuple[str, int | None, str | None]]:
        """Each distinct (output, size, sha256) of the outputs, sorted (by SQLite, on disk)."""
        cursor = self._db.execute(
            "SELECT DISTINCT output, size, sha256 FROM outcomes "
            "WHERE status = 'output' AND output IS NOT NULL AND output != '' "
            "ORDER BY output, size, sha256"
        )
        for output, size, sha in cursor:
            yield str(output), None if size is None else int(size), sha

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes)
    return {"output": counts.get("output", 0), "quarantine": counts.get("quarantine", 0)}


def write_json(path: Path, payload: object, mode: int = 0o644) -> None:
    atomic_write_text(path, render_json(payload) + "\n", mode)


def write_json_stream(
    path: Path, payload: Mapping[str, object], mode: int = 0o644, *, durable: bool = True
) -> None:
    """``write_json`` for a top-level object whose lists may be iterators: the same text,
    written as it is produced, so a manifest of 10^8 entries never sits in memory."""

    def write(handle: BinaryIO) -> None:
        out = io.TextIOWrapper(handle, encoding="utf-8", write_through=False)
        if not payload:
            out.write("{}\n")
        else:
            out.write("{\n")
            for number, (name, value) in enumerate(sorted(payload.items())):
                out.write(f"  {json.dumps(str(name), ensure_ascii=False)}: ")
                if isinstance(value, (list, Iterator)):
                    _stream_list(out, iter(value))
                else:
                    out.write(render_json(value, 1))
                out.write(",\n" if number < len(payload) - 1 else "\n")
            out.write("}\n")
        out.flush()
        out.detach()

    atomic_write(path, write, mode, durable=durable)


def _stream_list(out: io.TextIOWrapper, entries: Iterator[object]) -> None:
    first = True
    for entry in entries:
        out.write("[\n    " if first else ",\n    ")
        out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True))
        first = False
    out.write("[]" if first else "\n  ]")


def render_json(value: object, depth: int = 0) -> str:
    """Indented JSON, sorted keys, with each entry of a list on one compact line: as
    readable as ``indent=2`` for a long list of files, and written by json's C encoder
    (``indent`` forces its pure-Python one, which a manifest of 10^6 files would feel)."""
    pad, end = "  " * (depth + 1), "  " * depth
    if isinstance(value, dict) and value:
        fields = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {render_json(v, depth + 1)}"
            for k, v in sorted(value.items())
        ]
        return "{\n" + ",\n".join(fields) + "\n" + end + "}"
    if isinstance(value, list) and value:
        entries = [pad + json.dumps(v, ensure_ascii=False, sort_keys=True) for v in value]
        return "[\n" + ",\n".join(entries) + "\n" + end + "]"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
