"""``pacsguard guard report``: the audit log summed per client."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pacsguard.guard.errors import GuardError

AUDIT_FILE = "audit.jsonl"
DICOM_AUDIT_FILE = "dicom-audit.xml.log"  # PS3.15 A.5 messages, one per line


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


@dataclass
class ClientSummary:
    client: str
    associations: int = 0
    associations_rejected: int = 0
    queries: int = 0
    responses: int = 0
    retrieves: int = 0
    instances_retrieved: int = 0
    instances_stored: int = 0
    refusals: int = 0
    failures: int = 0


def summarise(state: Path) -> list[ClientSummary]:
    path = state / AUDIT_FILE
    if not path.is_file():
        raise GuardError(f"no audit log at {path} (has the guard run with this state folder?)")
    table: dict[str, ClientSummary] = {}

    def row(name: str) -> ClientSummary:
        if name not in table:
            table[name] = ClientSummary(name)
        return table[name]

    for record in read_audit(path):
        kind = record.get("event")
        if kind == "association":
            name = str(record.get("client") or f"unknown ({record.get('calling_ae', '?')})")
            if record.get("outcome") == "accepted":
                row(name).associations += 1
            elif record.get("outcome") == "rejected":
                row(name).associations_rejected += 1
        elif kind == "operation":
            _operation(row(str(record.get("client"))), record)
    return sorted(table.values(), key=lambda s: s.client)


def _operation(summary: ClientSummary, record: dict[str, Any]) -> None:
    service = record.get("service")
    outcome = record.get("outcome")
    if outcome == "refused":
        summary.refusals += 1
    elif outcome in ("failure", "aborted"):
        summary.failures += 1
    if service == "find" and outcome != "refused":
        summary.queries += 1
        summary.responses += int(record.get("responses", 0))
    elif service in ("move", "get") and outcome != "refused":
        summary.retrieves += 1
        summary.instances_retrieved += int(record.get("instances", 0))
    elif service == "store" and outcome in ("success", "warning"):
        summary.instances_stored += int(record.get("instances", 0))


def as_json(rows: list[ClientSummary]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


COLUMNS = tuple(ClientSummary.__dataclass_fields__)
