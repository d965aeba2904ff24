"""Keyed pseudonyms over polars columns: each distinct value is HMAC'd once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import polars as pl

from pacsguard.core.pseudonym import Pseudonymizer, normalise

_CACHE_LIMIT = 1 << 17  # distinct values kept: memory stays bounded on any table


class CachedMap:
    """Apply ``function`` to each distinct non-blank value of a batch, with a bounded cache."""

    def __init__(self, function: Callable[[str], Any], dtype: pl.DataType) -> None:
        self.function = function
        self.dtype = dtype
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def lookup(self, value: str) -> Any:
        with self._lock:
            if value in self._cache:
                return self._cache[value]
        result = None if not normalise(value) else self.function(value)
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[value] = result
        return result

    def __call__(self, batch: pl.Series) -> pl.Series:
        text = batch.cast(pl.String)
        distinct = text.drop_nulls().unique().to_list()
        mapping = {value: self.lookup(value) for value in distinct}
        return text.replace_strict(mapping, default=None, return_dtype=self.dtype)

    def expr(self, source: pl.Expr) -> pl.Expr:
        return source.map_batches(self, return_dtype=self.dtype, is_elementwise=True)


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An identifier column as text: 1234.0 read from a float column becomes "1234"."""
    if dtype.is_float():
        return expr.cast(pl.Int64, strict=False).cast(pl.String)
    return expr.cast(pl.String)


class Pseudonyms:
    """The cached pseudonym functions of one run (one per kind and domain)."""

    def __init__(self, pseudonymizer: Pseudonymizer) -> None:
        self.pz = pseudonymizer
        self._maps: dict[tuple[str, str], CachedMap] = {}

    def _get(self, kind: str, domain: str = "") -> CachedMap:
        key = (kind, domain)
        if key not in self._maps:
            pz = self.pz
            functions: dict[str, tuple[Callable[[str], Any], pl.DataType]] = {
                "patient-id": (pz.patient_id, pl.String()),
                "accession": (pz.accession, pl.String()),
                "identifier": (lambda v: pz.identifier(domain, v), pl.String()),
                "offset": (pz.date_offset_days, pl.Int32()),
            }
            self._maps[key] = CachedMap(*functions[kind])
        return self._maps[key]

    def patient_id(self, source: pl.Expr) -> pl.Expr:
        return self._get("patient-id").expr(source)

    def accession(self, source: pl.Expr) -> pl.Expr:
        return self._get("accession").expr(source)

    def identifier(self, domain: str, source: pl.Expr) -> pl.Expr:
        return self._get("identifier", domain).expr(source)

    def offset_days(self, source: pl.Expr) -> pl.Expr:
        return self._get("offset").expr(source)
