"""One polars expression per policy action, computed from the source row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from pacsguard.tables import dates
from pacsguard.tables.errors import PolicyError
from pacsguard.tables.evidence import recurring_words
from pacsguard.tables.headers import classify_header
from pacsguard.tables.mapping import Pseudonyms, as_text
from pacsguard.tables.policy import ColumnRule, Policy
from pacsguard.tables.scrub import ID_MARKER, MARKERS, NAME_KINDS, KnownColumn, ScrubSpec
from pacsguard.tables.scrub import scrub_expr as _scrub_expr

DEFAULT_TOP_CODE = 90


@dataclass
class Context:
    """What every transform may read: the policy, the source schema, the keyed functions."""

    policy: Policy
    schema: pl.Schema
    pseudonyms: Pseudonyms
    today: dt.date
    # The source rows, for evidence gathered over a whole column (names in free text); without
    # them a lone lexicon name in free text is always removed.
    frame: pl.LazyFrame | None = None
    _recurring: dict[str, frozenset[str]] = field(default_factory=dict)

    def recurring(self, name: str, known: list[str]) -> frozenset[str]:
        """The capitalised words of free-text column ``name`` that recur under several
        patients, not counting the rows' own ``known`` values (read once per column)."""
        if self.frame is None:
            return frozenset()
        if name not in self._recurring:
            pid = self.policy.patient_id_column
            patient = pl.col(pid) if pid is not None and pid in self.schema else None
            own = [pl.col(k) for k in known]
            self._recurring[name] = recurring_words(self.frame, name, patient, own)
        return self._recurring[name]

    def dtype(self, name: str) -> pl.DataType:
        return self.schema[name]

    def offset(self) -> pl.Expr | None:
        """The patient's date offset in days (null where the patient ID is missing)."""
        name = self.policy.patient_id_column
        if name is None or name not in self.schema:
            return None
        return self.pseudonyms.offset_days(as_text(pl.col(name), self.dtype(name)))

    def as_datetime(self, name: str, formats: list[str] | None = None) -> pl.Expr:
        chosen = tuple(formats) if formats else dates.ALL_FORMATS
        return dates.to_datetime(pl.col(name), self.dtype(name), chosen)

    def reference(self, reference: str | None) -> pl.Expr:
        """A reference date: "today", a YYYY-MM-DD date, or a column of the row."""
        if reference is None or reference == "today":
            return pl.lit(dt.datetime.combine(self.today, dt.time()))
        if reference in self.schema:
            rule = self.policy.columns.get(reference)
            return self.as_datetime(reference, rule.param("formats") if rule else None)
        if reference in self.policy.columns:
            raise PolicyError(f"reference column {reference!r} is not in the table")
        return pl.lit(dt.datetime.fromisoformat(reference))


def _formats(rule: ColumnRule, ctx: Context) -> tuple[str, ...]:
    return tuple(rule.param("formats") or dates.ALL_FORMATS)


def shift_date(rule: ColumnRule, ctx: Context) -> pl.Expr:
    offset = ctx.offset()
    if offset is None:
        raise PolicyError(f"column {rule.name!r}: shift-date needs the patient ID column")
    delta = pl.duration(days=offset)
    source = pl.col(rule.name)
    dtype = ctx.dtype(rule.name)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return source + delta
    # Text keeps its written form: each value is shifted and written back in the format it fits.
    text = source.cast(pl.String)
    return pl.coalesce(
        [(dates.parse(text, fmt) + delta).dt.strftime(fmt) for fmt in _formats(rule, ctx)]
    )


def generalise_date(rule: ColumnRule, ctx: Context) -> pl.Expr:
    parsed = ctx.as_datetime(rule.name, rule.param("formats"))
    pattern = "%Y" if rule.param("to", "year") == "year" else "%Y-%m"
    return parsed.dt.strftime(pattern)


def _age(birth: pl.Expr, reference: pl.Expr) -> pl.Expr:
    """Whole years from birth to reference."""

    def month_day(day: pl.Expr) -> pl.Expr:  # month() is Int8: widen before multiplying
        return day.dt.month().cast(pl.Int32) * 100 + day.dt.day().cast(pl.Int32)

    before_birthday = month_day(reference) < month_day(birth)
    years = reference.dt.year().cast(pl.Int32) - birth.dt.year().cast(pl.Int32)
    return years - before_birthday.cast(pl.Int32)


