"""Cleaning free text of identifying values.

Three layers, applied in this order:

1. the identifying values known from the same dataset (the patient's names in DICOM and
   natural forms and each name part, IDs, birth date in common formats, address parts,
   physicians, institution), matched case-insensitively on word boundaries;
2. identifier-shaped tokens: French NIR with a valid key, phone numbers, e-mail addresses,
   street addresses, dates in common forms;
3. person names by evidence, the shared detector ``core.names`` (through
   ``core.shapes.find_identifiers``): a title (Dr, Pr, Mme, M., Mr, Mrs, …), a label, a DICOM
   name form, or a given and a family name of the name lexicons side by side.

Each hit becomes a bracketed placeholder ([NAME], [ID], [DATE], …); medical words stay.
The final sweep uses layer 1 alone on every text value of the dataset.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from pacsguard.core.shapes import MONTHS_EN, MONTHS_FR, find_identifiers
from pacsguard.deid.profile import load_identifying_keywords

MIN_NAME_PART = 3
MIN_FREE_ID = 5
PLACEHOLDERS = {
    "nir": "NIR",
    "ins": "ID",
    "email": "EMAIL",
    "phone": "PHONE",
    "street-address": "ADDR",
    "postcode-town": "ADDR",
    "date-in-text": "DATE",
    "person-name": "NAME",
}


def _month_names(month: int) -> tuple[str, ...]:
    names = {MONTHS_FR[month - 1].lower(), MONTHS_EN[month - 1].lower()}
    return tuple(sorted(names | {n[:3] for n in names}))


def _values(ds: Dataset, keyword: str) -> list[str]:
    element = ds.get(keyword)
    if element is None:
        return []
    value = element.value if hasattr(element, "value") else element
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(v) for v in items if str(v).strip()]


def name_forms(raw: str) -> set[str]:
    """The natural forms of a DICOM person name: 'DOE^JOHN' -> 'John Doe', 'Doe John', …"""
    name = PersonName(raw)
    family, given = name.family_name.strip(), name.given_name.strip()
    forms = {raw.replace("^", " ").strip()}
    if family and given:
        forms |= {f"{given} {family}", f"{family} {given}", f"{family}, {given}"}
    parts = [p for p in re.split(r"[\^\s,=-]+", raw) if len(p) >= MIN_NAME_PART]
    forms |= set(parts)
    return {f for f in forms if f}


def date_forms(dicom_date: str) -> set[str]:
    """A DA value in the forms people write it."""
    text = dicom_date.strip()
    if len(text) != 8 or not text.isdigit():
        return {text} if text else set()
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return {text}
    d, m, y = day.day, day.month, day.year
    forms = {
        text,
        f"{y:04d}-{m:02d}-{d:02d}",
        f"{d:02d}/{m:02d}/{y:04d}",
        f"{d}/{m}/{y:04d}",
        f"{d:02d}-{m:02d}-{y:04d}",
        f"{d:02d}.{m:02d}.{y:04d}",
        f"{m:02d}/{d:02d}/{y:04d}",
        f"{d:02d}/{m:02d}/{y % 100:02d}",
        f"{y:04d}/{m:02d}/{d:02d}",
    }
    for month in _month_names(m):
        forms |= {f"{d} {month} {y}", f"{d:02d} {month} {y}", f"{month} {d}, {y}"}
    return forms


@dataclass(frozen=True)
class KnownValues:
    """Identifying values read from one source dataset, by kind."""

    names: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    dates: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()

    @classmethod
    def from_dataset(cls, ds: Dataset, *, institution: bool = True) -> KnownValues:
        """The dataset's identifying values; cached on their raw bytes (slices of a series
        share them), so only the first file of a patient pays for building them."""
        key = (institution, _raw_identity(ds))
        cached = _KNOWN_CACHE.get(key)
        if cached is None:
            if len(_KNOWN_CACHE) >= KNOWN_CACHE_SIZE:
                _KNOWN_CACHE.clear()
            cached = _KNOWN_CACHE[key] = cls._build(ds, institution)
        return cached

    @classmethod
    def _build(cls, ds: Dataset, institution: bool) -> KnownValues:
        words = load_identifying_keywords()
        names: set[str] = set()
        for keyword in words["person_names"]:
            for raw in _values(ds, keyword):
                names |= name_forms(raw)
        ids = {v.strip() for k in words["patient_ids"] for v in _values(ds, k)}
        for item in ds.get("OtherPatientIDsSequence", []) or []:
            ids |= {v.strip() for v in _values(item, "PatientID")}
        dates: set[str] = set()
        for keyword in words["birth_dates"]:
            for raw in _values(ds, keyword):
                dates |= date_forms(raw)
        places: set[str] = set()
        kinds = ["addresses", *(["institution"] if institution else [])]
        for kind in kinds:
            for keyword in words[kind]:
                for raw in _values(ds, keyword):
                    places.add(raw.replace("^", " ").strip())
                    places |= {p.strip() for p in re.split(r"[\^,;\n]+", raw) if len(p.strip()) > 3}
        return cls(
            names=frozenset(n for n in names if len(n) >= MIN_NAME_PART),
            ids=frozenset(i for i in ids if len(i) >= 2),
            dates=frozenset(dates),
            places=frozenset(p for p in places if len(p) > 3),
        )

    def merged(self, other: KnownValues) -> KnownValues:
        return KnownValues(
            self.names | other.names,
            self.ids | other.ids,
            self.dates | other.dates,
            self.places | other.places,
        )

    def __bool__(self) -> bool:
        return bool(self.names or self.ids or self.dates or self.places)


KNOWN_CACHE_SIZE = 4096
_KNOWN_CACHE: dict[tuple[bool, tuple[tuple[int, bytes], ...]], KnownValues] = {}


@cache
def identity_tags() -> tuple[int, ...]:
    words = [w for kind in load_identifying_keywords().values() for w in kind]
    tags = [tag_for_keyword(w) for w in [*words, "OtherPatientIDsSequence", "SpecificCharacterSet"]]
    return tuple(sorted({t for t in tags if t is not None}))


def _raw_identity(ds: Dataset) -> tuple[tuple[int, bytes], ...]:
    """The encoded values of every identifying attribute, without decoding them."""
    out = []
    for tag in identity_tags():
        element = ds.get_item(tag)
        if element is None:
            continue
        value = element.value
        raw = value if isinstance(value, bytes) else repr(value).encode()
        out.append((tag, f"{element.VR}".encode() + b"\x00" + raw))  # the VR decides too
    return tuple(out)


def fold(text: str) -> str:
    """Lower case without accents, compatibility forms unified, one character for one (a
    span of the folded text is the same span of the text). The one fold of identity
    matching: the tokens gathered from a file (``identity``), the sweep that looks for them
    and the post-write check all fold with it, so a token and the text that holds it
    cannot be folded apart."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, text))


