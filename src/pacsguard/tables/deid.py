"""``deid``: apply a policy to tables, streaming, and account for every column."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from pacsguard import __version__
from pacsguard.core.errors import OutputError, PacsguardError
from pacsguard.core.keys import ProjectKey
from pacsguard.core.manifest import write_json
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.tables.errors import PolicyError, TableReadError, UnclassifiedColumnError
from pacsguard.tables.mapping import Pseudonyms
from pacsguard.tables.policy import ColumnRule, Policy, Unknown, load_policy
from pacsguard.tables.risk import RiskReport, risk_report, suppress_small_classes
from pacsguard.tables.scrub import load_ner
from pacsguard.tables.tableio import OpenedTable, open_table, table_format, write_sheets
from pacsguard.tables.transforms import Context, column_expr

MANIFEST_NAME = "pacsguard-tables.json"
_MEASURED = frozenset(
    {
        "pseudonymise-patient-id", "pseudonymise-accession", "pseudonymise", "shift-date",
        "generalise-date", "generalise-birth-date", "generalise-age", "generalise-postcode",
    }
)  # fmt: skip
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ColumnReport:
    name: str
    action: str
    kind: str | None
    values_removed: int = 0  # values that could not be transformed, so were emptied

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "kind": self.kind,
            "values_removed": self.values_removed,
        }


@dataclass(frozen=True)
class SheetReport:
    sheet: str | None
    rows_in: int
    rows_out: int
    rows_suppressed: int
    columns: list[ColumnReport]
    unclassified_dropped: list[str]
    absent_from_table: list[str]
    risk: RiskReport | None = None
    risk_after_suppression: RiskReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_suppressed": self.rows_suppressed,
            "columns": [c.to_dict() for c in self.columns],
            "unclassified_dropped": self.unclassified_dropped,
            "absent_from_table": self.absent_from_table,
            "risk": self.risk.to_dict() if self.risk else None,
            "risk_after_suppression": (
                self.risk_after_suppression.to_dict() if self.risk_after_suppression else None
            ),
        }


@dataclass(frozen=True)
class TableReport:
    input: Path
    output: Path
    format: str
    input_encoding: str | None
    separator: str | None
    sheets: list[SheetReport] = field(default_factory=list)

    def to_dict(self, root: Path) -> dict[str, Any]:
        """What travels with the output: no input path, no value."""
        return {
            "path": self.output.relative_to(root).as_posix(),
            "format": self.format,
            "input_encoding": self.input_encoding,
            "output_encoding": "utf-8" if self.format == "csv" else None,
            "separator": self.separator,
            "sha256": _sha256(self.output),
            "size": self.output.stat().st_size,
            "sheets": [s.to_dict() for s in self.sheets],
        }


@dataclass(frozen=True)
class DeidTablesReport:
    tables: list[TableReport]
    manifest: Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _malformed(table: OpenedTable) -> TableReadError:
    # polars' own message quotes the offending cells: never shown.
    hint = f"; check the separator ({table.separator!r} was used)" if table.separator else ""
    return TableReadError(
        f"{table.path}: malformed table (rows that do not fit the header, an unclosed quote, "
        f"or values of the wrong type){hint}"
    )


def _shifts(rule: ColumnRule) -> bool:
    """Whether the rule needs the patient's date offset."""
    if rule.action == "scrub-text":
        return bool(rule.param("dates", "shift") == "shift")
    return rule.action == "shift-date"


def _check_columns(
    columns: list[str], policy: Policy, unknown: Unknown, where: str
) -> tuple[list[str], list[str]]:
    """Unclassified columns (refused, or returned to be dropped) and absent policy columns."""
    unclassified = [c for c in columns if c not in policy.columns]
    if unclassified and unknown == "refuse":
        names = ", ".join(repr(c) for c in unclassified)
        raise UnclassifiedColumnError(
            f"{where}: {len(unclassified)} column(s) not classified by the policy: {names}; "
            "add them to the policy (pacsguard tables inspect drafts one) or pass --unknown drop"
        )
    absent = [c for c in policy.columns if c not in columns]
    pid = policy.patient_id_column
    if pid is not None and pid in absent:
        needs = [r.name for r in policy.columns.values() if r.name in columns and _shifts(r)]
        if needs:
            raise PolicyError(
                f"{where}: patient_id_column {pid!r} is not in the table, and "
                f"{', '.join(map(repr, needs))} need(s) it for date offsets"
            )
    if policy.risk is not None:
        for name in [*policy.risk.quasi_identifiers, policy.risk.sensitive]:
            if name is not None and name not in columns:
                raise PolicyError(f"{where}: risk column {name!r} is not in the table")
    return unclassified, absent


@dataclass(frozen=True)
class _Run:
    """What every table of one run shares."""

    policy: Policy
    pseudonyms: Pseudonyms
    today: dt.date
    unknown: Unknown
    say: Progress
    encoding: str = "auto"
    separator: str | None = None


def _values_removed(rules: list[ColumnRule], ctx: Context) -> list[pl.Expr]:
    """Per transformed column: values present in the source and empty in the output."""
    counts = []
    for rule in rules:
        output = column_expr(rule, ctx)
        if output is not None and rule.action in _MEASURED:
            removed = pl.col(rule.name).is_not_null() & output.is_null()
            counts.append(removed.sum().alias(rule.name))
    return counts


