"""Sanity checks on the PS3.15 Table E.3.10-1 (Safe Private Attributes) data file."""

import json
import re
from pathlib import Path

import pytest
from pydicom.valuerep import VR

DATA = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "pacsguard"
    / "deid"
    / "profile"
    / "safe-private.json"
)
KEYS = {"creator", "group", "element", "vr", "vm", "meaning"}

# Rows the standard publishes without a VR (kept as in the table).
BLANK_VR = {
    ("SIEMENS Ultrasound SC2000", "0119", "11"),
    ("SIEMENS Ultrasound SC2000", "0119", "12"),
    ("SIEMENS Ultrasound SC2000", "0129", "03"),
    ("SIEMENS Ultrasound SC2000", "0129", "04"),
    ("SIEMENS Ultrasound SC2000", "0129", "05"),
}


@pytest.fixture(scope="module")
def entries():
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    assert "E.3.10-1" in doc["source"]
    assert doc["entries"]
    return doc["entries"]


def _key(entry):
    return (entry["creator"], entry["group"], entry["element"])


def test_every_entry_has_exactly_the_six_keys(entries):
    for entry in entries:
        assert set(entry) == KEYS, entry
        assert all(isinstance(value, str) for value in entry.values()), entry
        assert entry["creator"], entry


def test_group_is_odd_four_upper_hex(entries):
    for entry in entries:
        assert re.fullmatch(r"[0-9A-F]{4}", entry["group"]), entry
        assert int(entry["group"], 16) % 2 == 1, entry


def test_element_is_two_upper_hex(entries):
    for entry in entries:
        assert re.fullmatch(r"[0-9A-F]{2}", entry["element"]), entry


def test_vr_is_a_dicom_vr(entries):
    blank = set()
    for entry in entries:
        if entry["vr"] == "":
            blank.add(_key(entry))
            continue
        # The table writes alternatives as "OW/OB"; each part must be a VR.
        for part in entry["vr"].split("/"):
            VR(part)
    assert blank == BLANK_VR


def test_no_duplicate_creator_group_element(entries):
    keys = [_key(entry) for entry in entries]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("creator", "group", "element", "vr"),
    [
        ("GEMS_ACQU_01", "0019", "23", "DS"),
        ("Philips PET Private Group", "7053", "00", "DS"),
        ("ELSCINT1", "00E1", "21", "DS"),
    ],
)
def test_known_rows_present(entries, creator, group, element, vr):
    found = [entry for entry in entries if _key(entry) == (creator, group, element)]
    assert len(found) == 1
    assert found[0]["vr"] == vr