@lru_cache(maxsize=1 << 14)
def _fold_char(char: str) -> str:
    """``char`` without its marks (NFKD), case-folded, when that is one character (é -> e,
    a full-width Ｙ -> y); otherwise lowered, or as it is: a Hangul syllable stays itself,
    not its leading jamo, and ß stays ß rather than becoming two letters."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if len(bare.casefold()) == 1 and (char.isspace() or not bare.isspace()):
        return bare.casefold()  # but never a letter to a space (ﱞ: a space, then marks)
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def _term_pattern(term: str, bounded: bool) -> str:
    term = visible(term)[0]
    escaped = r"[\s^,]+".join(re.escape(fold(p)) for p in re.split(r"[\s^]+", term) if p)
    if not bounded:
        return escaped
    return rf"(?<![0-9a-z]){escaped}(?![0-9a-z])"


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class _Term:
    pattern: str
    kind: str
    first: str  # the first of its folded words: no match without it, verbatim, in the text


def _known_pairs(known: KnownValues) -> list[tuple[str, str]]:
    """Each known value with its kind (NAME, ADDR, ID, DATE), longest first: the order of
    the alternation."""
    terms: list[tuple[str, str]] = []
    for term in known.names | known.places:
        terms.append((term, "NAME" if term in known.names else "ADDR"))
    for term in known.ids:
        terms.append((term, "ID"))
    for term in known.dates:
        terms.append((term, "DATE"))
    terms.sort(key=lambda t: -len(t[0]))
    return terms


@lru_cache(maxsize=256)
def _known_terms(known: KnownValues) -> tuple[_Term, ...]:
    """The known values as search terms, in the alternation's order."""
    out = []
    for term, kind in _known_pairs(known):
        bounded = not (term in known.ids and len(term) >= MIN_FREE_ID)
        words = [fold(p) for p in re.split(r"[\s^]+", visible(term)[0]) if p]
        out.append(_Term(_term_pattern(term, bounded), kind, words[0] if words else ""))
    return tuple(out)


