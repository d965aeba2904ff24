"""The policy file: what to do with each column. YAML or TOML, validated strictly.

Schema (YAML shown; TOML has the same keys)::

    version: 1
    patient_id_column: IPP        # keys pseudonyms and date offsets, as for the images
    unknown: refuse               # or drop: columns the policy does not name
    columns:
      IPP: {action: pseudonymise-patient-id}
      NOM: drop                   # shorthand for {action: drop}
      DDN: {action: generalise-birth-date, to: age-band, band: 10, reference: DATE_EXAMEN}
      NOTES: {action: scrub-text, known_values_from: [NOM, PRENOM, IPP]}
    risk:
      quasi_identifiers: [DDN, SEXE, CP]
      sensitive: DIAGNOSTIC
      k: 5                        # with suppress: true, rows in smaller classes are removed
      threshold: 0.2              # prosecutor risk above which a record is "at risk"
      suppress: false
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pacsguard.tables.errors import PolicyError
from pacsguard.tables.kinds import KINDS

Unknown = Literal["refuse", "drop"]

# action -> {parameter: (type, allowed values or None)}
ACTIONS: dict[str, dict[str, tuple[type, tuple[str, ...] | None]]] = {
    "keep": {},
    "drop": {},
    "redact": {},
    "pseudonymise-patient-id": {},
    "pseudonymise-accession": {},
    "pseudonymise": {"domain": (str, None)},
    "shift-date": {"formats": (list, None)},
    "generalise-date": {"to": (str, ("year", "month")), "formats": (list, None)},
    "generalise-birth-date": {
        "to": (str, ("year", "age-band")),
        "band": (int, None),
        "top_code": (int, None),
        "reference": (str, None),
        "formats": (list, None),
    },
    "generalise-age": {"band": (int, None), "top_code": (int, None)},
    "generalise-postcode": {},
    "scrub-text": {
        "known_values_from": (list, None),
        "dates": (str, ("shift", "redact", "keep")),
        "ner_model": (str, None),
        "ner_labels": (list, None),
    },
}
REQUIRED = {"pseudonymise": ("domain",)}
_COLUMN_KEYS = {"action", "kind", "note"}
_TOP_KEYS = {"version", "patient_id_column", "unknown", "columns", "risk"}
_RISK_KEYS = {"quasi_identifiers", "sensitive", "k", "threshold", "suppress"}


@dataclass(frozen=True)
class ColumnRule:
    """One column's action and its parameters."""

    name: str
    action: str
    kind: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class RiskSpec:
    quasi_identifiers: tuple[str, ...] = ()
    sensitive: str | None = None
    k: int | None = None
    threshold: float = 0.2
    suppress: bool = False