def _sheet(frame: pl.LazyFrame, run: _Run, where: str) -> tuple[pl.LazyFrame, SheetReport]:
    schema = frame.collect_schema()
    columns = list(schema.names())
    unclassified, absent = _check_columns(columns, run.policy, run.unknown, where)
    ctx = Context(run.policy, schema, run.pseudonyms, run.today, frame)
    rules = [run.policy.columns[c] for c in columns if c not in unclassified]
    if any(rule.action == "scrub-text" for rule in rules):
        run.say(f"weighing the names in the free text of {where}")
    out = frame.select([e for e in (column_expr(rule, ctx) for rule in rules) if e is not None])
    run.say(f"counting rows of {where}")
    stats = frame.select(pl.len().alias("__rows"), *_values_removed(rules, ctx))
    counted = stats.collect(engine="streaming")
    rows_in = int(counted["__rows"][0])
    reports = [
        ColumnReport(
            r.name, r.action, r.kind, int(counted[r.name][0]) if r.name in counted.columns else 0
        )
        for r in rules
    ]
    risk = after = None
    suppressed = 0
    spec = run.policy.risk
    if spec is not None and spec.quasi_identifiers:  # with none, every row is one class: no k
        run.say(f"computing re-identification risk of {where}")
        risk = risk_report(out, spec.quasi_identifiers, spec.sensitive, spec.threshold)
        if spec.suppress and spec.k is not None and risk.k < spec.k:
            out, suppressed = suppress_small_classes(out, spec.quasi_identifiers, spec.k)
            after = risk_report(out, spec.quasi_identifiers, spec.sensitive, spec.threshold)
    report = SheetReport(
        None, rows_in, rows_in - suppressed, suppressed, reports, unclassified, absent, risk, after
    )
    return out, report


def _preflight(policy: Policy) -> None:
    for rule in policy.columns.values():
        if rule.action == "scrub-text" and rule.param("ner_model"):
            load_ner(str(rule.param("ner_model")))


def deidentify_table(
    inputs: Sequence[Path],
    output: Path,
    *,
    key: ProjectKey,
    policy: Policy | Path,
    unknown: Unknown | None = None,
    encoding: str = "auto",
    separator: str | None = None,
    today: dt.date | None = None,
    progress: Progress | None = None,
    on_table: Callable[[int, int], None] | None = None,
) -> DeidTablesReport:
    """De-identify each input table into ``output/<input name>`` with the same format, and
    write ``output/pacsguard-tables.json``. Pseudonyms and date offsets are those of
    ``pacsguard deid`` under the same key, keyed on the policy's patient_id_column.
    ``progress`` gets each step's label; ``on_table`` gets (tables done, tables) after each."""
    loaded = load_policy(policy) if isinstance(policy, Path) else policy
    unknown = unknown or loaded.unknown
    say = progress or (lambda _: None)
    names = [p.name for p in inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PacsguardError(f"several inputs are named {duplicates[0]!r}; outputs would collide")
    for path in inputs:
        table_format(path)
        if (output / path.name).resolve() == path.resolve():
            raise PacsguardError(f"{path}: the output would overwrite the input")
    _preflight(loaded)
    run = _Run(
        loaded,
        Pseudonyms(Pseudonymizer(key)),
        today or dt.date.today(),
        unknown,
        say,
        encoding,
        separator,
    )
    workdir = output.with_name(output.name + ".pacsguard")  # local state, never in OUTPUT
    created = [d for d in (output, workdir) if not d.exists()]
    try:
        return _deidentify(inputs, output, workdir, run, loaded, on_table)
    finally:
        for folder in created:  # a failed run leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a finished output stays


def _deidentify(
    inputs: Sequence[Path],
    output: Path,
    workdir: Path,
    run: _Run,
    loaded: Policy,
    on_table: Callable[[int, int], None] | None,
) -> DeidTablesReport:
    say, encoding, separator = run.say, run.encoding, run.separator
    reports: list[TableReport] = []
    for path in inputs:
        say(f"reading {path.name}")
        with open_table(path, encoding=encoding, separator=separator, workdir=workdir) as table:
            try:
                report = _one_table(table, output / path.name, run)
            except pl.exceptions.PolarsError:
                raise _malformed(table) from None
        reports.append(report)
        if on_table is not None:
            on_table(len(reports), len(inputs))
    manifest = output / MANIFEST_NAME
    payload = {
        "tool": "pacsguard",
        "version": __version__,
        "policy_sha256": loaded.sha256,
        "files": [r.to_dict(output) for r in reports],
    }
    try:
        write_json(manifest, payload)
    except OSError as exc:
        raise OutputError(f"writing {MANIFEST_NAME} failed ({_os_reason(exc)})") from None
    return DeidTablesReport(reports, manifest)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0][:200] or type(exc).__name__


def _one_table(table: OpenedTable, target: Path, run: _Run) -> TableReport:
    outputs: list[tuple[str | None, pl.LazyFrame]] = []
    sheets: list[SheetReport] = []
    for index, sheet in enumerate(table.sheets):
        # A worksheet's name is free text a person typed ("DUBOIS Hélène 1234567890"): the
        # output, the manifest and messages name a sheet by its place only.
        label = f"Sheet{index + 1}" if sheet.name is not None else None
        where = table.path.name + (f" ({label})" if label else "")
        frame, report = _sheet(sheet.frame, run, where)
        outputs.append((label, frame))
        sheets.append(replace(report, sheet=label))
    run.say(f"writing {target.name}")
    try:
        write_sheets(outputs, target, table.format, table.separator or ",")
    except OSError as exc:  # a full or read-only destination: no traceback, no partial file
        raise OutputError(f"writing {target.name} failed ({_os_reason(exc)})") from None
    return TableReport(table.path, target, table.format, table.encoding, table.separator, sheets)
