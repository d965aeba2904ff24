"""Dates written in free text: find them, and shift them by a patient's offset keeping
their written form (12/03/2020, 2020-03-12, 12 mars 2020, March 12, 2020)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection

from pacsguard.tables.patterns import MONTHS_EN, MONTHS_FR, TEXT_DATE_RE

DATE_MARK = "[DATE]"
Render = Callable[[dt.date], str]
_NUMERIC = re.compile(r"(\d{1,4})([/.\-])(\d{1,2})\2(\d{2,4})\Z")
_DAY_MONTH = re.compile(r"(?i)(\d{1,2})(er|st|nd|rd|th)?(\s+)([^\W\d_]+\.?)(\s+)(\d{4})\Z")
_MONTH_DAY = re.compile(r"(?i)([^\W\d_]+\.?)(\s+)(\d{1,2})(?:st|nd|rd|th)?(,?\s+)(\d{4})\Z")
_FOLD = str.maketrans("éû", "eu")
_ABBREVIATED = {
    "fr": ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
           "nov.", "déc."),
    "en": ("Jan.", "Feb.", "Mar.", "Apr.", "May", "Jun.", "Jul.", "Aug.", "Sep.", "Oct.",
           "Nov.", "Dec."),
}  # fmt: skip


def _month(word: str) -> tuple[int, str] | None:
    """Month number and language of a month word; abbreviations (sept., janv.) allowed."""
    key = word.lower().rstrip(".").translate(_FOLD)
    for language, names in (("fr", MONTHS_FR), ("en", MONTHS_EN)):
        for number, name in enumerate(names, 1):
            folded = name.translate(_FOLD)
            if key == folded or (len(key) >= 3 and folded.startswith(key)):
                return number, language
    return None


def _month_word(number: int, language: str, like: str) -> str:
    name = (MONTHS_FR if language == "fr" else MONTHS_EN)[number - 1]
    if like.endswith("."):
        name = _ABBREVIATED[language][number - 1]
    return name.capitalize() if like[:1].isupper() else name


def _year(text: str) -> int:
    value = int(text)
    if len(text) == 4:
        return value
    return 1900 + value if value > 30 else 2000 + value


def _numeric(m: re.Match[str]) -> tuple[dt.date, Render]:
    a, sep, b, c = m.group(1), m.group(2), m.group(3), m.group(4)
    if len(a) == 4:
        day = dt.date(int(a), int(b), int(c))
        return day, lambda d: f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}"
    first, second = int(a), int(b)
    month_first = second > 12 >= first  # 03/25/2020 can only be month first

    def render(d: dt.date) -> str:
        lead, follow = (d.month, d.day) if month_first else (d.day, d.month)
        year = f"{d.year:04d}" if len(c) == 4 else f"{d.year % 100:02d}"
        return f"{lead:0{len(a)}d}{sep}{follow:0{len(b)}d}{sep}{year}"

    if month_first:
        return dt.date(_year(c), first, second), render
    return dt.date(_year(c), second, first), render


def _worded(text: str) -> tuple[dt.date, Render] | None:
    if m := _DAY_MONTH.match(text):
        day_n, _, space1, word, space2, year = m.groups()
        month = _month(word)
        if month is None:
            return None
        number, language = month

        def render_day_first(d: dt.date) -> str:
            suffix = "er" if language == "fr" and d.day == 1 else ""
            written = _month_word(d.month, language, word)
            return f"{d.day}{suffix}{space1}{written}{space2}{d.year}"

        return dt.date(int(year), number, int(day_n)), render_day_first
    if m := _MONTH_DAY.match(text):
        word, space1, day_n, space2, year = m.groups()
        month = _month(word)
        if month is None:
            return None
        number, language = month

        def render_month_first(d: dt.date) -> str:
            written = _month_word(d.month, language, word)
            return f"{written}{space1}{d.day}{space2}{d.year}"

        return dt.date(int(year), number, int(day_n)), render_month_first
    return None


def read_text_date(text: str) -> tuple[dt.date, Render] | None:
    """The date one written date stands for, and how to write another date the same way."""
    try:
        if m := _NUMERIC.match(text):
            return _numeric(m)
        return _worded(text)
    except ValueError:  # 31/02/2020 and friends
        return None


def shift_dates_in(text: str, days: int | None, forbidden: Collection[dt.date] = ()) -> str:
    """Every date in ``text`` shifted by ``days``; unreadable ones, those in ``forbidden``
    (birth dates) and all of them when ``days`` is None become ``[DATE]``."""

    def replace(match: re.Match[str]) -> str:
        read = read_text_date(match.group(0)) if days is not None else None
        if read is None or read[0] in forbidden:
            return DATE_MARK
        day, render = read
        try:
            return render(day + dt.timedelta(days=days or 0))
        except OverflowError:
            return DATE_MARK

    return TEXT_DATE_RE.sub(replace, text)
