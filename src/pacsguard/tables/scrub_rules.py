"""Rule-based scrubbing of free text, vectorised with polars (Rust regular expressions).

Rules run in order; each replaces what it finds with a bracketed marker. Labels are kept
("IPP [ID]", "née [NOM]") so the text still reads. Person names are found per row by the
shared detector (``core.names``, see ``scrub.replace_names``), not here.
"""

from __future__ import annotations

import polars as pl

from pacsguard.tables import patterns

# Rust's Unicode \b is slow: (?-u:\b) where the edge is ASCII, and a captured preceding
# character (START, put back by ${1}) where a word may begin with an accented capital.
B = r"(?-u:\b)"
START = r"(^|[^\p{L}\p{N}_])"
_CAP = r"\p{Lu}[\p{L}'’-]*"
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
    (rf"{START}((?i:née|nee|born|épouse|epouse|ép\.|ep\.))\s+{_CAP}", "${1}${2} [NOM]"),
)


def apply_rules(text: pl.Expr) -> pl.Expr:
    """``text`` with every rule applied, in order."""
    for pattern, replacement in RULES:
        text = text.str.replace_all(pattern, replacement)
    return text
