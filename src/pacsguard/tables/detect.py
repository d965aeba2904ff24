"""Classify a column by sampling its values."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import polars as pl

from pacsguard.core.nir import is_valid_nir
from pacsguard.tables import dates, patterns
from pacsguard.tables.lexicon import FAMILY_NAMES, GIVEN_NAMES, fold

STRONG = 0.8
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


def _share(values: list[str], test: Callable[[str], object]) -> float:
    return sum(1 for v in values if test(v)) / len(values)


def _name_shares(values: list[str]) -> tuple[float, float]:
    given = family = 0
    for value in values:
        words = [fold(w) for w in _WORD.findall(value)]
        given += any(w in GIVEN_NAMES for w in words)
        family += any(w in FAMILY_NAMES for w in words)
    return given / len(values), family / len(values)


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


def classify_values(sample: pl.Series, header_kind: str | None = None) -> ValueEvidence:
    """The kind that most sampled values support, if any clearly does."""
    if sample.dtype == pl.Date or isinstance(sample.dtype, pl.Datetime):
        return ValueEvidence("date", 1.0, sampled=sample.drop_nulls().len())
    numeric = sample.dtype.is_numeric()
    text = sample.cast(pl.String).drop_nulls().str.strip_chars()
    values = [v for v in text.to_list() if v]
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
    if max(given, family) >= 0.3:
        single = _share(values, lambda v: len(_WORD.findall(v)) == 1)
        kind = "person-name" if single < 0.5 else ("first-name" if given > family else "last-name")
        return replace(base, kind=kind, share=max(given, family))
    distinct = len(set(values)) / n
    shape = _LONG_NUMBER if numeric else _IDENTIFIER
    if distinct >= 0.5 and _share(values, shape.match) >= 0.9:
        return replace(base, kind="identifier", share=distinct)
    if n >= 10 and distinct >= 0.5 and _share(values, _PROPER_NOUN.match) >= 0.9:
        return replace(base, kind="person-name", share=distinct)
    return base
