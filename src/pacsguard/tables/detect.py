"""Classify a column by sampling its values.

Person names are those of the shared lexicons (``core.names``). With 125,000 family names,
towns ("Lyon", "Nantes"), ordinary words and staff read as names too. Values with a title
("Dr Moreau") make a ``staff-name`` column. A column of family names or full names whose
values recur under several patients is nobody's name in particular (a patient's own name
column holds one patient's name a value), so it is a place (``city``). Given names recur
too, and the lexicons hold nearly all common ones as family names as well: under a header
that does not say so, a column of them is drafted ``city`` (dropped either way).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import polars as pl

from pacsguard.core.names import find_person_names, name_parts
from pacsguard.core.nir import is_valid_nir
from pacsguard.tables import dates, patterns
from pacsguard.tables.evidence import RECUR

STRONG = 0.8
NAME_SHARE = 0.3  # values holding a lexicon name, for a column to be one of names
RECURRING_SHARE = 0.5  # rows whose value recurs under RECUR patients, for a column of places
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_IDENTIFIER = re.compile(r"[A-Za-z]{0,5}[-_ ]?\d{5,}[A-Za-z]?\Z")
_LONG_NUMBER = re.compile(r"\d{7,}\Z")
_PROPER_NOUN = re.compile(r"[A-ZÀ-Ý][a-zà-ÿ'-]+(?:[ -][A-ZÀ-Ý][a-zà-ÿ'-]+)?\Z|[A-ZÀ-Ý' -]{3,}\Z")
_IN_TEXT = re.compile("|".join([patterns.EMAIL, patterns.PHONE_FR, r"\b" + patterns.NIR + r"\b"]))


@dataclass(frozen=True)
class ValueEvidence:
    """What sampled values say: a kind (or None), the share that supports it, and more."""

    kind: str | None
    share: float = 0.0
    formats: tuple[str, ...] = ()
    identifier_hits: int = 0
    sampled: int = 0
    numeric: bool = False
    recurring: float | None = None  # share of rows whose value recurs under RECUR patients


def _share(values: list[str], test: Callable[[str], object]) -> float:
    return sum(1 for v in values if test(v)) / len(values)


def _name_shares(values: list[str]) -> tuple[float, float]:
    given = family = 0
    for value, count in Counter(values).items():
        has_given, has_family = name_parts(value)
        given += count * has_given
        family += count * has_family
    return given / len(values), family / len(values)


def _titled(value: str) -> bool:
    return any(hit.detail == "title" for hit in find_person_names(value))


def recurring_share(sample: pl.Series, patients: pl.Series) -> float:
    """The share of rows (with a value) whose value is found under ``RECUR`` patients or more."""
    frame = pl.DataFrame({"v": sample.cast(pl.String), "p": patients.cast(pl.String)})
    frame = frame.filter(pl.col("v").str.strip_chars().str.len_chars() > 0)
    if frame.is_empty():
        return 0.0
    shared = frame.select((pl.col("p").n_unique().over("v") >= RECUR).mean()).item()
    return float(shared)


def _names_or_places(
    base: ValueEvidence, kind: str, share: float, sample: pl.Series, patients: pl.Series | None
) -> ValueEvidence:
    """Name-like values: a name column, unless they recur under several patients (values the
    lexicons read as given names rather than family names stay first names)."""
    if patients is None or kind == "first-name":
        return replace(base, kind=kind, share=share)
    recurring = recurring_share(sample, patients)
    if recurring >= RECURRING_SHARE:
        kind = "city"
    return replace(base, kind=kind, share=share, recurring=recurring)


def _date_evidence(sample: pl.Series, header_kind: str | None) -> ValueEvidence | None:
    allowed: tuple[str, ...] = dates.ALL_FORMATS
    if header_kind not in ("date", "birth-date"):
        allowed = tuple(f for f in allowed if f not in dates.AMBIGUOUS_FORMATS)
    formats = dates.matching_formats(sample, allowed)
    if not formats:
        return None
    frame = pl.DataFrame({"v": sample})
    parsed = frame.select(dates.parse_any(pl.col("v"), tuple(formats))).to_series()
    share = int(parsed.is_not_null().sum()) / max(len(parsed), 1)
    return ValueEvidence("date", share, tuple(formats))


# What exports write in a cell that holds nothing: left out of the evidence, so that a
# column of IDs with some "inconnu" is still a column of IDs.
MISSING = frozenset(
    {"inconnu", "inconnue", "unknown", "n/a", "na", "nc", "nd", "nr", "non renseigné",
     "non renseigne", "néant", "neant", "null", "none", "nan", "-", "--", "?", "#n/a", "vide"}
)  # fmt: skip


def classify_values(
    sample: pl.Series, header_kind: str | None = None, patients: pl.Series | None = None
) -> ValueEvidence:
    """The kind that most sampled values support, if any clearly does. ``patients``: the
    patient IDs of the same rows, the evidence that tells a town from a surname."""
    if sample.dtype == pl.Date or isinstance(sample.dtype, pl.Datetime):
        return ValueEvidence("date", 1.0, sampled=sample.drop_nulls().len())
    numeric = sample.dtype.is_numeric()
    text = sample.cast(pl.String).drop_nulls().str.strip_chars()
    values = [v for v in text.to_list() if v and v.casefold() not in MISSING]
    if not values:
        return ValueEvidence(None, numeric=numeric)
    n = len(values)
    hits = sum(1 for v in values if _IN_TEXT.search(v))
    base = ValueEvidence(None, sampled=n, identifier_hits=hits, numeric=numeric)
    for kind, test in (
        ("email", patterns.EMAIL_RE.match),
        ("nir", is_valid_nir),
        ("phone", patterns.PHONE_RE.match),
    ):
        share = _share(values, test)
        if share >= STRONG:
            return replace(base, kind=kind, share=share)
    found = _date_evidence(pl.Series(values), header_kind)
    if found is not None and found.share >= STRONG:
        return replace(base, kind="date", share=found.share, formats=found.formats)
    share = _share(values, patterns.POSTCODE_FR_RE.match)
    if share >= 0.9 and (not numeric or header_kind == "postcode"):
        return replace(base, kind="postcode", share=share)
    share = _share(values, patterns.STREET_RE.match)
    if share >= 0.6:
        return replace(base, kind="address", share=share)
    lengths = [len(v) for v in values]
    if sum(lengths) / n >= 25 and _share(values, lambda v: " " in v) >= 0.5:
        return replace(base, kind="free-text", share=1.0)
    given, family = _name_shares(values)
    if max(given, family) >= NAME_SHARE:
        if _share(values, _titled) >= 0.5:
            return replace(base, kind="staff-name", share=max(given, family))
        single = _share(values, lambda v: len(_WORD.findall(v)) == 1)
        kind = "person-name" if single < 0.5 else ("first-name" if given > family else "last-name")
        return _names_or_places(base, kind, max(given, family), sample, patients)
    distinct = len(set(values)) / n
    shape = _LONG_NUMBER if numeric else _IDENTIFIER
    if distinct >= 0.5 and _share(values, shape.match) >= 0.9:
        return replace(base, kind="identifier", share=distinct)
    if n >= 10 and distinct >= 0.5 and _share(values, _PROPER_NOUN.match) >= 0.9:
        return _names_or_places(base, "person-name", distinct, sample, patients)
    return base
