"""Cleaning free text of identifying values.

Three layers, applied in this order:

1. the identifying values known from the same dataset (the patient's names in DICOM and
   natural forms and each name part, IDs, birth date in common formats, address parts,
   physicians, institution), matched case-insensitively on word boundaries;
2. identifier-shaped tokens: French NIR with a valid key, phone numbers, e-mail addresses,
   street addresses, dates in common forms;
3. person names by context: a title (Dr, Pr, Mme, M., Mr, Mrs, …) or a common given name
   followed by capitalised words.

Each hit becomes a bracketed placeholder ([NAME], [ID], [DATE], …); medical words stay.
The final sweep uses layer 1 alone on every text value of the dataset.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from importlib import resources

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from pacsguard.deid.profile import load_identifying_keywords

MIN_NAME_PART = 3
MIN_FREE_ID = 5
MONTHS = {
    1: ("janvier", "january", "jan"),
    2: ("fevrier", "février", "february", "feb"),
    3: ("mars", "march", "mar"),
    4: ("avril", "april", "apr"),
    5: ("mai", "may"),
    6: ("juin", "june", "jun"),
    7: ("juillet", "july", "jul"),
    8: ("aout", "août", "august", "aug"),
    9: ("septembre", "september", "sep", "sept"),
    10: ("octobre", "october", "oct"),
    11: ("novembre", "november", "nov"),
    12: ("decembre", "décembre", "december", "dec"),
}


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
    for month in MONTHS[m]:
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


def _fold(text: str) -> str:
    """Lower case without accents, keeping the string's length (for span reuse)."""
    if text.isascii():
        return text.lower()
    out = []
    for char in text:
        base = unicodedata.normalize("NFD", char)[0]
        out.append(base.lower() if len(base.lower()) == 1 else char)
    return "".join(out)


def _term_pattern(term: str, bounded: bool) -> str:
    escaped = r"[\s^,]+".join(re.escape(_fold(p)) for p in re.split(r"[\s^]+", term) if p)
    if not bounded:
        return escaped
    return rf"(?<![0-9a-z]){escaped}(?![0-9a-z])"


@lru_cache(maxsize=256)
def _known_regex(known: KnownValues) -> re.Pattern[str] | None:
    terms: list[tuple[str, str]] = []
    for term in known.names | known.places:
        terms.append((term, "NAME" if term in known.names else "ADDR"))
    for term in known.ids:
        terms.append((term, "ID"))
    for term in known.dates:
        terms.append((term, "DATE"))
    if not terms:
        return None
    terms.sort(key=lambda t: -len(t[0]))
    parts = []
    for i, (term, _kind) in enumerate(terms):
        bounded = not (term in known.ids and len(term) >= MIN_FREE_ID)
        parts.append(f"(?P<k{i}>{_term_pattern(term, bounded)})")
    regex = re.compile("|".join(parts))
    _KINDS[regex.pattern] = [kind for _t, kind in terms]
    return regex


_KINDS: dict[str, list[str]] = {}


def _nir_valid(digits: str) -> bool:
    body, key = digits[:13], digits[13:]
    body = body.upper().replace("2A", "19").replace("2B", "18")
    if not body.isdigit() or not key.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


@cache
def _first_names() -> frozenset[str]:
    text = resources.files("pacsguard.deid.profile").joinpath("first-names.txt").read_text()
    words = " ".join(line for line in text.splitlines() if not line.startswith("#")).split()
    return frozenset(_fold(w) for w in words)


_CAP = r"[A-ZÀ-Ý][A-Za-zÀ-ÿ'\-]+"
SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (
        "NIR",
        re.compile(
            r"(?<![0-9])[12][\s.]?\d{2}[\s.]?\d{2}[\s.]?(?:\d{2}|2[AB])[\s.]?\d{3}[\s.]?\d{3}[\s.]?\d{2}(?![0-9])",
            re.IGNORECASE,
        ),
    ),
    (
        "PHONE",
        re.compile(
            r"(?<![\w+])(?:(?:\+|00)\d{1,3}[\s.-]?(?:\(0\)[\s.-]?)?\d(?:[\s.-]?\d{2}){4}"
            r"|0[1-9](?:[\s.-]?\d{2}){4}|\+\d{1,3}[\s.-]?\d{3}[\s.-]?\d{3}[\s.-]?\d{3,4})(?!\d)"
        ),
    ),
    (
        "ADDR",
        re.compile(
            r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|"
            r"all[ée]e|impasse|quai|route|cours|street|st\.|road|rd\.|lane|drive|way)\b[^,;\n]*",
            re.IGNORECASE,
        ),
    ),
    ("ADDR", re.compile(rf"\b\d{{5}}\s+{_CAP}(?:[\s-]{_CAP})*")),
    (
        "DATE",
        re.compile(
            r"(?<![0-9])(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)?\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}"
            r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?![0-9])"
        ),
    ),
    (
        "DATE",
        re.compile(
            r"\b\d{1,2}(?:er)?\s+(?:"
            + "|".join(sorted({m for ms in MONTHS.values() for m in ms}, key=len, reverse=True))
            + r")\.?\s+(?:19|20)\d{2}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "NAME",
        re.compile(
            r"\b(?:Dr|Docteur|Doctor|Pr|Prof|Professeur|Mme|Mlle|Madame|Monsieur|Mr|Mrs|Ms|Miss|M)"
            rf"\.?\s+(?:{_CAP}|[A-ZÀ-Ý]{{2,}})(?:\s+(?:{_CAP}|[A-ZÀ-Ý]{{2,}}))?"
        ),
    ),
)
_GIVEN_THEN_CAP = re.compile(rf"\b({_CAP})\s+((?:{_CAP}|[A-ZÀ-Ý]{{2,}})(?:\s+[A-ZÀ-Ý]{{2,}})?)")
_CAPS_THEN_GIVEN = re.compile(rf"\b([A-ZÀ-Ý]{{2,}})\s+({_CAP})\b")


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    kind: str


def find_known(text: str, known: KnownValues) -> list[Hit]:
    regex = _known_regex(known)
    if regex is None or not text:
        return []
    kinds = _KINDS[regex.pattern]
    hits = []
    for match in regex.finditer(_fold(text)):
        group = match.lastgroup or "k0"
        hits.append(Hit(match.start(), match.end(), kinds[int(group[1:])]))
    return hits


def find_shaped(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for kind, regex in SHAPES:
        for match in regex.finditer(text):
            if kind == "NIR" and not _nir_valid(re.sub(r"[\s.]", "", match.group())):
                continue
            hits.append(Hit(match.start(), match.end(), kind))
    names = _first_names()
    for match in _GIVEN_THEN_CAP.finditer(text):
        if _fold(match.group(1)) in names:
            hits.append(Hit(match.start(), match.end(), "NAME"))
    for match in _CAPS_THEN_GIVEN.finditer(text):
        if _fold(match.group(2)) in names:
            hits.append(Hit(match.start(), match.end(), "NAME"))
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


def contains_known(text: str, known: KnownValues) -> bool:
    return bool(find_known(text, known))
