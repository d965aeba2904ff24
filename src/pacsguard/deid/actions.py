"""Value operations, one small function each, valid for the element's VR."""

from __future__ import annotations

from collections.abc import Callable

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.uid import UID

from pacsguard.deid.dates import DUMMY_DATE, shift_da, shift_dt

DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: dict[str, object] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": DUMMY_DATE,
    "DS": "0",
    "DT": DUMMY_DATE + "000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": "ANONYMIZED",
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": "urn:pacsguard:anonymized",
    "UT": DUMMY_TEXT,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
}
MAX_LENGTH = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "PN": 64,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "LT": 10240,
}


def values_of(element: DataElement) -> list[object]:
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def set_values(element: DataElement, values: list[object]) -> None:
    if not values:
        element.value = None if element.VR not in ("SQ",) else []
    elif len(values) == 1:
        element.value = values[0]
    else:
        element.value = values


def empty(element: DataElement) -> None:
    element.value = [] if element.VR == "SQ" else None


def dummy(element: DataElement) -> None:
    if element.VR in DUMMY_BY_VR:
        element.value = DUMMY_BY_VR[element.VR]
    elif element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        length = len(element.value or b"")
        element.value = b"\x00" * (length + (length & 1))
    else:
        empty(element)


def fit(text: str, vr: str) -> str:
    """Truncate a replacement to the VR's maximum length."""
    limit = MAX_LENGTH.get(vr)
    return text[:limit] if limit else text


def shift(element: DataElement, days: int) -> None:
    """Shift DA/DT values by ``days``; a value that is not a date is emptied (fail safe)."""
    fn = shift_da if element.VR == "DA" else shift_dt
    shifted = []
    for value in values_of(element):
        result = fn(str(value), days)
        if result is None:
            empty(element)
            return
        shifted.append(result)
    set_values(element, list(shifted))


def remap_uids(element: DataElement, remap: dict[str, str], make: Callable[[str], str]) -> None:
    """Replace every UID value through ``make``, recording each pair in ``remap``."""
    out: list[object] = []
    for value in values_of(element):
        original = str(value).strip("\x00 ")
        if not original:
            continue
        new = remap.get(original)
        if new is None:
            new = make(original)
            remap[original] = new
        out.append(UID(new))
    set_values(element, out)
