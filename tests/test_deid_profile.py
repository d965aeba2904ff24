"""Every row of PS3.15 Table E.1-1, under the Basic Profile and under each option.

A dataset carrying every attribute of the table is de-identified, and each attribute is
checked against the meaning of the action code in force (Table E.1-1a).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid.dates import shift_da
from pacsguard.deid.engine import MARKER_TAGS, Transformer
from pacsguard.deid.options import TABLE_OPTIONS
from pacsguard.deid.plan import Rules, resolve_combined, row_code
from pacsguard.deid.profile import ProfileRow, load_iod_types, load_table

CT = "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.33"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "standard"
PSEUDONYMS = {0x00100020, 0x00100010, 0x00080050}
TEXT = "Seen by Dr Martin"
DATE = "20200115"
SAMPLE_BY_VR: dict[str, object] = {
    "AE": "STATION1",
    "AS": "045Y",
    "AT": 0x00100010,
    "CS": "VALUE1",
    "DA": DATE,
    "DS": "1.5",
    "DT": DATE + "101500",
    "FD": 1.5,
    "FL": 1.5,
    "IS": "7",
    "LO": TEXT,
    "LT": TEXT,
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "OF": b"\x00\x00\x80\x3f",
    "PN": "SMITH^ALICE",
    "SH": "SHORT 1",
    "SL": 5,
    "SS": 5,
    "ST": TEXT,
    "SV": 5,
    "TM": "101500",
    "UC": TEXT,
    "UI": "1.2.3.4.5.6",
    "UL": 5,
    "UN": b"\x01\x02",
    "UR": "http://example.org/x",
    "US": 5,
    "UT": TEXT,
    "UV": 5,
}


def sample_value(tag: int, vr: str) -> object:
    """A value valid for the VR and unique to the attribute (so no two look alike)."""
    unique = f"{tag:08X}"
    if vr in ("LO", "LT", "ST", "UT", "UC"):
        return f"{TEXT} {unique}"
    if vr == "SH":
        return f"S{unique}"
    if vr == "PN":
        return f"P{unique}^Q{unique}"
    if vr == "DA":
        return shift_da(DATE, tag % 3650)
    if vr == "DT":
        return f"{shift_da(DATE, tag % 3650)}101500"
    if vr == "UI":
        return f"1.2.3.{tag}"
    return SAMPLE_BY_VR[vr]


def vr_of(tag: int) -> str:
    return dictionary_VR(tag).split(" or ")[0]


def tag_of(row: ProfileRow) -> int:
    if row.tag.startswith("60xx"):
        return 0x60000000 | int(row.tag[4:], 16)
    if row.tag.startswith("50xx"):
        return 0x50000010  # Curve Dimensions: a member of the repeating curve group
    return int(row.tag, 16)


def standard_rows() -> list[ProfileRow]:
    """Rows of dataset attributes (File Meta rows are checked on the rebuilt meta)."""
    return [r for r in load_table().rows if r.tag != "private" and not r.tag.startswith("0002")]


def carrying_dataset(sop_class: str) -> Dataset:
    """One dataset holding every standard attribute of Table E.1-1."""
    ds = Dataset()
    for row in standard_rows():
        tag = tag_of(row)
        vr = vr_of(tag)
        if vr == "SQ":
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "99X", "code"
            ds.add_new(tag, vr, Sequence([item]))
        else:
            ds.add_new(tag, vr, sample_value(tag, vr))
    ds.SOPClassUID = sop_class
    ds.PatientID = "PAT-0001"
    ds.PatientName = "DUPONT^JEAN"
    ds.add_new(0x00091010, "LO", "ACME 1.0")  # private creator
    ds.add_new(0x00091010 & 0xFFFF0000 | 0x0010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "private text")
    return ds


def expected_code(row: ProfileRow, options: frozenset[str], types: dict[int, str] | None) -> str:
    code, _ = row_code(row, options)
    return resolve_combined(code, tag_of(row), types, depth=0)


def is_empty(value: object) -> bool:
    return value is None or value == "" or value == [] or len(value) == 0  # type: ignore[arg-type]


OPTION_SETS = [frozenset()] + [frozenset({o}) for o in TABLE_OPTIONS]


@pytest.mark.parametrize("sop_class", [CT, SR])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda s: "+".join(sorted(s)) or "basic")
def test_every_row_follows_its_action(
    options: frozenset[str], sop_class: str, project_key: ProjectKey
) -> None:
    source = carrying_dataset(sop_class)
    pseudo = Pseudonymizer(project_key)
    out = Transformer(Rules(options=options), pseudo).transform(copy.deepcopy(source)).dataset
    types = load_iod_types()[sop_class]
    offset = pseudo.date_offset_days("PAT-0001")
    checked = 0
    for row in standard_rows():
        tag = tag_of(row)
        if tag in MARKER_TAGS:
            continue
        vr, original = vr_of(tag), source[tag].value
        code = expected_code(row, options, types)
        where = f"{row.name} {row.tag} code {code}"
        if tag in PSEUDONYMS:
            assert out[tag].value not in ("", None) and str(out[tag].value) != str(original), where
        elif code == "X":
            assert tag not in out, where
        elif code == "Z":
            assert tag in out and is_empty(out[tag].value), where
        elif code == "D":
            assert tag in out and not is_empty(out[tag].value), where
            if vr != "SQ":
                assert out[tag].value != original, where
        elif code == "U":
            assert tag in out, where
            if vr == "UI":
                assert str(out[tag].value).startswith("2.25."), where
        elif code == "K":
            assert tag in out, where
            if vr != "SQ":
                assert out[tag].value == original, where
        elif code == "C":
            assert tag in out or (tag >> 16) & 0xFF00 == 0x6000, where
            if vr == "DA" and "retain-long-modified-dates" in options:
                assert out[tag].value == shift_da(str(original), offset), where
            elif vr in ("LO", "LT", "ST", "UT", "UC") and "clean-descriptors" in options:
                assert out[tag].value == f"Seen by [NAME] {tag:08X}", where
        else:
            raise AssertionError(f"unexpected code {code} for {where}")
        checked += 1
    assert checked >= 600
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert 0x00091001 not in out and 0x00090010 not in out


def test_combined_codes_follow_the_iod_type() -> None:
    ct, sr = load_iod_types()[CT], load_iod_types()[SR]
    assert resolve_combined("Z/D", 0x00080023, ct, 0) == "Z"  # Content Date, Type 2C in CT
    assert resolve_combined("Z/D", 0x00080023, sr, 0) == "D"  # Type 1 in SR documents
    assert resolve_combined("X/Z/D", 0x00080080, ct, 0) == "X"  # Institution Name, Type 3
    assert resolve_combined("X/Z", 0x00080022, ct, 0) == "X"  # Acquisition Date, Type 3
    assert resolve_combined("X/Z/D", 0x00181000, None, 0) == "D"  # unknown IOD: conformant
    assert resolve_combined("X/Z/U*", 0x00081140, ct, 1) == "U"  # nested: conformant
    assert resolve_combined("X/Z", 0x00400555, ct, 0) == "X"  # not in the CT IOD at all


@pytest.mark.skipif(not SHARED.exists(), reason="the shared copy of the standard is absent")
def test_packaged_table_matches_the_standard() -> None:
    source = json.loads((SHARED / "confidentiality_profile_attributes.json").read_text())
    table = load_table()
    assert len(table.rows) == len(source) == 621
    by_name = {row.name: row for row in table.rows}
    for raw in source:
        row = by_name[raw["name"]]
        assert row.basic == raw["basicProfile"], raw["name"]
        assert row.in_std_iod == (raw["stdCompIOD"] == "Y")


def test_markers_name_the_profile_and_options(project_key: ProjectKey) -> None:
    ds = carrying_dataset(CT)
    options = frozenset({"retain-long-modified-dates", "clean-descriptors"})
    out = Transformer(Rules(options=options), Pseudonymizer(project_key)).transform(ds).dataset
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113105"}
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert UID(out.file_meta.MediaStorageSOPInstanceUID) == out.SOPInstanceUID