@dataclass(frozen=True)
class Policy:
    columns: Mapping[str, ColumnRule]
    patient_id_column: str | None = None
    unknown: Unknown = "refuse"
    risk: RiskSpec | None = None
    sha256: str | None = None


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file (``.toml`` is TOML, anything else YAML)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"policy {path}: cannot read ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            data: object = tomllib.loads(raw.decode("utf-8"))
        else:
            data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path}: not UTF-8 text") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise PolicyError(f"policy {path}: not valid YAML/TOML{line}: {_first_line(exc)}") from None
    try:
        policy = parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"policy {path}: {exc}") from None
    return Policy(
        policy.columns,
        policy.patient_id_column,
        policy.unknown,
        policy.risk,
        hashlib.sha256(raw).hexdigest(),
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def _expect(value: object, kind: type, where: str) -> None:
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PolicyError(f"{where} must be an integer")
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise PolicyError(f"{where} must be a number")
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise PolicyError(f"{where} must be a list of text values")
    if kind in (str, bool) and not isinstance(value, kind):
        raise PolicyError(f"{where} must be {'text' if kind is str else 'true or false'}")


def _column(name: object, spec: object) -> ColumnRule:
    if not isinstance(name, str):
        raise PolicyError(f"column name {name!r} is not text; quote it in the policy")
    where = f"column {name!r}"
    if isinstance(spec, str):
        spec = {"action": spec}
    if not isinstance(spec, dict):
        raise PolicyError(f"{where}: expected an action or a mapping with 'action'")
    action = spec.get("action")
    if action is None:
        raise PolicyError(f"{where}: missing 'action'")
    if action not in ACTIONS:
        raise PolicyError(
            f"{where}: unknown action {action!r}; expected one of: {', '.join(ACTIONS)}"
        )
    allowed = ACTIONS[action]
    for key, value in spec.items():
        if key in _COLUMN_KEYS:
            if key != "action" and not isinstance(value, str):
                raise PolicyError(f"{where}: '{key}' must be text")
            continue
        if key not in allowed:
            options = ", ".join(sorted(allowed)) or "none"
            raise PolicyError(
                f"{where}: action {action} takes no parameter {key!r} (it takes: {options})"
            )
        kind, choices = allowed[key]
        _expect(value, kind, f"{where}: '{key}'")
        if key == "formats":
            from pacsguard.tables.dates import is_usable_format  # polars: only when asked

            bad = [f for f in value if not is_usable_format(f)]
            if bad:
                raise PolicyError(f"{where}: date format {bad[0]!r} is not a strftime format")
        if choices is not None and value not in choices:
            raise PolicyError(f"{where}: '{key}' must be one of: {', '.join(choices)}")
    for key in REQUIRED.get(action, ()):
        if key not in spec:
            raise PolicyError(f"{where}: action {action} needs '{key}'")
    kind_name = spec.get("kind")
    if kind_name is not None and kind_name not in KINDS:
        raise PolicyError(f"{where}: unknown kind {kind_name!r}")
    params = {k: v for k, v in spec.items() if k not in _COLUMN_KEYS}
    return ColumnRule(name, action, kind_name, params)


def _risk(data: object, columns: Mapping[str, ColumnRule]) -> RiskSpec | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PolicyError("'risk' must be a mapping")
    extra = set(data) - _RISK_KEYS
    if extra:
        raise PolicyError(f"risk: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    qis = data.get("quasi_identifiers", [])
    _expect(qis, list, "risk: 'quasi_identifiers'")
    if len(set(qis)) != len(qis):
        raise PolicyError("risk: 'quasi_identifiers' names a column twice")
    for name in [*qis, *([data["sensitive"]] if data.get("sensitive") is not None else [])]:
        rule = columns.get(name)
        if rule is None or rule.action == "drop":
            raise PolicyError(f"risk: column {name!r} is not a kept column of the policy")
    sensitive = data.get("sensitive")
    if sensitive is not None:
        _expect(sensitive, str, "risk: 'sensitive'")
    k = data.get("k")
    if k is not None:
        _expect(k, int, "risk: 'k'")
        if k < 1:
            raise PolicyError("risk: 'k' must be at least 1")
    threshold = data.get("threshold", 0.2)
    _expect(threshold, float, "risk: 'threshold'")
    if not 0 < threshold <= 1:
        raise PolicyError("risk: 'threshold' must be within (0, 1]")
    suppress = data.get("suppress", False)
    _expect(suppress, bool, "risk: 'suppress'")
    if suppress and k is None:
        raise PolicyError("risk: 'suppress' needs 'k'")
    return RiskSpec(tuple(qis), sensitive, k, float(threshold), suppress)


def _check_references(columns: Mapping[str, ColumnRule], patient_id: str | None) -> None:
    for rule in columns.values():
        where = f"column {rule.name!r}"
        shifts = rule.action == "shift-date" or (
            rule.action == "scrub-text" and rule.param("dates") == "shift"
        )
        if shifts and patient_id is None:
            raise PolicyError(
                f"{where}: {rule.action} shifts dates per patient; set patient_id_column"
            )
        for name in rule.param("known_values_from", []):
            if name not in columns:
                raise PolicyError(f"{where}: known_values_from names {name!r}, not in the policy")
        reference = rule.param("reference")
        if reference is not None and reference != "today" and reference not in columns:
            try:
                dt.date.fromisoformat(reference)
            except ValueError:
                raise PolicyError(
                    f"{where}: 'reference' must be 'today', a YYYY-MM-DD date or a column"
                ) from None


def parse_policy(data: object) -> Policy:
    """Validate an already-parsed policy document."""
    if not isinstance(data, dict):
        raise PolicyError("expected a mapping with 'columns'")
    extra = set(map(str, data)) - _TOP_KEYS
    if extra:
        raise PolicyError(f"unknown key(s) {', '.join(sorted(extra))}")
    version = data.get("version", 1)
    if version != 1:
        raise PolicyError(f"unsupported version {version!r} (this pacsguard reads version 1)")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise PolicyError("missing 'columns' (a mapping from column name to action)")
    columns = {rule.name: rule for rule in (_column(n, s) for n, s in raw_columns.items())}
    patient_id = data.get("patient_id_column")
    if patient_id is not None:
        _expect(patient_id, str, "'patient_id_column'")
        rule = columns.get(patient_id)
        if rule is None:
            raise PolicyError(f"patient_id_column {patient_id!r} is not in 'columns'")
        if rule.action not in ("pseudonymise-patient-id", "drop"):
            raise PolicyError(
                f"patient_id_column {patient_id!r} must be pseudonymised "
                "(pseudonymise-patient-id) or dropped, never kept as it is"
            )
    unknown = data.get("unknown", "refuse")
    if unknown not in ("refuse", "drop"):
        raise PolicyError("'unknown' must be refuse or drop")
    _check_references(columns, patient_id)
    return Policy(columns, patient_id, unknown, _risk(data.get("risk"), columns))
