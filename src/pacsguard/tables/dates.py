"""Date formats found in exports, and their parsing with polars."""

from __future__ import annotations

import polars as pl

# Day-first before month-first: French exports; a value parses with the first that fits.
DATE_FORMATS = (
    "%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%d/%m/%y", "%Y%m%d",
    "%m/%d/%Y",
)  # fmt: skip
DATETIME_FORMATS = (
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f",
    "%d-%m-%Y %H:%M", "%d.%m.%Y %H:%M", "%Y%m%d%H%M%S",
)  # fmt: skip
ALL_FORMATS = DATETIME_FORMATS + DATE_FORMATS
# Eight bare digits read as a date only when the header says it is one.
AMBIGUOUS_FORMATS = frozenset({"%Y%m%d", "%Y%m%d%H%M%S"})


def has_time(fmt: str) -> bool:
    return "%H" in fmt


def parse(expr: pl.Expr, fmt: str) -> pl.Expr:
    """Values of ``expr`` (text) that fit ``fmt`` exactly, as Datetime; others null."""
    return expr.str.strip_chars().str.strptime(pl.Datetime("us"), fmt, strict=False, exact=True)


def parse_any(expr: pl.Expr, formats: tuple[str, ...]) -> pl.Expr:
    """The first format that fits each value, as Datetime; null when none fits."""
    return pl.coalesce([parse(expr, fmt) for fmt in formats])


def to_datetime(expr: pl.Expr, dtype: pl.DataType, formats: tuple[str, ...]) -> pl.Expr:
    """Any column holding dates (native, or text in ``formats``) as Datetime."""
    if isinstance(dtype, pl.Datetime):
        return expr.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("us"))
    return parse_any(expr.cast(pl.String), formats)


def matching_formats(sample: pl.Series, formats: tuple[str, ...] = ALL_FORMATS) -> list[str]:
    """Formats that read some value of ``sample`` that no earlier format reads, in order."""
    frame = pl.DataFrame({"v": sample.cast(pl.String)})
    found: list[str] = []
    claimed = pl.Series([False] * len(sample))
    for fmt in formats:
        hit = frame.select(parse(pl.col("v"), fmt).is_not_null()).to_series()
        new = hit & ~claimed
        if new.any():
            found.append(fmt)
            claimed = claimed | hit
    return found


def is_usable_format(fmt: str) -> bool:
    """Whether polars can write a date in ``fmt`` (a shifted date is written back in its
    format: "%Q" is no directive, and failed at the write as a "malformed table")."""
    import datetime as dt

    try:
        pl.select(pl.lit(dt.datetime(2020, 1, 2, 3, 4, 5)).dt.to_string(fmt)).item()
    except pl.exceptions.PolarsError:
        return False
    return True
