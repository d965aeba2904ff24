"""Rule-based scrubbing of free text, vectorised with polars (Rust regular expressions).

Rules run in order; each replaces what it finds with a bracketed marker. Titles and
labels are kept ("Dr [NOM]", "IPP [ID]") so the text still reads.
"""

from __future__ import annotations

import polars as pl

from pacsguard.tables import patterns
from pacsguard.tables.lexicon import GIVEN_NAMES, TITLES

_ACCENTS = {"a": "aàâä", "e": "eéèêë", "i": "iîï", "o": "oôö", "u": "uùûü", "c": "cç", "y": "yÿ"}


def _accent_tolerant(word: str) -> str:
    """A capitalised name as a pattern matching its accented and upper-case spellings."""
    head, tail = word[0], word[1:]
    rest = (_ACCENTS.get(c, c) for c in tail)
    return f"[{_ACCENTS.get(head, head).upper()}]" + "".join(f"[{c}{c.upper()}]" for c in rest)


def _alternation(words: list[str]) -> str:
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


# Rust's Unicode \b is very slow with large alternations: (?-u:\b) where the edge is
# ASCII, and a captured preceding character (START, put back by ${1}) where a name may
# begin with an accented capital.
B = r"(?-u:\b)"
START = r"(^|[^\p{L}\p{N}_])"
_GIVEN = _alternation([_accent_tolerant(n) for n in GIVEN_NAMES])
_TITLE = "(?i:" + _alternation([t.replace(".", r"\.") for t in set(TITLES)]) + ")"
_CAP = r"\p{Lu}[\p{L}'’-]*"
_UPPER = r"\p{Lu}[\p{Lu}'’-]+"
_LABEL = (
    r"ipp|nda|ins|nir|mrn|nip|dossier|patient\s+id"
    r"|n°\s*(?:de\s+)?(?:s[ée]cu\w*|dossier|patient|s[ée]jour)"
)
_EN_STREET = r"Street|St|Road|Rd|Lane|Avenue|Ave|Drive|Grove|Close|Way|Court|Terrace|Crescent"

# (pattern, replacement), applied in this order.
RULES: tuple[tuple[str, str], ...] = (
    (patterns.EMAIL, "[EMAIL]"),
    (rf"(?i){B}({_LABEL})\s*[:#°]?\s*[a-z]{{0,4}}-?\d[\w-]{{3,}}", "${1} [ID]"),
    (B + patterns.NIR + B, "[NIR]"),
    (rf"(?:\+33|{B}0033|{B}0)[\s.\-]?(?:\(0\)[\s.\-]?)?[1-9](?:[\s.\-]?\d{{2}}){{4}}{B}", "[TEL]"),
    (rf"\+[1-9]\d{{0,2}}[\s.\-]?(?:\(\d{{1,4}}\)[\s.\-]?)?\d(?:[\s.\-]?\d){{5,13}}{B}", "[TEL]"),
    (rf"{B}\d{{7,}}{B}|{B}[A-Z]{{2,5}}[-_]?\d{{5,}}{B}", "[ID]"),
    (
        rf"(?i){B}\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:{patterns.STREET_WORDS})(?:\s+[\w'’-]+){{1,5}}",
        "[ADRESSE]",
    ),
    (rf"{B}\d{{1,4}}\s+(?:\p{{Lu}}\p{{Ll}}+\s+){{1,3}}(?:{_EN_STREET}){B}", "[ADRESSE]"),
    (rf"{B}{patterns.POSTCODE_FR}\s+{_CAP}(?:[\s-]+{_CAP}){{0,3}}", "[CP VILLE]"),
    (rf"{B}[A-Z]{{1,2}}\d[A-Z\d]?\s\d[A-Z]{{2}}{B}", "[CP]"),
    (rf"{B}({_TITLE})\s+{_CAP}(?:\s+{_CAP}){{0,2}}", "${1} [NOM]"),
    (rf"{START}((?i:née|nee|born|épouse|epouse|ép\.|ep\.))\s+{_CAP}", "${1}${2} [NOM]"),
    (rf"{START}{_GIVEN}(?:[\s-]+{_CAP}){{1,2}}", "${1}[NOM]"),
    (rf"{START}{_UPPER}(?:[\s-]+{_UPPER})*\s+{_GIVEN}{B}", "${1}[NOM]"),
)


def apply_rules(text: pl.Expr) -> pl.Expr:
    """``text`` with every rule applied, in order."""
    for pattern, replacement in RULES:
        text = text.str.replace_all(pattern, replacement)
    return text
