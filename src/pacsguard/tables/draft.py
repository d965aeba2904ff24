"""Writing a draft policy (YAML with comments, or TOML) for a person to review."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pacsguard.core.io import atomic_write_text
from pacsguard.tables.inspect import Inspection, quasi_identifiers

_HEADER = """\
# pacsguard tables policy: DRAFT written by `pacsguard tables inspect` from {source}
# ({rows} rows sampled on {day}). Review every column before use: the guesses below come
# from headers and sampled values. Actions: keep, drop, redact, pseudonymise-patient-id,
# pseudonymise (domain), pseudonymise-accession, shift-date, generalise-date,
# generalise-birth-date, generalise-age, generalise-postcode, scrub-text.
# Columns absent from this file are refused (or dropped with --unknown drop).
"""


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _document(inspection: Inspection) -> dict[str, Any]:
    return {
        "version": 1,
        "patient_id_column": inspection.patient_id_column,
        "unknown": "refuse",
        "columns": {
            c.name: {"action": c.action, "kind": c.kind, **c.params} for c in inspection.columns
        },
        "risk": {
            "quasi_identifiers": quasi_identifiers(inspection),
            "sensitive": None,
            "k": None,
            "threshold": 0.2,
            "suppress": False,
        },
    }


def render_yaml(inspection: Inspection) -> str:
    doc = _document(inspection)
    notes = {c.name: c.note for c in inspection.columns}
    lines = [
        _HEADER.format(
            source=inspection.source, rows=inspection.sampled_rows, day=inspection.reference_date
        ).rstrip("\n")
    ]
    lines += [
        f"version: {doc['version']}",
        f"patient_id_column: {_scalar(doc['patient_id_column'])}",
    ]
    lines += [f"unknown: {doc['unknown']}", "columns:"]
    for name, spec in doc["columns"].items():
        lines.append(f"  {_scalar(name)}:  # {notes[name]}")
        lines += [f"    {key}: {_scalar(value)}" for key, value in spec.items()]
    lines.append("risk:  # quasi-identifiers as they are after de-identification")
    lines += [f"  {key}: {_scalar(value)}" for key, value in doc["risk"].items()]
    return "\n".join(lines) + "\n"


def render_toml(inspection: Inspection) -> str:
    doc = _document(inspection)
    notes = {c.name: c.note for c in inspection.columns}
    header = _HEADER.format(
        source=inspection.source, rows=inspection.sampled_rows, day=inspection.reference_date
    )
    lines = [header.rstrip("\n"), "version = 1"]
    if doc["patient_id_column"] is not None:
        lines.append(f"patient_id_column = {_scalar(doc['patient_id_column'])}")
    lines.append('unknown = "refuse"')
    risk = {k: v for k, v in doc["risk"].items() if v is not None}
    lines += ["", "[risk]"] + [
        f"{k} = {_scalar(v).lower() if isinstance(v, bool) else _scalar(v)}"
        for k, v in risk.items()
    ]
    for name, spec in doc["columns"].items():
        lines += ["", f"[columns.{_scalar(name)}]  # {notes[name]}"]
        lines += [f"{key} = {_scalar(value)}" for key, value in spec.items()]
    return "\n".join(lines) + "\n"


def write_draft(inspection: Inspection, path: Path) -> None:
    """Write the draft policy; TOML when ``path`` ends in .toml, YAML otherwise."""
    text = render_toml(inspection) if path.suffix.lower() == ".toml" else render_yaml(inspection)
    atomic_write_text(path, text, mode=0o600)
