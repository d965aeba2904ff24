"""Each policy action on small frames: pseudonyms, dates, generalisation."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.tables import parse_policy
from pacsguard.tables.errors import PolicyError
from pacsguard.tables.mapping import Pseudonyms
from pacsguard.tables.transforms import Context, column_expr

KEY = ProjectKey(bytes(range(32)))
PZ = Pseudonymizer(KEY)
TODAY = dt.date(2024, 6, 30)


def apply(frame: pl.DataFrame, columns: dict[str, object], pid: str | None = "IPP") -> pl.DataFrame:
    document: dict[str, object] = {"columns": {c: "keep" for c in frame.columns} | columns}
    if pid:
        document["patient_id_column"] = pid
        document["columns"][pid] = columns.get(pid, "pseudonymise-patient-id")  # type: ignore[index]
    policy = parse_policy(document)
    ctx = Context(policy, frame.schema, Pseudonyms(PZ), TODAY)
    exprs = [column_expr(policy.columns[c], ctx) for c in frame.columns]
    return frame.lazy().select([e for e in exprs if e is not None]).collect()


def test_pseudonyms_are_those_of_the_images() -> None:
    frame = pl.DataFrame(
        {
            "IPP": ["0012345", " 0012345 ", "abc9", None, ""],
            "NDA": ["S1", "S1", "S2", "S3", None],
            "ACC": ["A1", None, "A2", "A3", "A4"],
        }
    )
    out = apply(
        frame,
        {"NDA": {"action": "pseudonymise", "domain": "stay-id"}, "ACC": "pseudonymise-accession"},
    )
    assert out["IPP"].to_list() == [
        PZ.patient_id("0012345"), PZ.patient_id("0012345"), PZ.patient_id("ABC9"), None, None
    ]  # fmt: skip
    assert out["NDA"][0] == PZ.identifier("stay-id", "S1") != PZ.identifier("ins", "S1")
    assert out["ACC"].to_list()[:2] == [PZ.accession("A1"), None]


def test_numeric_patient_ids_keep_their_digits() -> None:
    ints = apply(pl.DataFrame({"IPP": [1234567890, None]}), {})
    floats = apply(pl.DataFrame({"IPP": [1234567890.0, None]}), {})
    assert ints["IPP"][0] == floats["IPP"][0] == PZ.patient_id("1234567890")


def test_shift_date_keeps_each_written_form_and_intervals() -> None:
    frame = pl.DataFrame(
        {
            "IPP": ["P1", "P1", "P2", None],
            "D": ["12/03/2020", "2020-03-22", "2020-03-22 08:30:00", "12/03/2020"],
            "N": [dt.date(2020, 3, 12), dt.date(2020, 3, 22), None, dt.date(2020, 3, 1)],
        }
    )
    out = apply(frame, {"D": "shift-date", "N": "shift-date"})
    p1, p2 = PZ.date_offset_days("P1"), PZ.date_offset_days("P2")
    first = dt.date(2020, 3, 12) + dt.timedelta(p1)
    assert out["D"][0] == first.strftime("%d/%m/%Y")
    assert out["D"][1] == (dt.date(2020, 3, 22) + dt.timedelta(p1)).isoformat()
    shifted = dt.datetime(2020, 3, 22, 8, 30) + dt.timedelta(p2)
    assert out["D"][2] == shifted.strftime("%Y-%m-%d %H:%M:%S")
    assert out["D"][3] is None  # no patient, no offset: the date goes
    assert out["N"].to_list()[:2] == [first, first + dt.timedelta(10)]  # interval kept
    assert out["N"][3] is None


def test_unreadable_dates_are_emptied() -> None:
    out = apply(
        pl.DataFrame({"IPP": ["P1"] * 2, "D": ["bientôt", "31/02/2020"]}), {"D": "shift-date"}
    )
    assert out["D"].to_list() == [None, None]


def test_birth_date_to_year_and_age_band_with_top_code() -> None:
    frame = pl.DataFrame(
        {
            "IPP": ["P"] * 4,
            "DDN": ["01/07/1934", "30/06/1934", "15/05/1980", "2001-01-01"],
            "EXAM": ["2024-06-30"] * 4,
        }
    )
    year = apply(frame, {"DDN": {"action": "generalise-birth-date", "to": "year"}})
    assert year["DDN"].to_list() == ["<=1934", "<=1934", "1980", "2001"]
    band = apply(
        frame,
        {"DDN": {"action": "generalise-birth-date", "to": "age-band", "band": 10,
                 "reference": "EXAM"}},
    )  # fmt: skip
    assert band["DDN"].to_list() == ["80-89", "90+", "40-49", "20-29"]


def test_ages_top_coded() -> None:
    frame = pl.DataFrame({"A": [45, 89, 90, 104, None], "T": ["45", "089Y", "90 ans", "104", None]})
    out = apply(frame, {"A": "generalise-age", "T": "generalise-age"}, pid=None)
    assert out["A"].to_list() == [45, 89, 90, 90, None]  # numeric stays numeric
    assert out["T"].to_list() == ["45", "89", "90+", "90+", None]
    banded = apply(frame, {"A": {"action": "generalise-age", "band": 5}}, pid=None)
    assert banded["A"].to_list() == ["45-49", "85-89", "90+", "90+", None]


def test_postcode_to_departement() -> None:
    frame = pl.DataFrame({"CP": ["69003", "20000", "20200", "97110", "1000", "BS1 4XY", None]})
    out = apply(frame, {"CP": "generalise-postcode"}, pid=None)
    assert out["CP"].to_list() == ["69", "2A", "2B", "971", "01", None, None]
    numeric = apply(pl.DataFrame({"CP": [1000, 75011]}), {"CP": "generalise-postcode"}, pid=None)
    assert numeric["CP"].to_list() == ["01", "75"]


def test_generalise_date_and_redact() -> None:
    frame = pl.DataFrame({"D": ["12/03/2020", None], "X": ["secret", "also"]})
    out = apply(frame, {"D": {"action": "generalise-date", "to": "month"}, "X": "redact"}, None)
    assert out["D"].to_list() == ["2020-03", None]
    assert out["X"].to_list() == [None, None]


def test_shift_date_needs_the_patient_column_in_the_table() -> None:
    policy = parse_policy({"patient_id_column": "IPP", "columns": {
        "IPP": "pseudonymise-patient-id", "D": "shift-date"}})  # fmt: skip
    frame = pl.DataFrame({"D": ["12/03/2020"]})
    ctx = Context(policy, frame.schema, Pseudonyms(PZ), TODAY)
    with pytest.raises(PolicyError, match="needs the patient ID column"):
        column_expr(policy.columns["D"], ctx)
