"""Reading tables lazily (CSV/TSV, Parquet, Excel) and writing them in the same format."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import xlsxwriter

from pacsguard.core.io import fsync_dir
from pacsguard.tables.encoding import CHOOSE, ENCODINGS, check_header, detect_encoding, transcode
from pacsguard.tables.errors import TableReadError

Format = Literal["csv", "parquet", "xlsx"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".tab": "csv", ".parquet": "parquet",
    ".pq": "parquet", ".xlsx": "xlsx", ".xlsm": "xlsx",
}  # fmt: skip
_SEPARATORS = (";", ",", "\t", "|")


def table_format(path: Path) -> Format:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise TableReadError(f"{path}: unknown table format {path.suffix!r} (known: {known})")
    return fmt


def _csv_rows(lines: list[str], separator: str) -> Iterator[list[str]]:
    """``lines`` split by the csv module, whose 128 KiB field limit is raised to fit them
    (a free-text field may be longer)."""
    csv.field_size_limit(max(csv.field_size_limit(), sum(map(len, lines)) + 1))
    return csv.reader(lines, delimiter=separator)


def sniff_separator(path: Path) -> str:
    """The separator that splits the first lines into the same number (> 1) of fields."""
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        head = [line for _, line in zip(range(50), handle, strict=False)]
    best, best_width = ",", 1
    ragged = []
    for separator in _SEPARATORS:
        rows = [row for row in _csv_rows(head, separator) if row]
        widths = {len(row) for row in rows[:-1] or rows}  # the last line may be cut short
        if len(widths) == 1 and (width := widths.pop()) > best_width:
            best, best_width = separator, width
        elif len(widths) > 1 and min(widths) > 1:
            ragged.append(separator)
    if best_width == 1 and ragged:  # split by it, but not into the same number of fields
        shown = ", ".join(repr(s) for s in ragged)
        raise TableReadError(
            f"{path}: the first lines do not have the same number of fields for any "
            f"separator (tried {shown}): give it with --separator, or mend the rows"
        )
    return best


@dataclass(frozen=True)
class Sheet:
    """One table of an input: the whole CSV/Parquet file, or one Excel worksheet."""

    name: str | None
    frame: pl.LazyFrame


@dataclass(frozen=True)
class OpenedTable:
    path: Path
    format: Format
    sheets: tuple[Sheet, ...]
    encoding: str | None = None
    separator: str | None = None


def _scan_csv(path: Path, separator: str) -> pl.LazyFrame:
    # glob=False: polars reads a path as a pattern by default, and "visit[2].csv" names a file
    return pl.scan_csv(
        path,
        separator=separator,
        infer_schema=False,
        encoding="utf8",
        raise_if_empty=False,
        glob=False,
    )


_SPELLED = {"\\t": "\t", "tab": "\t", "TAB": "\t"}


def _one_character(separator: str | None) -> str | None:
    """A separator as one character (``\\t`` or ``tab`` typed for a tab), or refuse it."""
    if separator is None:
        return None
    separator = _SPELLED.get(separator, separator)
    if len(separator) != 1:
        raise TableReadError(
            f"--separator must be one character (got {len(separator)}); for a tab give '\\t'"
        )
    return separator


def _header_first(path: Path, utf8: Path, separator: str) -> None:
    """Refuse a first line most of whose cells are empty: a title above the header
    ("Export du 12/03/2021;;;;"), which would make the header and every row data of
    columns that no policy names, kept as they are."""
    with utf8.open(encoding="utf-8", errors="replace", newline="") as handle:
        cells = next(_csv_rows([handle.readline()], separator), [])
    empty = sum(1 for cell in cells if not cell.strip())
    if 2 * empty > len(cells):
        raise TableReadError(
            f"{path}: {empty} of the {len(cells)} column names of the first line are empty "
            "(a title line above the header?): the header must be the first line"
        )


def _flat(path: Path, frame: pl.LazyFrame) -> None:
    """Refuse nested columns (lists, structs): each cell must be one value to classify."""
    try:
        schema = frame.collect_schema()
    except pl.exceptions.PolarsError:
        raise TableReadError(
            f"{path}: not a readable Parquet file (damaged, or not Parquet)"
        ) from None
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    if nested:
        raise TableReadError(
            f"{path}: column {nested[0]!r} holds nested values (lists or structs); flatten "
            "the table to one value a cell first"
        )


@contextlib.contextmanager
def open_table(
    path: Path,
    *,
    encoding: str = "auto",
    separator: str | None = None,
    workdir: Path | None = None,
) -> Iterator[OpenedTable]:
    """Open ``path`` lazily. A non-UTF-8 CSV is transcoded into a private temporary
    folder (in ``workdir`` when given), removed on exit."""
    if not path.is_file():
        raise TableReadError(f"{path}: no such file")
    fmt = table_format(path)
    separator = _one_character(separator)
    if fmt == "parquet":
        frame = pl.scan_parquet(path, glob=False)
        _flat(path, frame)
        yield OpenedTable(path, fmt, (Sheet(None, frame),))
        return
    if fmt == "xlsx":
        yield OpenedTable(path, fmt, tuple(_excel_sheets(path)))
        return
    if encoding != "auto" and encoding not in ENCODINGS:
        raise TableReadError(f"unknown encoding {encoding!r}; {CHOOSE}")
    chosen = detect_encoding(path) if encoding == "auto" else encoding
    check_header(path, chosen, detected=encoding == "auto")
    if encoding == "utf-8" and detect_encoding(path) != "utf-8":
        raise TableReadError(f"{path}: not valid utf-8 text; {CHOOSE}")
    if chosen == "utf-8":
        sep = separator or sniff_separator(path)
        _header_first(path, path, sep)
        yield OpenedTable(path, fmt, (Sheet(None, _scan_csv(path, sep)),), chosen, sep)
        return
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="pacsguard-transcode-", dir=workdir))
    try:
        utf8 = private / "table.csv"
        transcode(path, chosen, utf8)
        sep = separator or sniff_separator(utf8)
        _header_first(path, utf8, sep)
        yield OpenedTable(path, fmt, (Sheet(None, _scan_csv(utf8, sep)),), chosen, sep)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _excel_sheets(path: Path) -> list[Sheet]:
    try:
        frames = pl.read_excel(path, sheet_id=0, infer_schema_length=0, raise_if_empty=False)
    except Exception as exc:  # fastexcel raises its own types; none of them carry cells
        raise TableReadError(
            f"{path}: not a readable xlsx workbook ({type(exc).__name__})"
        ) from None
    return [Sheet(name, frame.lazy()) for name, frame in frames.items()]


def write_sheets(
    sheets: list[tuple[str | None, pl.LazyFrame]], target: Path, fmt: Format, separator: str
) -> None:
    """Write the de-identified sheets to ``target`` (atomically: temporary file + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        if fmt == "csv":
            sheets[0][1].sink_csv(tmp, separator=separator)
        elif fmt == "parquet":
            sheets[0][1].sink_parquet(tmp)
        else:
            with xlsxwriter.Workbook(str(tmp)) as workbook:
                for index, (sheet, frame) in enumerate(sheets):
                    frame.collect().write_excel(
                        workbook, worksheet=sheet or f"Sheet{index + 1}", autofit=False
                    )
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
