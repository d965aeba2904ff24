"""A standard attribute sent with VR UN means what its dictionary VR says.

Found by a campaign on real files: a sequence that Table E.1-1 does not list, encoded as UN
(CP-246 allows it: a sender whose dictionary lacks the attribute), was judged as "UN", kept,
and copied byte for byte, with the comments, dates and UIDs of its items; the same content
as SQ was cleaned. pydicom's own ``rtdose_rle.dcm`` kept its Referenced SOP Instance UID so.
Now every rule, the walk and the sweep see such an element as its dictionary VR, and an
element of a public tag that no dictionary knows, sent as UN, is removed: nothing can read it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.sequence import Sequence

from conftest import local_test_files
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify

RADIOPHARMACEUTICAL = 0x00540016  # a sequence Table E.1-1 does not list
UNKNOWN_PUBLIC = 0x00421234  # an even group's element no dictionary knows
SECRET = "ZQXSECRET wife of the mayor"
SOURCE_UID = "1.2.3.4.5.6.7.8.9.424242"


def _item(comment: str = SECRET) -> Dataset:
    item = Dataset()
    item.ContentDate = "19650312"
    item.ReferencedSOPInstanceUID = SOURCE_UID
    item.PatientComments = comment
    return item


def _as_un(tag: int, value: bytes) -> tuple[int, bytes]:
    return tag, struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, b"UN", len(value)) + value


def _write(path: Path, extra: list[tuple[int, bytes]], sq: bool = False) -> None:
    """CT_small with ``extra`` elements (tag, encoded bytes) placed in tag order."""
    ds = pydicom.dcmread(local_test_files("CT_small.dcm")[0])
    if sq:
        ds.add_new(RADIOPHARMACEUTICAL, "SQ", Sequence([_item()]))
        ds.save_as(path, enforce_file_format=True)
        return
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    pending = sorted(extra)
    for element in ds:
        while pending and pending[0][0] < int(element.tag):
            body.write(pending.pop(0)[1])
        write_data_element(body, element)
    for _, encoded in pending:
        body.write(encoded)
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    path.write_bytes(b"\0" * 128 + b"DICM" + meta.getvalue() + body.getvalue())


def _un_sequence(items: list[Dataset]) -> bytes:
    """The items as CP-246 says a UN sequence holds them: Implicit VR Little Endian."""
    out = b""
    for item in items:
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, True
        write_dataset(buf, item)
        out += struct.pack("<HHI", 0xFFFE, 0xE000, len(buf.getvalue())) + buf.getvalue()
    return out


def _run(tmp_path: Path, key: ProjectKey, name: str) -> Dataset:
    deidentify(
        [tmp_path / name], tmp_path / f"{name}-out", key=key,
        config=DeidConfig(jobs=1, state_dir=tmp_path / f"{name}-state",
                          quarantine_dir=tmp_path / f"{name}-q"),
    )  # fmt: skip
    (written,) = (tmp_path / f"{name}-out").rglob("*.dcm")
    assert SECRET.encode() not in written.read_bytes()
    assert SOURCE_UID.encode() not in written.read_bytes()
    assert b"19650312" not in written.read_bytes()
    return pydicom.dcmread(written)


@pytest.mark.parametrize("padding", [0, 70_000], ids=["small", "over-64KiB"])
def test_a_sequence_sent_as_un_is_cleaned_as_the_same_sequence_sent_as_sq(
    tmp_path: Path, project_key: ProjectKey, padding: int
) -> None:
    """pydicom reads a UN of a known tag as its dictionary VR only under 64 KiB: above, the
    engine reads it so itself."""
    (tmp_path / "sq").mkdir()
    (tmp_path / "un").mkdir()
    _write(tmp_path / "sq" / "x.dcm", [], sq=True)
    item = _item()
    if padding:
        item.ImageComments = "x" * padding  # removed by the profile as the comments are
    _write(tmp_path / "un" / "x.dcm", [_as_un(RADIOPHARMACEUTICAL, _un_sequence([item]))])
    from_sq, from_un = _run(tmp_path, project_key, "sq"), _run(tmp_path, project_key, "un")
    (cleaned,) = from_un[RADIOPHARMACEUTICAL].value
    assert from_un[RADIOPHARMACEUTICAL].VR == "SQ"
    assert "PatientComments" not in cleaned and "ImageComments" not in cleaned
    assert cleaned == from_sq[RADIOPHARMACEUTICAL].value[0]


def test_a_standard_text_attribute_sent_as_un_is_judged_as_its_vr(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    (tmp_path / "un").mkdir()
    # Patient Comments (X in the profile), and Multi-frame Source SOP Instance UID: no row of
    # the profile names it, so it is replaced for its VR (UI) alone
    comment = _as_un(0x00104000, SECRET.encode() + b" ")
    uid = _as_un(0x00081167, SOURCE_UID.encode())
    _write(tmp_path / "un" / "x.dcm", [comment, uid])
    out = _run(tmp_path, project_key, "un")
    assert "PatientComments" not in out
    assert str(out.MultiFrameSourceSOPInstanceUID).startswith("2.25.")


def test_an_unknown_public_attribute_sent_as_un_is_quarantined_or_removed(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    """A run quarantines the file, with a reason that names the tag (``--repair`` drops the
    element); the engine itself, as the library and the gateway call it, removes it."""
    import json

    from pacsguard.core.pseudonym import Pseudonymizer
    from pacsguard.deid.engine import Transformer
    from pacsguard.deid.plan import Rules

    (tmp_path / "un").mkdir()
    _write(tmp_path / "un" / "x.dcm", [_as_un(UNKNOWN_PUBLIC, SECRET.encode() + b" ")])
    deidentify(
        [tmp_path / "un"], tmp_path / "out", key=project_key,
        config=DeidConfig(jobs=1, state_dir=tmp_path / "state", quarantine_dir=tmp_path / "q"),
    )  # fmt: skip
    (outcome,) = json.loads((tmp_path / "state" / "manifest.json").read_text())["outcomes"]
    assert outcome["status"] == "quarantine" and "(0042,1234)" in outcome["reason"]
    assert "ZQX" not in outcome["reason"]
    ds = pydicom.dcmread(tmp_path / "un" / "x.dcm")
    Transformer(Rules(), Pseudonymizer(project_key)).transform(ds)
    assert UNKNOWN_PUBLIC not in ds


def test_pydicoms_rtdose_rle_loses_its_plan_reference_uid(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    """Its Referenced RT Plan Sequence (300C,0002) is encoded as UN."""
    source = local_test_files("rtdose_rle.dcm")[0]
    raw = pydicom.dcmread(source).get_item(0x300C0002)
    assert raw is not None and raw.VR == "UN"
    (referenced,) = pydicom.dcmread(source).ReferencedRTPlanSequence
    original = str(referenced.ReferencedSOPInstanceUID)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.dcm").write_bytes(source.read_bytes())
    deidentify(
        [tmp_path / "in"], tmp_path / "out", key=project_key,
        config=DeidConfig(jobs=1, state_dir=tmp_path / "state", quarantine_dir=tmp_path / "q"),
    )  # fmt: skip
    (written,) = (tmp_path / "out").rglob("*.dcm")
    assert original.encode() not in written.read_bytes()
    (cleaned,) = pydicom.dcmread(written).ReferencedRTPlanSequence
    assert str(cleaned.ReferencedSOPInstanceUID).startswith("2.25.")


def test_the_byte_path_leaves_a_standard_attribute_sent_as_un_to_the_engine(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    """The byte path copied a kept UN element as it was: it declines, so that the one
    engine decodes it."""
    import pacsguard.deid.pipeline  # noqa: F401  (pydicom settings of a real run)
    from pacsguard.core.pseudonym import Pseudonymizer
    from pacsguard.deid import rawpath
    from pacsguard.deid.engine import Transformer
    from pacsguard.deid.plan import Rules

    path = tmp_path / "x.dcm"
    _write(path, [_as_un(RADIOPHARMACEUTICAL, _un_sequence([_item()]))])
    data = path.read_bytes()
    header = data[: data.find(b"\xe0\x7f\x10\x00")]
    with pytest.raises(rawpath.Declined, match="sent as UN"):
        rawpath.attempt(header, Transformer(Rules(), Pseudonymizer(project_key)))
