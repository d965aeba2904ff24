"""Column evidence for person names in free text: how many patients a word recurs under.

A capitalised word that recurs in the notes of many different patients ("Lyon", "Patient",
"Parkinson", a drug, a ward) is nobody's identifier in particular; a lexicon name found in
one patient's rows only (a neighbour's "Ginette") is suspicious. Occurrences that are the
row's own known values ("Martin" in Martin's own notes) do not count: a surname that many
patients share is still each one's name. Without a patient-ID column each row counts as
one patient (a weaker proxy: one patient's many rows look like many patients).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

RECUR = 3  # patients a word must recur under to be nobody's in particular (as in verify)
# Capitalised words as core.names reads them (Rust's regex has no look-around: a superset).
CAPITALISED = r"[A-ZÀ-Ý][A-Za-zÀ-ÿ'’\-]*"


def folded(expr: pl.Expr) -> pl.Expr:
    """``core.names.fold`` as a polars expression (upper case, no accents, one space)."""
    bare = expr.str.normalize("NFKD").str.replace_all(r"\p{M}", "").str.to_uppercase()
    return bare.str.replace_all(r"[^0-9A-Z]+", " ").str.strip_chars()


def recurring_words(
    frame: pl.LazyFrame, text: str, patient: pl.Expr | None, own: Sequence[pl.Expr] = ()
) -> frozenset[str]:
    """The folded capitalised words of column ``text`` found under ``RECUR`` patients or more,
    not counting where a word is one of its row's ``own`` values (or one of their words)."""
    unit = patient.cast(pl.String) if patient is not None else pl.int_range(pl.len())
    own_words = [folded(e.cast(pl.String)).str.split(" ") for e in own]
    own_list = pl.concat_list(own_words) if own_words else pl.lit([], dtype=pl.List(pl.String))
    words = (
        frame.select(
            unit.alias("u"),
            pl.col(text).cast(pl.String).str.extract_all(CAPITALISED).alias("w"),
            own_list.alias("own"),
        )
        .explode("w")
        .drop_nulls("w")
        .with_columns(folded(pl.col("w")).alias("f"))
        .filter(~pl.col("own").list.contains(pl.col("f")).fill_null(False))
        .group_by("f")
        .agg(pl.col("u").n_unique().alias("n"))
        .filter(pl.col("n") >= RECUR)
        .collect(engine="streaming")
    )
    return frozenset(words["f"].to_list())
