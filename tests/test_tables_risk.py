"""Risk figures against a small example computed by hand (ARX's prosecutor model)."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pacsguard.tables import risk_report
from pacsguard.tables.risk import suppress_small_classes

# Classes on (age, sex): A = 30-39/F (4 rows: a a b c), B = 40-49/M (3 rows: c c d),
# C = 50-59/F (1 row: d).
TABLE = pl.DataFrame(
    {
        "age": ["30-39"] * 4 + ["40-49"] * 3 + ["50-59"],
        "sex": ["F"] * 4 + ["M"] * 3 + ["F"],
        "dx": ["a", "b", "a", "c", "c", "c", "d", "d"],
    }
)


def test_hand_computed_figures() -> None:
    report = risk_report(TABLE, ["age", "sex"], "dx", threshold=0.3)
    assert (report.records, report.classes, report.k) == (8, 3, 1)
    assert report.highest_risk == 1.0  # 1 / smallest class
    assert report.average_risk == pytest.approx(3 / 8)  # classes / records
    # risks: A 1/4, B 1/3, C 1: above 0.3 are B and C, 3 + 1 of 8 records
    assert report.records_at_risk == pytest.approx(4 / 8)
    assert report.l_distinct == 1  # class C has one diagnosis
    assert report.l_entropy == pytest.approx(1.0)  # exp(0)
    stricter = risk_report(TABLE, ["age", "sex"], "dx", threshold=0.5)
    assert stricter.records_at_risk == pytest.approx(1 / 8)


def test_suppression_reaches_k() -> None:
    kept, removed = suppress_small_classes(TABLE.lazy(), ["age", "sex"], 2)
    frame = kept.collect()
    assert removed == 1 and frame.height == 7
    assert frame.equals(TABLE.head(7))  # the order of the remaining rows is kept
    after = risk_report(frame, ["age", "sex"], "dx", threshold=0.3)
    assert after.k == 3 and after.classes == 2
    assert after.average_risk == pytest.approx(2 / 7)
    assert after.records_at_risk == pytest.approx(3 / 7)
    assert after.l_distinct == 2
    entropy_b = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert after.l_entropy == pytest.approx(math.exp(entropy_b))


def test_nulls_form_a_class_and_can_be_suppressed() -> None:
    frame = pl.DataFrame({"q": ["x", "x", None], "s": ["1", "2", "3"]})
    report = risk_report(frame, ["q"], None)
    assert report.k == 1 and report.classes == 2 and report.l_distinct is None
    kept, removed = suppress_small_classes(frame.lazy(), ["q"], 2)
    assert removed == 1 and kept.collect()["q"].to_list() == ["x", "x"]


def test_no_quasi_identifier_means_one_class() -> None:
    report = risk_report(TABLE, [], "dx")
    assert (report.k, report.classes, report.l_distinct) == (8, 1, 4)
    empty = risk_report(TABLE.head(0), ["age"])
    assert (empty.records, empty.k) == (0, 0)
