"""Identifier-shaped text: NIR, INS, labelled patient IDs, phones, e-mails, addresses,
postcodes with towns, written dates, and person names (``core.names``). Each detector returns
the text it recognised.

The one detector set of the project: ``verify`` reports these, ``deid`` (Clean Descriptors)
redacts them. Month names and ``fold`` live here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pacsguard.core import lazyre
from pacsguard.core.names import find_person_names, fold, lexicon
from pacsguard.core.nir import is_valid_nir

__all__ = [
    "MONTHS_EN",
    "MONTHS_FR",
    "Hit",
    "find_identifiers",
    "find_person_names",
    "fold",
    "lexicon",
]

MONTHS_EN = (
    "JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE",
    "JULY", "AUGUST", "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER",
)  # fmt: skip
MONTHS_FR = (
    "JANVIER", "FEVRIER", "MARS", "AVRIL", "MAI", "JUIN",
    "JUILLET", "AOUT", "SEPTEMBRE", "OCTOBRE", "NOVEMBRE", "DECEMBRE",
)  # fmt: skip


@dataclass(frozen=True)
class Hit:
    kind: str
    detail: str
    text: str


# --- NIR / INS -----------------------------------------------------------------------------
# Not a link of a dotted chain ("1.2.840.113619.2.274045997629788.1": a UID's components)
NIR_RE = lazyre.Pattern(
    r"(?<![0-9A-Za-z])(?<![0-9]\.)([1234785])[ .]?(\d{2})[ .]?(\d{2})[ .]?(\d{2}|2[AB])[ .]?"
    r"(\d{3})[ .]?(\d{3})[ .]?(\d{2})(?![0-9A-Za-z]|\.[0-9])"
)
INS_OID_RE = lazyre.Pattern(r"1\.2\.250\.1\.213\.1\.4\.(?:8|9|10|11)\b")
INS_LABEL_RE = lazyre.Pattern(
    r"\bINS(?:[- ]?[CNA])?\b\s*[:=#]?\s*(\d[\d .]{12,30}\d)", re.IGNORECASE
)


def nir_key_valid(match: re.Match[str]) -> bool:
    return is_valid_nir(match.group(0))


def find_nir(text: str) -> list[Hit]:
    return [Hit("nir", "valid key", m.group(0)) for m in NIR_RE.finditer(text) if nir_key_valid(m)]


def find_ins(text: str) -> list[Hit]:
    hits = [Hit("ins", "labelled", m.group(0)) for m in INS_LABEL_RE.finditer(text)]
    hits += [Hit("ins", "INS issuer OID", m.group(0)) for m in INS_OID_RE.finditer(text)]
    return hits


# --- contact details -----------------------------------------------------------------------
EMAIL_RE = lazyre.Pattern(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
PHONE_RES = (
    # French: 01 23 45 67 89, 01.23.45.67.89, 0123456789, +33 1 23 45 67 89, 0033 …
    lazyre.Pattern(
        r"(?:(?<![\d+])(?:\+|00)33[ .]?(?:\(0\)[ .]?)?|(?<![\d.,])0)"
        r"[1-9](?:[ .\-]?\d{2}){4}(?![\d.,])"
    ),
    # international with a leading +
    lazyre.Pattern(r"(?<![\w+])\+\d{1,3}[ .\-]?\(?\d{1,4}\)?(?:[ .\-]?\d{2,4}){2,4}(?!\d)"),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567
    lazyre.Pattern(r"(?:\(\d{3}\)[ ]?|(?<![\d.])\d{3}[.\-])\d{3}[.\-]\d{4}(?![\d.])"),
    # British: 020 7946 0018, 01632 960 001
    lazyre.Pattern(r"(?<![\d.])0\d{2,4} \d{3,4} ?\d{3,4}(?![\d.])"),
)


def find_email(text: str) -> list[Hit]:
    return [Hit("email", "", m.group(0)) for m in EMAIL_RE.finditer(text)]


def find_phone(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for pattern in PHONE_RES:
        hits += [Hit("phone", "", m.group(0)) for m in pattern.finditer(text)]
    return hits


# --- addresses -----------------------------------------------------------------------------
_FR_WAYS = (
    r"rue|avenue|av|boulevard|bd|bld|place|chemin|all[ée]e|impasse|route|rte|quai|cours|square"
    r"|passage|r[ée]sidence|lotissement|lieu[- ]dit|hameau|faubourg|fbg|esplanade|promenade|voie"
    r"|sentier|villa|cit[ée]|parvis|rond[- ]point"
)
_EN_WAYS = (
    r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl"
    r"|terrace|close|crescent|gardens|square|parkway|highway|hwy"
)
STREET_FR_RE = lazyre.Pattern(
    rf"(?<!\w)\d{{1,4}}(?:\s?(?:bis|ter|b|t))?,?\s+(?:{_FR_WAYS})\.?\s+[\w'’\-]{{2,}}", re.I
)
STREET_EN_RE = lazyre.Pattern(
    rf"(?<!\w)\d{{1,5}}\s+(?:[A-Za-z][\w'\-]+\s+){{1,3}}(?:{_EN_WAYS})\b\.?", re.I
)
_UNITS = {
    "MM",
    "CM",
    "KV",
    "KVP",
    "MAS",
    "MA",
    "HU",
    "MS",
    "SEC",
    "IMAGES",
    "IMAGE",
    "SLICES",
    "FRAMES",
    "HZ",
    "KHZ",
    "MHZ",
    "MGY",
    "GY",
    "DPI",
    "PIXELS",
    "PX",
    "BYTES",
    "MO",
    "KO",
    "GO",
    "POINTS",
}
POSTCODE_FR_RE = lazyre.Pattern(
    r"(?<![\w.,])(?:F-?)?((?:0[1-9]|[1-8]\d|9[0-5]|2[AB]|97)\d{3})\s+"
    r"((?:[A-ZÀ-Ý][A-Za-zÀ-ÿ'’\-]{2,})"
    r"(?:[ \-](?:[A-ZÀ-Ý][A-Za-zÀ-ÿ'’\-]+|sur|sous|en|le|la|les|de|du|d))*)"
)
POSTCODE_UK_RE = lazyre.Pattern(r"(?<![\w])[A-Z]{1,2}\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{2}(?!\w)")
POSTCODE_US_RE = lazyre.Pattern(r"(?<![\w])[A-Z][A-Za-z .]+, ?[A-Z]{2} \d{5}(?:-\d{4})?(?!\d)")


def find_address(text: str) -> list[Hit]:
    hits = [Hit("street-address", "fr", m.group(0)) for m in STREET_FR_RE.finditer(text)]
    hits += [Hit("street-address", "en", m.group(0)) for m in STREET_EN_RE.finditer(text)]
    for m in POSTCODE_FR_RE.finditer(text):
        if fold(m.group(2)).split()[0] not in _UNITS:
            hits.append(Hit("postcode-town", "fr", m.group(0)))
    hits += [Hit("postcode-town", "uk", m.group(0)) for m in POSTCODE_UK_RE.finditer(text)]
    hits += [Hit("postcode-town", "us", m.group(0)) for m in POSTCODE_US_RE.finditer(text)]
    return hits


# --- dates written in text -----------------------------------------------------------------
_MONTHS = (
    r"janvier|f[ée]vrier|mars|avril|mai|juin|juillet|ao[uû]t|septembre|octobre|novembre"
    r"|d[ée]cembre|january|february|march|april|may|june|july|august|september|october"
    r"|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|janv|f[ée]vr|avr"
    r"|juil|d[ée]c"
)
DATE_RES = (
    # compact YYYYMMDD standing alone ("Echo 20230829"); never inside UIDs or codes
    lazyre.Pattern(r"(?<![\w.])(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w.])"),
    lazyre.Pattern(
        r"(?<![\d.])(?:0?[1-9]|[12]\d|3[01])[/.\-](?:0?[1-9]|1[0-2])[/.\-](?:19|20)?\d{2}(?![\d.])"
    ),
    lazyre.Pattern(
        r"(?<![\d.])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)\d{2}(?![\d.])"
    ),
    lazyre.Pattern(
        r"(?<![\d.])(?:19|20)\d{2}[\-/.](?:0[1-9]|1[0-2])[\-/.](?:0[1-9]|[12]\d|3[01])(?![\d.])"
    ),
    lazyre.Pattern(
        rf"(?<!\w)(?:[12]\d|3[01]|0?[1-9])(?:er)?\.?\s+(?:{_MONTHS})\.?,?\s+(?:19|20)\d{{2}}(?!\d)",
        re.I,
    ),
    lazyre.Pattern(
        rf"(?<!\w)(?:{_MONTHS})\.?\s+(?:[12]\d|3[01]|0?[1-9]),?\s+(?:19|20)\d{{2}}(?!\d)", re.I
    ),
)


# A date after a birth label ("né le 12/03/1956", "DOB 1956-03-12", "date de naissance :").
BIRTH_LABEL_RE = lazyre.Pattern(
    r"(?<!\w)(?i:n[ée]e?\s+le|born(?:\s+on)?|dob|d\.?d\.?n\.?|date\s+de\s+naissance"
    r"|birth\s*date|date\s+of\s+birth)\s*[:=]?\s*"
)


def find_birth_dates(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for label in BIRTH_LABEL_RE.finditer(text):
        rest = text[label.end() : label.end() + 40]
        for pattern in DATE_RES:
            date = pattern.match(rest)
            if date is not None:
                hits.append(Hit("birth-date", "labelled", label.group(0) + date.group(0)))
                break
    return hits


def find_dates(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for pattern in DATE_RES:
        hits += [Hit("date-in-text", "", m.group(0)) for m in pattern.finditer(text)]
    return hits


# --- patient identifiers next to their label -----------------------------------------------
# IPP (identifiant permanent du patient), NIP, MRN, "Patient ID", "N° dossier": a label, then
# a token holding at least four digits.
ID_LABEL_RE = lazyre.Pattern(
    r"(?<!\w)(?i:IPP|NIP|MRN|PID|patient[ _-]?id|id[ _-]?patient|identifiant(?: patient)?"
    r"|n[°o]\.? ?(?:de )?(?:dossier|patient)|dossier|medical record(?: number)?)"
    r"\s*[:=#n°.]*\s*([A-Za-z]{0,4}[-_ ]?\d[\dA-Za-z\-]{3,19})(?![\w])"
)


def find_labelled_ids(text: str) -> list[Hit]:
    return [
        Hit("patient-id", "labelled", m.group(0))
        for m in ID_LABEL_RE.finditer(text)
        if sum(c.isdigit() for c in m.group(1)) >= 4
    ]


DETECTORS = (
    find_nir,
    find_ins,
    find_email,
    find_phone,
    find_address,
    find_dates,
    find_birth_dates,
    find_labelled_ids,
)


def find_identifiers(text: str, *, dates: bool = True, ner: bool = False) -> list[Hit]:
    """Every identifier-shaped span of ``text`` (written dates only when ``dates``; dates after
    a birth label always), and the
    person names of ``core.names`` (its spaCy model only where ``ner`` and in doubt)."""
    hits: list[Hit] = []
    for detector in DETECTORS:
        if detector is find_dates and not dates:
            continue
        hits += detector(text)
    hits += [Hit(h.kind, h.detail, h.text) for h in find_person_names(text, ner=ner)]
    return hits
