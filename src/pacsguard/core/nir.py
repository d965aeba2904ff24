"""French social security numbers (NIR, also the INS matricule) and their control key.

15 characters: sex (1), birth year (2), month (2), département (2, ``2A``/``2B`` in
Corsica), commune (3), order (3), key (2) where key = 97 − (first 13 digits mod 97);
for Corsica the département is read as 19 (2A) or 18 (2B) when computing the key.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s.\-]")
NIR_SHAPE = re.compile(r"^[1-478]\d{4}(?:\d{2}|2[AB])\d{6}\d{2}$")
_CORSICA = {"2A": "19", "2B": "18"}


def compact(value: str) -> str:
    """The NIR without spaces, dots or dashes, upper case."""
    return _SEPARATORS.sub("", value).upper()


def nir_key(first13: str) -> int:
    """The control key of the first 13 characters (Corsican 2A/2B allowed)."""
    digits = first13[:5] + _CORSICA.get(first13[5:7], first13[5:7]) + first13[7:]
    return 97 - int(digits) % 97


def is_valid_nir(value: str) -> bool:
    """True for a well-formed NIR whose key checks; separators are tolerated."""
    text = compact(value)
    if not NIR_SHAPE.match(text):
        return False
    month = int(text[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return nir_key(text[:13]) == int(text[13:])