@lru_cache(maxsize=4096)
def _known_regex(terms: tuple[_Term, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<k{i}>{term.pattern})" for i, term in enumerate(terms)))


def find_known(text: str, known: KnownValues) -> list[Hit]:
    """Every match of the known values in ``text`` (folded), leftmost first, the longest
    term first where several match at one place. The alternation is made of the terms
    whose first word is in the text: the others cannot match anywhere in it, so leaving
    them out changes no match, and a patient's hundreds of terms are not compiled into one
    pattern (milliseconds a patient in each worker) to search texts that hold none.

    Invisible characters (``visible``) are searched through, and a hit's span is the span
    of the text that holds it, invisible characters included."""
    terms = _known_terms(known)
    if not terms or not text:
        return []
    seen, where = visible(text)
    folded = fold(seen)
    present = tuple(term for term in terms if term.first in folded)
    if not present:
        return []
    hits = []
    for match in _known_regex(present).finditer(folded):
        group = match.lastgroup or "k0"
        start, end = match.start(), match.end()
        if where is not None:
            start, end = where[start], where[end - 1] + 1
        hits.append(Hit(start, end, present[int(group[1:])].kind))
    return hits


def visible(text: str) -> tuple[str, list[int] | None]:
    """``text`` without its format characters (Unicode category Cf: soft hyphen, zero-width
    space and joiners, word joiner, byte-order mark, direction marks), which split no word
    as a reader sees it, so must not split an identifier for a search; and, when there were
    any, the index in ``text`` of each character kept."""
    if text.isascii():
        return text, None
    kept = [i for i, char in enumerate(text) if not _is_format(char)]
    if len(kept) == len(text):
        return text, None
    return "".join(text[i] for i in kept), kept


@lru_cache(maxsize=1 << 12)
def _is_format(char: str) -> bool:
    return unicodedata.category(char) == "Cf"


def find_shaped(text: str) -> list[Hit]:
    """Identifier-shaped spans (the project's one detector set, ``core.shapes``)."""
    hits: list[Hit] = []
    for found in find_identifiers(text):
        kind = PLACEHOLDERS.get(found.kind, "ID")
        start = text.find(found.text)
        while start >= 0 and found.text:
            hits.append(Hit(start, start + len(found.text), kind))
            start = text.find(found.text, start + 1)
    return hits


def redact(text: str, hits: list[Hit]) -> str:
    """Replace the union of hit spans by placeholders, left to right."""
    if not hits:
        return text
    spans = sorted(hits, key=lambda h: (h.start, -h.end))
    out, cursor = [], 0
    current: Hit | None = None
    for hit in spans:
        if current and hit.start < current.end:
            if hit.end > current.end:
                current = Hit(current.start, hit.end, current.kind)
            continue
        if current:
            out.append(text[cursor : current.start] + f"[{current.kind}]")
            cursor = current.end
        current = hit
    if current:
        out.append(text[cursor : current.start] + f"[{current.kind}]")
        cursor = current.end
    out.append(text[cursor:])
    return "".join(out)


def clean_text(text: str, known: KnownValues) -> str:
    """Full cleaning of a descriptor: known values, identifier shapes, names by context."""
    return redact(text, find_known(text, known) + find_shaped(text))


def sweep_text(text: str, known: KnownValues) -> str:
    """The final sweep: the dataset's own identifying values only."""
    return redact(text, find_known(text, known))


_PLACEHOLDER = re.compile(r"\[(?:NAME|ID|DATE|ADDR|PHONE|EMAIL|NIR)\]")


def contains_known(text: str, known: KnownValues) -> bool:
    """Whether ``text`` still holds a known value (the placeholders put in its place by the
    cleaning do not count: a patient named "Name" must not make "[NAME]" a residue)."""
    return bool(find_known(_PLACEHOLDER.sub(" ", text), known))
