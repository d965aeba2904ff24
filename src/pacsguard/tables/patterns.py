"""Regular expressions shared by column sampling (Python ``re``) and text scrubbing (polars).

Each pattern is written in the common subset of Python's ``re`` and Rust's ``regex``
(no look-around, no ``\\p{..}``), so one definition serves both engines.
"""

from __future__ import annotations

import re

EMAIL = r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"
PHONE_FR = r"(?:(?:\+|00)33[\s.\-]?(?:\(0\)[\s.\-]?)?|0)[1-9](?:[\s.\-]?\d{2}){4}"
PHONE_INTL = r"(?:\+|00)[1-9]\d{0,2}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d(?:[\s.\-]?\d){5,13}"
NIR = r"[1-478][\s.]?\d{2}[\s.]?\d{2}[\s.]?(?:\d{2}|2[ABab])[\s.]?\d{3}[\s.]?\d{3}(?:[\s.]?\d{2})?"
POSTCODE_FR = r"(?:0[1-9]|[1-8]\d|9[0-8])\d{3}"
POSTCODE_UK = r"[A-Za-z]{1,2}\d[A-Za-z\d]?\s?\d[A-Za-z]{2}"
STREET_WORDS = (
    r"rue|avenue|av\.|bd|boulevard|place|pl\.|impasse|all[ée]e|chemin|route|quai|cours|square|"
    r"r[ée]sidence|lotissement|lieu[\s-]dit|hameau|faubourg|street|st\.|road|rd\.|lane|drive|"
    r"grove|close|way|court|terrace|crescent"
)
STREET_ADDRESS = (
    r"\d{1,4}(?:\s?(?:bis|ter|[A-Da-d]))?,?\s+(?:" + STREET_WORDS + r")\s+[^,;\n\r]{1,60}"
)
MONTHS_FR = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip
MONTHS_EN = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
NUMERIC_DATE = r"\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}"
MONTH_ABBREVIATIONS = (
    "janv", "févr", "fevr", "avr", "juil", "sept", "déc", "dec", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "oct", "nov",
)  # fmt: skip
_MONTH_WORDS = "|".join(
    [*MONTHS_FR, *MONTHS_EN, "fevrier", "aout", "decembre"]
    + [a + r"\.?" for a in MONTH_ABBREVIATIONS]
)
WORDED_DATE = (
    r"\d{1,2}(?:er|st|nd|rd|th)?\s+(?:" + _MONTH_WORDS + r")\s+\d{4}"
    r"|(?:" + _MONTH_WORDS + r")\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
)
TEXT_DATE = r"(?i)\b(?:" + NUMERIC_DATE + "|" + WORDED_DATE + r")\b"


def full(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """The pattern compiled to match a whole value."""
    return re.compile(r"(?:" + pattern + r")\Z", flags)


EMAIL_RE = full(EMAIL)
PHONE_RE = full(PHONE_FR + "|" + PHONE_INTL)
NIR_SHAPE_RE = full(NIR)
POSTCODE_FR_RE = full(POSTCODE_FR)
POSTCODE_UK_RE = full(POSTCODE_UK)
STREET_RE = re.compile(r"(?i)\b(?:" + STREET_ADDRESS + ")")
TEXT_DATE_RE = re.compile(TEXT_DATE)
