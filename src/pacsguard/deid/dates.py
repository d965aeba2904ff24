"""Shifting DICOM dates (DA, DT) by whole days; times (TM) stay as they are."""

from __future__ import annotations

from datetime import date, timedelta

DUMMY_DATE = "19000101"


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value; None when it is not a valid date (the caller empties it)."""
    text = value.strip()
    if len(text) == 10 and text[4] == "." and text[7] == ".":  # ACR-NEMA form
        text = text.replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    try:
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT; precision (YYYY, YYYYMM, …) and time zone are kept."""
    text = value.strip()
    if len(text) < 4 or not text[:4].isdigit():
        return None
    digits = len(text) if text.isdigit() else next(i for i, c in enumerate(text) if not c.isdigit())
    head = text[: min(digits, 8)]
    padded = head + "0101"[len(head) - 4 :] if len(head) < 8 else head
    shifted = shift_da(padded, days)
    if shifted is None:
        return None
    return shifted[: len(head)] + text[len(head) :]


def shift_date_range(value: str, days: int, shift: str = "da") -> str | None:
    """Dates may be ranges (``A-B``) in some attributes; shift each end."""
    fn = shift_da if shift == "da" else shift_dt
    if "-" in value and shift == "da":
        parts = value.split("-")
        shifted = [fn(p, days) if p else "" for p in parts]
        if any(s is None for s in shifted):
            return None
        return "-".join(s or "" for s in shifted)
    return fn(value, days)
