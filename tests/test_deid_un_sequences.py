"""A sequence stored as UN of undefined length (PS3.5 6.2.2, CP-246: its items in Implicit
VR Little Endian, whatever the file's syntax) was quarantined as "truncated": the
structural check walked its items as explicit VR. pydicom's own UN_sequence.dcm too."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from conftest import local_test_files
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.structure import is_complete

PROCEDURE_CODES = b"\x08\x00\x32\x10"  # (0008,1032) Procedure Code Sequence


def _with_un_sequence(meaning: str) -> bytes:
    ds = pydicom.dcmread(local_test_files("CT_small.dcm")[0])
    ds.PatientName = "ZQXWOMBAT^JOHN"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-1", "SRT", meaning
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, code)
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body.getvalue() + b"\xfe\xff\x0d\xe0\0\0\0\0"
    element = PROCEDURE_CODES + b"UN\0\0" + struct.pack("<I", 0xFFFFFFFF) + item
    element += b"\xfe\xff\xdd\xe0\0\0\0\0"
    out = DicomBytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    at = data.index(b"\x08\x00\x90\x10")  # (0008,1090) follows (0008,1032)
    return data[:at] + element + data[at:]


def test_the_structural_check_reads_its_items_as_implicit_vr() -> None:
    data = _with_un_sequence("Chest")
    assert is_complete(data, implicit=False)
    assert not is_complete(data[:-1], implicit=False)
    assert not is_complete(data[: data.index(b"\xfe\xff\xdd\xe0") - 3], implicit=False)


@pytest.mark.parametrize("meaning", ["Chest", "ZQXWOMBAT JOHN"])
def test_the_file_is_de_identified_not_quarantined(
    tmp_path: Path, project_key: ProjectKey, meaning: str
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.dcm").write_bytes(_with_un_sequence(meaning))
    shutil.copy(local_test_files("UN_sequence.dcm")[0], tmp_path / "in" / "pydicom.dcm")
    state = tmp_path / "state"
    deidentify(
        [tmp_path / "in"], tmp_path / "out", key=project_key,
        config=DeidConfig(jobs=1, state_dir=state, quarantine_dir=tmp_path / "q"),
    )  # fmt: skip
    outcomes = {
        Path(o["input"]).name: (o["status"], o["reason"])
        for o in json.loads((state / "manifest.json").read_text())["outcomes"]
    }
    assert outcomes["x.dcm"] == ("output", None)
    # pydicom's file names no instance (no SOP Instance UID): quarantined for that only
    assert outcomes["pydicom.dcm"] == ("quarantine", "no SOP Instance UID: cannot name the output")
    for written in (tmp_path / "out").rglob("*.dcm"):
        assert b"ZQXWOMBAT" not in written.read_bytes().upper()


def test_a_reason_names_no_text_of_the_file_as_a_tag(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    """Text read where a tag was expected was printed as one: "(515A,5758)" is "ZQXW"."""
    from pacsguard.deid.grammar import tag_text

    assert tag_text(0x515A5758) == "(text where a tag was expected)"
    assert tag_text(0x00100010) == "(0010,0010)"
    assert tag_text(0x70531010) == "(7053,1010)"  # a private tag
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "note.dcm").write_bytes(b"ZQXWOMBAT JOHN MRN84736251\n" * 4)
    state = tmp_path / "state"
    deidentify(
        [tmp_path / "in"], tmp_path / "out", key=project_key,
        config=DeidConfig(jobs=1, state_dir=state, quarantine_dir=tmp_path / "q"),
    )  # fmt: skip
    (outcome,) = json.loads((state / "manifest.json").read_text())["outcomes"]
    assert outcome["status"] == "quarantine"
    assert "515A" not in outcome["reason"] and "5A51" not in outcome["reason"]