def _band(age: pl.Expr, band: int | None, top: int) -> pl.Expr:
    """ "40-49" bands (or the age itself), "90+" at and above the top code, null if negative."""
    if band:
        low = (age // band) * band
        text = low.cast(pl.String) + "-" + (low + band - 1).cast(pl.String)
    else:
        text = age.cast(pl.String)
    return pl.when(age < 0).then(None).when(age >= top).then(pl.lit(f"{top}+")).otherwise(text)


def generalise_birth_date(rule: ColumnRule, ctx: Context) -> pl.Expr:
    birth = ctx.as_datetime(rule.name, rule.param("formats"))
    reference = ctx.reference(rule.param("reference"))
    top = int(rule.param("top_code", DEFAULT_TOP_CODE))
    if rule.param("to", "year") == "age-band":
        return _band(_age(birth, reference), int(rule.param("band", 10)), top)
    # Years are top-coded by year (not exact age), so one birth year never shows both ways.
    oldest = reference.dt.year().cast(pl.Int32) - top
    year = birth.dt.year().cast(pl.Int32)
    top_coded = pl.lit("<=") + oldest.cast(pl.String)
    return pl.when(year <= oldest).then(top_coded).otherwise(year.cast(pl.String))


def generalise_age(rule: ColumnRule, ctx: Context) -> pl.Expr:
    dtype = ctx.dtype(rule.name)
    top = int(rule.param("top_code", DEFAULT_TOP_CODE))
    band = rule.param("band")
    source = pl.col(rule.name)
    if dtype.is_numeric() and not band:
        # A numeric column stays numeric: the top code stands for "this age or more".
        return source.clip(upper_bound=top)
    if dtype.is_numeric():
        age = source.cast(pl.Int32, strict=False)
    else:
        age = source.cast(pl.String).str.extract(r"(\d{1,3})").cast(pl.Int32, strict=False)
    return _band(age, band, top)


def generalise_postcode(rule: ColumnRule, ctx: Context) -> pl.Expr:
    """French postcode -> département (2A/2B in Corsica, 3 digits overseas); else null."""
    text = as_text(pl.col(rule.name), ctx.dtype(rule.name)).str.replace_all(r"\s", "")
    code = pl.when(text.str.contains(r"^\d{4}$")).then(text.str.zfill(5)).otherwise(text)
    valid = code.str.contains(r"^\d{5}$")
    corsica = pl.when(code.str.slice(0, 3).is_in(["200", "201"])).then(pl.lit("2A"))
    return (
        pl.when(~valid)
        .then(None)
        .when(code.str.starts_with("20"))
        .then(corsica.otherwise(pl.lit("2B")))
        .when(code.str.starts_with("97") | code.str.starts_with("98"))
        .then(code.str.slice(0, 3))
        .otherwise(code.str.slice(0, 2))
    )


def _kind(name: str, ctx: Context) -> str | None:
    rule = ctx.policy.columns.get(name)
    return (rule.kind if rule else None) or classify_header(name)


def scrub_text(rule: ColumnRule, ctx: Context) -> pl.Expr:
    names = [n for n in rule.param("known_values_from", []) if n in ctx.schema]
    births = [n for n in names if _kind(n, ctx) == "birth-date"]
    known = [
        KnownColumn(n, MARKERS.get(_kind(n, ctx) or "", ID_MARKER), _kind(n, ctx) in NAME_KINDS)
        for n in names
        if n not in births
    ]
    spec = ScrubSpec(
        tuple(known),
        rule.param("dates", "shift" if ctx.policy.patient_id_column else "redact"),
        rule.param("ner_model"),
        tuple(rule.param("ner_labels", ["PER", "PERSON"])),
        ctx.recurring(rule.name, names),
    )
    birth = None
    if births:
        birth_rule = ctx.policy.columns.get(births[0])
        formats = birth_rule.param("formats") if birth_rule else None
        birth = ctx.as_datetime(births[0], formats).dt.date()
    offset = ctx.offset() if spec.dates == "shift" else None
    sources = [pl.col(k.name).cast(pl.String) for k in known]
    return _scrub_expr(pl.col(rule.name), spec, sources, offset, birth)


def _pseudonymise_patient_id(rule: ColumnRule, ctx: Context) -> pl.Expr:
    return ctx.pseudonyms.patient_id(as_text(pl.col(rule.name), ctx.dtype(rule.name)))


def _pseudonymise_accession(rule: ColumnRule, ctx: Context) -> pl.Expr:
    return ctx.pseudonyms.accession(as_text(pl.col(rule.name), ctx.dtype(rule.name)))


def _pseudonymise(rule: ColumnRule, ctx: Context) -> pl.Expr:
    source = as_text(pl.col(rule.name), ctx.dtype(rule.name))
    return ctx.pseudonyms.identifier(str(rule.param("domain")), source)


def _keep(rule: ColumnRule, ctx: Context) -> pl.Expr:
    return pl.col(rule.name)


def _redact(rule: ColumnRule, ctx: Context) -> pl.Expr:
    return pl.lit(None, dtype=ctx.dtype(rule.name))


BUILDERS: dict[str, Callable[[ColumnRule, Context], pl.Expr]] = {
    "keep": _keep,
    "redact": _redact,
    "pseudonymise-patient-id": _pseudonymise_patient_id,
    "pseudonymise-accession": _pseudonymise_accession,
    "pseudonymise": _pseudonymise,
    "shift-date": shift_date,
    "generalise-date": generalise_date,
    "generalise-birth-date": generalise_birth_date,
    "generalise-age": generalise_age,
    "generalise-postcode": generalise_postcode,
    "scrub-text": scrub_text,
}


def column_expr(rule: ColumnRule, ctx: Context) -> pl.Expr | None:
    """The output column for ``rule`` (None: the column is dropped)."""
    if rule.action == "drop":
        return None
    return BUILDERS[rule.action](rule, ctx).alias(rule.name)
