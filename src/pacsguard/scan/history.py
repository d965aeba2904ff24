"""Scan history in an embedded SQLite database, and what changed between two scans."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacsguard import __version__
from pacsguard.scan.errors import HistoryError
from pacsguard.scan.model import SEVERITY_RANK, ScanResult

DATA_HOME = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
DEFAULT_DB = DATA_HOME / "pacsguard" / "scan.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    scope TEXT NOT NULL,
    targets TEXT NOT NULL,
    ports TEXT NOT NULL,
    hosts INTEGER NOT NULL,
    tool_version TEXT NOT NULL,
    swept_hosts TEXT
);
CREATE TABLE IF NOT EXISTS findings (
    scan_id INTEGER NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    service TEXT NOT NULL,
    product TEXT,
    severity TEXT NOT NULL,
    access TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (scan_id, key)
);
CREATE INDEX IF NOT EXISTS findings_host ON findings(host, port);
"""


@dataclass(frozen=True)
class ScanRow:
    id: int
    started: str
    finished: str
    targets: list[str]
    hosts: int
    findings: int


@dataclass
class Change:
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        side = self.after or self.before or {}
        return {
            "key": self.key,
            "host": side.get("host"),
            "port": side.get("port"),
            "service": side.get("service"),
            "product": side.get("product"),
            "severity_before": self.before.get("severity") if self.before else None,
            "severity_after": self.after.get("severity") if self.after else None,
            "exposed_before": self.before.get("exposed") if self.before else None,
            "exposed_after": self.after.get("exposed") if self.after else None,
        }


@dataclass
class Diff:
    base: int | None
    head: int
    new: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    worse: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0
    # in the base scan, on a host:port the head scan did not sweep: state unknown, not fixed
    not_rescanned: list[Change] = field(default_factory=list)
    # in the head scan, on a host:port the base scan did not sweep: not new, first looked at
    first_scanned: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_scan": self.base,
            "head_scan": self.head,
            "new": [c.to_dict() for c in self.new],
            "fixed": [c.to_dict() for c in self.fixed],
            "worse": [c.to_dict() for c in self.worse],
            "changed": [c.to_dict() for c in self.changed],
            "unchanged": self.unchanged,
            "not_rescanned": [c.to_dict() for c in self.not_rescanned],
            "first_scanned": [c.to_dict() for c in self.first_scanned],
        }


