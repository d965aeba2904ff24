"""Re-identification risk of a table, as ARX reports it for the prosecutor model.

Records sharing the same quasi-identifier values form an equivalence class. A record's
prosecutor risk is 1 / (size of its class). Reported: k (the smallest class), distinct and
entropy l-diversity of a sensitive column, the highest risk (1 / k), the average risk
(classes / records, ARX's "success rate") and the share of records whose risk is above a
threshold (ARX's "records at risk"). Null is a value like any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import polars as pl

from pacsguard.tables.errors import PolicyError

_SIZE = "__pg_class_size"
_DISTINCT = "__pg_distinct"
_COUNT = "__pg_count"
_ENTROPY = "__pg_entropy"


@dataclass(frozen=True)
class RiskReport:
    quasi_identifiers: tuple[str, ...]
    sensitive: str | None
    threshold: float
    records: int
    classes: int
    k: int
    records_at_risk: float
    highest_risk: float
    average_risk: float
    l_distinct: int | None = None
    l_entropy: float | None = None

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["quasi_identifiers"] = list(self.quasi_identifiers)
        return out


def _keys(quasi_identifiers: Sequence[str]) -> list[pl.Expr]:
    # With no quasi-identifier the whole table is one class.
    return [pl.col(q) for q in quasi_identifiers] or [pl.lit(0).alias("__pg_all")]


def class_sizes(frame: pl.LazyFrame, quasi_identifiers: Sequence[str]) -> pl.LazyFrame:
    return frame.group_by(_keys(quasi_identifiers)).agg(pl.len().alias(_SIZE))


def risk_report(
    frame: pl.LazyFrame | pl.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: str | None = None,
    threshold: float = 0.2,
) -> RiskReport:
    """Risk figures of ``frame`` for ``quasi_identifiers`` (and ``sensitive``).

    Raises ``PolicyError`` for a column the table does not have, a threshold outside
    (0, 1] (a prosecutor risk is a probability) or a sensitive column that is also a
    quasi-identifier."""
    lazy = frame.lazy()
    qis = list(quasi_identifiers)
    check_risk_columns(lazy.collect_schema().names(), qis, sensitive, threshold)
    aggs = [pl.len().alias(_SIZE)]
    if sensitive is not None:
        aggs.append(pl.col(sensitive).n_unique().alias(_DISTINCT))
    classes = lazy.group_by(_keys(qis)).agg(aggs).collect(engine="streaming")
    records = int(classes[_SIZE].sum()) if classes.height else 0
    if records == 0:
        return RiskReport(tuple(qis), sensitive, threshold, 0, 0, 0, 0.0, 0.0, 0.0)
    sizes = classes[_SIZE]
    k = int(sizes.min())  # type: ignore[arg-type]
    at_risk = int(sizes.filter((1.0 / sizes) > threshold).sum())
    l_distinct = l_entropy = None
    if sensitive is not None:
        l_distinct = int(classes[_DISTINCT].min())  # type: ignore[arg-type]
        l_entropy = _entropy_l(lazy, qis, sensitive)
    return RiskReport(
        quasi_identifiers=tuple(qis),
        sensitive=sensitive,
        threshold=threshold,
        records=records,
        classes=classes.height,
        k=k,
        records_at_risk=at_risk / records,
        highest_risk=1.0 / k,
        average_risk=classes.height / records,
        l_distinct=l_distinct,
        l_entropy=l_entropy,
    )


def check_risk_columns(
    columns: Sequence[str], qis: Sequence[str], sensitive: str | None, threshold: float
) -> None:
    """Refuse names the table lacks, with the names it has (headers, never values)."""
    if not 0 < threshold <= 1:
        raise PolicyError(
            f"--threshold {threshold:g} is not a probability: give a prosecutor risk in (0, 1], "
            "e.g. 0.2 (a record is at risk when its class has fewer than 5 records)"
        )
    missing = [name for name in [*qis, sensitive] if name is not None and name not in columns]
    if missing:
        have = ", ".join(repr(c) for c in columns)
        raise PolicyError(
            f"no column {', '.join(map(repr, missing))} in the table; its columns are: {have}"
        )
    if sensitive is not None and sensitive in qis:
        raise PolicyError(f"{sensitive!r} is given both as --qi and as --sensitive; choose one")


def _entropy_l(frame: pl.LazyFrame, qis: list[str], sensitive: str) -> float:
    """min over classes of exp(entropy of the sensitive values in the class)."""
    keys = _keys(qis)
    key_names = qis or ["__pg_all"]
    counts = frame.group_by([*keys, pl.col(sensitive)]).agg(pl.len().alias(_COUNT))
    share = pl.col(_COUNT) / pl.col(_COUNT).sum().over(key_names)
    entropy = (
        counts.with_columns(share.alias("__pg_p"))
        .group_by(key_names)
        .agg((-(pl.col("__pg_p") * pl.col("__pg_p").log())).sum().alias(_ENTROPY))
        .collect(engine="streaming")
    )
    return float(math.exp(float(entropy[_ENTROPY].min())))  # type: ignore[arg-type]


def suppress_small_classes(
    frame: pl.LazyFrame, quasi_identifiers: Sequence[str], k: int
) -> tuple[pl.LazyFrame, int]:
    """``frame`` without the rows of classes smaller than ``k``, and how many rows go."""
    qis = list(quasi_identifiers)
    if not qis:
        return frame, 0
    small = class_sizes(frame, qis).filter(pl.col(_SIZE) < k).collect(engine="streaming")
    removed = int(small[_SIZE].sum()) if small.height else 0
    if removed == 0:
        return frame, 0
    kept = frame.join(
        small.drop(_SIZE).lazy(), on=qis, how="anti", nulls_equal=True, maintain_order="left"
    )
    return kept, removed
