"""``inspect``: classify every column of a table by its header and sampled values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pacsguard.tables.detect import ValueEvidence, classify_values
from pacsguard.tables.errors import TableReadError
from pacsguard.tables.headers import classify_header
from pacsguard.tables.kinds import DRAFT_ACTIONS, IDENTIFYING, QUASI_IDENTIFYING
from pacsguard.tables.tableio import open_table

SAMPLE_ROWS = 5000
_VALUE_STRONG = frozenset({"email", "nir", "phone"})
_CHECKABLE = frozenset({"date", "birth-date"})


@dataclass(frozen=True)
class ColumnFinding:
    """What inspect concluded about one column, and the action it proposes."""

    name: str
    kind: str
    action: str
    params: dict[str, Any]
    header_kind: str | None
    evidence: ValueEvidence

    @property
    def note(self) -> str:
        """Why, for the reviewer: kinds and shares only, never a value."""
        ev = self.evidence
        values = f"{ev.kind} ({ev.share:.0%} of {ev.sampled} sampled)" if ev.kind else "-"
        hits = f"; identifier-like values in {ev.identifier_hits}" if ev.identifier_hits else ""
        recurring = (
            f"; {ev.recurring:.0%} of rows hold a value found under several patients"
            if ev.recurring
            else ""
        )
        return f"header: {self.header_kind or '-'}; values: {values}{hits}{recurring}"


@dataclass(frozen=True)
class Inspection:
    source: str
    format: str
    encoding: str | None
    separator: str | None
    sampled_rows: int
    columns: list[ColumnFinding] = field(default_factory=list)
    patient_id_column: str | None = None
    reference_date: dt.date = field(default_factory=dt.date.today)


def decide_kind(header_kind: str | None, evidence: ValueEvidence) -> str:
    """Combine header and values: the header wins, except where values clearly show an
    identifier (e-mail, NIR, phone) or clearly deny a date."""
    value_kind = evidence.kind
    fallback = value_kind or ("free-text" if evidence.identifier_hits else "other")
    if header_kind is None:
        return fallback
    if header_kind in _CHECKABLE and evidence.sampled and value_kind != "date":
        return fallback
    if value_kind in _VALUE_STRONG and header_kind not in IDENTIFYING:
        return value_kind
    if header_kind in ("other", "sex", "age") and evidence.identifier_hits:
        return "free-text"
    return header_kind


def _propose(
    name: str, kind: str, evidence: ValueEvidence, has_patient: bool, today: dt.date
) -> tuple[str, dict[str, Any]]:
    action, params = DRAFT_ACTIONS[kind]
    params = dict(params)
    formats = list(evidence.formats)
    if kind == "date" and not has_patient:
        action, params = "generalise-date", {"to": "year"}
    if kind in ("date", "birth-date") and formats:
        params["formats"] = formats
    if kind == "birth-date":
        params["reference"] = today.isoformat()
    return action, params


def inspect_table(
    path: Path,
    *,
    sample_rows: int = SAMPLE_ROWS,
    encoding: str = "auto",
    separator: str | None = None,
    today: dt.date | None = None,
) -> Inspection:
    """Classify every column of ``path`` (all sheets of a workbook) and propose actions."""
    today = today or dt.date.today()
    findings: dict[str, tuple[str | None, ValueEvidence, str]] = {}
    sampled = 0
    with open_table(path, encoding=encoding, separator=separator) as table:
        for sheet in table.sheets:
            try:
                sample = sheet.frame.head(sample_rows).collect()
            except pl.exceptions.PolarsError:
                raise TableReadError(
                    f"{path}: malformed table (rows that do not fit the header, or an unclosed "
                    f"quote); check the separator ({table.separator!r} was used)"
                ) from None
            sampled += sample.height
            headers = {name: classify_header(name) for name in sample.columns}
            ids = [n for n, kind in headers.items() if kind == "patient-id"]
            patients = sample[ids[0]] if ids else None  # tells a town from a surname
            for name in sample.columns:
                if name in findings:
                    continue
                header_kind = headers[name]
                evidence = classify_values(sample[name], header_kind, patients)
                findings[name] = (header_kind, evidence, decide_kind(header_kind, evidence))
    if not findings:
        raise TableReadError(f"{path}: the table has no column; nothing to classify")
    patient = next((n for n, (_, _, kind) in findings.items() if kind == "patient-id"), None)
    columns = []
    for name, (header_kind, evidence, kind) in findings.items():
        action, params = _propose(name, kind, evidence, patient is not None, today)
        columns.append(ColumnFinding(name, kind, action, params, header_kind, evidence))
    identifying = [c.name for c in columns if c.kind in IDENTIFYING]
    for column in columns:
        if column.action == "scrub-text":
            column.params["known_values_from"] = identifying
    return Inspection(
        path.name, table.format, table.encoding, table.separator, sampled, columns, patient, today
    )


def quasi_identifiers(inspection: Inspection) -> list[str]:
    return [
        c.name for c in inspection.columns if c.kind in QUASI_IDENTIFYING and c.action != "drop"
    ]