def scope_of(targets: Sequence[str], ports: Sequence[int]) -> str:
    text = json.dumps([sorted(targets), sorted(ports)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(scans)")}
            if "swept_hosts" not in columns:  # a history written before coverage was recorded
                self.db.execute("ALTER TABLE scans ADD COLUMN swept_hosts TEXT")
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"scan history {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, result: ScanResult, ports: Sequence[int]) -> int:
        try:
            with self.db:
                cursor = self.db.execute(
                    "INSERT INTO scans (started, finished, scope, targets, ports, hosts,"
                    " tool_version, swept_hosts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        result.started,
                        result.finished,
                        scope_of(result.targets, ports),
                        json.dumps(result.targets),
                        json.dumps(list(ports)),
                        result.hosts,
                        __version__,
                        json.dumps(compact_hosts(result.swept_hosts))
                        if result.swept_hosts
                        else None,
                    ),
                )
                scan_id = int(cursor.lastrowid or 0)
                self.db.executemany(
                    "INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            scan_id,
                            f.key,
                            f.host,
                            f.port,
                            f.service,
                            f.product,
                            f.severity,
                            f.access,
                            json.dumps(f.to_dict(), sort_keys=True),
                        )
                        for f in result.findings
                    ],
                )
        except sqlite3.Error as exc:
            raise HistoryError(f"scan history {self.path}: {exc}") from None
        return scan_id

    def scans(self) -> list[ScanRow]:
        rows = self.db.execute(
            "SELECT s.id, s.started, s.finished, s.targets, s.hosts,"
            " (SELECT COUNT(*) FROM findings f WHERE f.scan_id = s.id) FROM scans s ORDER BY s.id"
        ).fetchall()
        return [ScanRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def findings(self, scan_id: int) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT key, data FROM findings WHERE scan_id = ?", (scan_id,))
        return {key: json.loads(data) for key, data in rows}

    def _previous(self, head: int) -> int | None:
        row = self.db.execute(
            "SELECT id FROM scans WHERE id < ? AND scope = (SELECT scope FROM scans WHERE id = ?)"
            " ORDER BY id DESC LIMIT 1",
            (head, head),
        ).fetchone()
        if row is None:
            row = self.db.execute(
                "SELECT id FROM scans WHERE id < ? ORDER BY id DESC LIMIT 1", (head,)
            ).fetchone()
        return int(row[0]) if row else None

    def coverage(self, scan_id: int) -> Coverage:
        """The hosts and ports scan ``scan_id`` swept (hosts None: not recorded, any host)."""
        row = self.db.execute(
            "SELECT ports, swept_hosts FROM scans WHERE id = ?", (scan_id,)
        ).fetchone()
        ports = frozenset(int(p) for p in json.loads(row[0]))
        hosts = frozenset(json.loads(row[1])) if row[1] else None
        return Coverage(_networks(hosts) if hosts is not None else None, ports)

    def diff(self, base: int | None = None, head: int | None = None) -> Diff:
        """What is new, fixed, worse or changed in ``head`` (default: latest) since ``base``,
        on the host:ports both scans swept; the rest is listed as not rescanned (in ``base``
        only) or first scanned (in ``head`` only), never as fixed or new.

        ``base`` defaults to the previous scan of the same targets and ports, else the
        previous scan.
        """
        known = {row.id for row in self.scans()}
        if not known:
            raise HistoryError(f"scan history {self.path} holds no scan yet")
        head = head if head is not None else max(known)
        if head not in known or (base is not None and base not in known):
            raise HistoryError(
                f"scan history {self.path} has no scan {head if head not in known else base}"
            )
        base = base if base is not None else self._previous(head)
        if base is None:
            return compare({}, self.findings(head), None, head)
        return compare(
            self.findings(base),
            self.findings(head),
            base,
            head,
            base_covers=self.coverage(base),
            head_covers=self.coverage(head),
        )


def compact_hosts(hosts: Sequence[str]) -> list[str]:
    """The swept addresses as the fewest CIDR networks (a /16 is one entry), names as is."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    names: list[str] = []
    for host in hosts:
        try:
            net = ipaddress.ip_network(host)
        except ValueError:
            names.append(host)
            continue
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    nets = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return [str(n) for n in nets] + sorted(set(names))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(entries: frozenset[str]) -> tuple[tuple[Network, ...], frozenset[str]]:
    nets: list[Network] = []
    names: set[str] = set()
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry))
        except ValueError:
            names.add(entry)
    return tuple(nets), frozenset(names)


@dataclass(frozen=True)
class Coverage:
    """What one scan swept: a finding elsewhere says nothing about this scan."""

    hosts: tuple[tuple[Network, ...], frozenset[str]] | None  # None: not recorded, any host
    ports: frozenset[int]

    def covers(self, entry: dict[str, Any]) -> bool:
        host, port = str(entry.get("host")), entry.get("port")
        if port not in self.ports:
            return False
        if self.hosts is None:
            return True
        nets, names = self.hosts
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in names
        return any(address in net for net in nets if net.version == address.version)


def _rank(entry: dict[str, Any]) -> int:
    return SEVERITY_RANK.get(str(entry.get("severity")), len(SEVERITY_RANK))


def compare(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    base: int | None,
    head: int,
    *,
    base_covers: Coverage | None = None,
    head_covers: Coverage | None = None,
) -> Diff:
    diff = Diff(base, head)
    for key in sorted(after.keys() - before.keys()):
        if base_covers is not None and not base_covers.covers(after[key]):
            diff.first_scanned.append(Change(key, None, after[key]))
        else:
            diff.new.append(Change(key, None, after[key]))
    for key in sorted(before.keys() - after.keys()):
        if head_covers is not None and not head_covers.covers(before[key]):
            diff.not_rescanned.append(Change(key, before[key], None))
        else:
            diff.fixed.append(Change(key, before[key], None))
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        change = Change(key, old, new)
        if _rank(new) > _rank(old):
            diff.fixed.append(change)
        elif _rank(new) < _rank(old):
            diff.worse.append(change)
        elif (old.get("exposed"), old.get("access")) != (new.get("exposed"), new.get("access")):
            diff.changed.append(change)
        else:
            diff.unchanged += 1
    return diff
