"""The strict grammar gate, identity gathering and the post-write check, on inputs built to
break them: each case is one class of damage, planted beside the patient's own name."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from conftest import local_test_files
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify, grammar, postcheck
from pacsguard.deid.engine import Transformer
from pacsguard.deid.identity import gather
from pacsguard.sample import AnswerKey

NAME = "ZYGMUNTOWICZ^BRONISLAWA"
FAMILY, GIVEN = b"ZYGMUNTOWICZ", b"BRONISLAWA"


def _ct(corpus: Path) -> Path:
    for path in sorted(corpus.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == "CT" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1":
            return path
    raise AssertionError("no explicit VR CT in the sample corpus")


def _base(corpus: Path, meaning: str = "LIVER") -> Dataset:
    """A sample CT with our patient, and a kept code meaning that may carry the name."""
    ds = pydicom.dcmread(_ct(corpus))
    ds.PatientName = NAME
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "10200004", "SCT", meaning
    ds.AnatomicRegionSequence = Sequence([item])
    return ds


def _save(ds: Dataset, path: Path) -> bytes:
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def _leaks(root: Path) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().upper()
            if FAMILY in data or GIVEN in data:
                hits.append(path)
    return hits


def _run(src: Path, tmp: Path, key: ProjectKey, **config: object) -> tuple[Path, object]:
    out = tmp / "out"
    report = deidentify([src], out, key=key, config=DeidConfig(jobs=1, **config))  # type: ignore[arg-type]
    return out, report


def _reasons(out: Path) -> list[str]:
    import json

    manifest = json.loads((out.with_name(out.name + ".pacsguard") / "manifest.json").read_text())
    return [o["reason"] for o in manifest["outcomes"] if o["status"] == "quarantine"]


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1, old
    return data.replace(old, new, 1)


def test_real_files_shipped_by_pydicom_mostly_pass_the_gate() -> None:
    clean, flagged = 0, []
    for path in local_test_files():
        try:
            with path.open("rb") as handle:
                header, _ = grammar.read_header(handle, path.stat().st_size)
        except grammar.GrammarError:
            flagged.append(path.name)
            continue
        if header.anomalies:
            flagged.append(path.name)
        else:
            clean += 1
    assert clean >= 0.9 * (clean + len(flagged)), flagged
    assert "rtplan_truncated.dcm" in flagged and "badVR.dcm" in flagged


def test_sample_corpus_passes_the_gate(sample_corpus: tuple[Path, AnswerKey]) -> None:
    for path in sorted(sample_corpus[0].rglob("*.dcm")):
        with path.open("rb") as handle:
            header, _ = grammar.read_header(handle, path.stat().st_size)
        assert header.clean, (path.name, header.anomalies)


def test_unknown_tag_in_a_standard_group_is_refused_then_repaired(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    data = _save(_base(sample_corpus[0]), tmp_path / "a.dcm")
    # (0010,0010) PN -> (0010,0011): one byte, and the name rides an unknown tag.
    data = _replace_once(data, b"\x10\x00\x10\x00PN", b"\x10\x00\x11\x00PN")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(data)
    out, _ = _run(src, tmp_path, project_key)
    assert not _leaks(out)
    (reason,) = _reasons(out)
    assert "(0010,0011) is not in the DICOM dictionary" in reason and "--repair" in reason
    repaired = tmp_path / "r"
    report = deidentify(
        [src], repaired / "out", key=project_key, config=DeidConfig(jobs=1, repair=True)
    )
    assert report.output == 1 and not _leaks(repaired / "out")


def test_wrong_vr_on_kept_text_is_refused(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    ds = _base(sample_corpus[0], meaning="ZYGMUNTOWICZ BRONISLAWA")
    data = _save(ds, tmp_path / "a.dcm")
    head = b"\x08\x00\x04\x01LO"  # Code Meaning (0008,0104)
    data = _replace_once(data, head, b"\x08\x00\x04\x01DS")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(data)
    out, _ = _run(src, tmp_path, project_key)
    assert not _leaks(out)
    assert "VR DS on (0008,0104), expected LO" in _reasons(out)[0]


def test_a_length_that_swallows_the_next_elements_is_caught(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    ds = _base(sample_corpus[0])
    data = _save(ds, tmp_path / "a.dcm")
    at = data.index(b"\x08\x00\x60\x00CS")  # Modality, kept by the profile
    length = struct.unpack_from("<H", data, at + 6)[0]
    swallowed = bytearray(data)
    struct.pack_into("<H", swallowed, at + 6, length + 40)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(bytes(swallowed))
    out, _ = _run(src, tmp_path, project_key)
    assert not _leaks(out)
    assert list(out.rglob("*.dcm")) == []
    reason = _reasons(out)[0]
    assert "(0008,0060)" in reason, reason


def test_nul_inside_the_name_is_refused(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    ds = _base(sample_corpus[0], meaning="Bronislawa Zygmuntowicz")
    data = _save(ds, tmp_path / "a.dcm").replace(b"ZYGMUNTOWICZ^", b"ZYGMUNTOWICZ\x00", 1)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(data)
    out, _ = _run(src, tmp_path, project_key)
    assert not _leaks(out)
    assert "control bytes" in _reasons(out)[0]


def test_a_second_pixel_data_is_never_repaired(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    data = _save(_base(sample_corpus[0]), tmp_path / "a.dcm")
    at = data.index(b"\xe0\x7f\x10\x00")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(data + data[at : at + 12 + 64])
    # the copy must parse as an element: give it a length of 64
    broken = bytearray((src / "a.dcm").read_bytes())
    struct.pack_into("<I", broken, len(data) + 8, 64)
    (src / "a.dcm").write_bytes(bytes(broken))
    report = deidentify([src], tmp_path / "o", key=project_key, config=DeidConfig(repair=True))
    assert report.quarantine == 1 and report.output == 0


def test_a_name_in_another_charset_is_gathered(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 126"  # declares Greek
    ds.PatientName = "DUPRÉ^HÉLÈNE"  # but holds Latin-1 (written below as such)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4"
    path = tmp_path / "g.dcm"
    ds.save_as(path, enforce_file_format=False)
    data = path.read_bytes()
    greek = "DUPRÉ^HÉLÈNE".encode("iso8859_7", "replace")
    data = data.replace(greek, "DUPRÉ^HÉLÈNE".encode("latin-1"))
    header = grammar.parse(data, whole=True)
    identity = gather(header)
    assert {"dupre", "helene"} <= identity.names


def test_the_post_write_check_stands_alone(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the engines' own sweep switched off, the independent check still refuses."""
    from pacsguard.deid import rawpath

    ds = _base(sample_corpus[0], meaning="Zygmuntowicz Bronislawa liver")
    src = tmp_path / "src"
    src.mkdir()
    _save(ds, src / "a.dcm")
    monkeypatch.setattr(Transformer, "_sweep", lambda *args, **kwargs: None)
    monkeypatch.setattr(rawpath, "rewrite", lambda *args, **kwargs: None)
    out, _ = _run(src, tmp_path, project_key)
    assert not _leaks(out)
    (reason,) = _reasons(out)
    assert reason.startswith("post-write check: an identifying name") and "(0008,0104)" in reason


def test_the_post_write_check_reads_back_what_the_byte_path_wrote(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The byte-level path's output is checked from the descriptor it was written to
    (not opened again): a rewriter broken to write the input's own header is caught
    there, and the input goes to quarantine, its temporary output gone."""
    import dataclasses

    from pacsguard.deid import rawpath

    ds = _base(sample_corpus[0])
    src = tmp_path / "src"
    src.mkdir()
    _save(ds, src / "a.dcm")
    broken: list[bool] = []
    real = rawpath.rewrite

    def leaky(header: bytes, *args: Any, **kwargs: Any) -> rawpath.RawResult | None:
        result = real(header, *args, **kwargs)
        broken.append(result is not None)
        return None if result is None else dataclasses.replace(result, header=header)

    monkeypatch.setattr(rawpath, "rewrite", leaky)
    out, _ = _run(src, tmp_path, project_key)
    assert broken == [True], "the byte-level path wrote the file"
    assert not _leaks(out) and not list(out.rglob(".tmp-*"))
    (reason,) = _reasons(out)
    assert reason.startswith("post-write check: an identifying ")


def test_post_check_finds_a_name_whatever_the_vr() -> None:
    identity = gather(grammar.parse(_minimal(b"PN", NAME.encode()), whole=True))
    clean = _minimal(b"PN", b"PSEUDONYM^X")
    assert postcheck.check_bytes(clean, identity) is None
    hidden = _minimal(
        b"PN",
        b"PSEUDONYM^X",
        extra=[(0x00090010, b"LO", b"ACME 1.0"), (0x00091010, b"OB", b"\x01\x02ZYGMUNTOWICZ\x00")],
    )
    residue = postcheck.check_bytes(hidden, identity)
    assert isinstance(residue, postcheck.Residue), residue
    assert residue.kind == "name" and residue.tag == 0x00091010


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" "
    group, number = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
        return struct.pack("<HH2s2xI", group, number, vr, len(value)) + value
    return struct.pack("<HH2sH", group, number, vr, len(value)) + value


def _minimal(
    name_vr: bytes, name: bytes, extra: list[tuple[int, bytes, bytes]] | None = None
) -> bytes:
    elements = [
        (0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
        (0x00080018, b"UI", b"1.2.3.4\x00"),
        (0x00100010, name_vr, name),
    ]
    elements += extra or []
    body = b"".join(_element(t, vr, v) for t, vr, v in sorted(elements))
    syntax = _element(0x00020010, b"UI", b"1.2.840.10008.1.2.1\x00")
    return b"\x00" * 128 + b"DICM" + syntax + body


@pytest.mark.parametrize("raw_path", [True, False])
def test_reference_sequences_survive_with_their_uids_remapped(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raw_path: bool,
) -> None:
    from pacsguard.deid import rawpath

    if not raw_path:
        monkeypatch.setattr(rawpath, "rewrite", lambda *args, **kwargs: None)
    ds = _base(sample_corpus[0])
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.5.6"
    ds.SourceImageSequence = Sequence([ref])
    noted = Dataset()
    noted.ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    noted.DerivationDescription = "made from Zygmuntowicz's scan"  # not a reference
    ds.ReferencedImageSequence = Sequence([noted])
    src = tmp_path / "src"
    src.mkdir()
    _save(ds, src / "a.dcm")
    out, _ = _run(src, tmp_path, project_key)
    (written,) = out.rglob("*.dcm")
    result = pydicom.dcmread(written)
    (item,) = result.SourceImageSequence
    assert item.ReferencedSOPInstanceUID.startswith("2.25.")
    assert "ReferencedImageSequence" not in result


def test_the_byte_level_path_cleans_what_the_sweep_finds_as_the_engine_does(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Identity in a kept code meaning no longer sends a file off the byte-level path,
    and that path writes the reference engine's bytes."""
    from pacsguard.deid import rawpath

    src = tmp_path / "src"
    src.mkdir()
    for index, meaning in enumerate(["Zygmuntowicz liver", "LIVER of BRONISLAWA", "liver"]):
        ds = _base(sample_corpus[0], meaning=meaning)
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{index}"
        _save(ds, src / f"{index}.dcm")
    original = rawpath.rewrite
    taken: list[bool] = []

    def counting(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(result is not None)
        return result

    monkeypatch.setattr(rawpath, "rewrite", counting)
    raw = deidentify([src], tmp_path / "raw", key=project_key, config=DeidConfig(jobs=1))
    monkeypatch.setattr(rawpath, "rewrite", lambda *args, **kwargs: None)
    ref = deidentify([src], tmp_path / "ref", key=project_key, config=DeidConfig(jobs=1))
    assert raw.output == ref.output == 3 and taken == [True, True, True]
    for path in (tmp_path / "raw").rglob("*.dcm"):
        twin = tmp_path / "ref" / path.relative_to(tmp_path / "raw")
        assert path.read_bytes() == twin.read_bytes()
    assert not _leaks(tmp_path / "raw")


def test_post_check_skips_placeholders_but_not_other_brackets() -> None:
    identity = gather(grammar.parse(_minimal(b"PN", b"NAME^ZYGMUNTOWICZ"), whole=True))
    creator = (0x00090010, b"LO", b"ACME 1.0")
    placeholder = _minimal(b"PN", b"PSEUDONYM^X", extra=[creator, (0x00091010, b"LO", b"[NAME]")])
    assert postcheck.check_bytes(placeholder, identity) is None
    hidden = _minimal(
        b"PN", b"PSEUDONYM^X", extra=[creator, (0x00091010, b"LO", b"[ZYGMUNTOWICZ]")]
    )
    residue = postcheck.check_bytes(hidden, identity)
    assert isinstance(residue, postcheck.Residue) and residue.tag == 0x00091010


def _plain_search(header: grammar.Header, identity: object) -> bool:
    """The post-write check as a search of the header per needle (the reference)."""
    import re

    extent = header.pixel_offset if header.pixel_offset is not None else len(header.buf)
    data = postcheck._PLACEHOLDER.sub(lambda m: b" " * len(m.group(0)), header.buf[:extent])
    lowered = data.lower()
    return any(
        re.search(n.pattern, data, re.IGNORECASE) is not None
        for n in postcheck.compile_identity(identity)  # type: ignore[arg-type]
        if n.needle in lowered
    )


_TEXT = st.text(alphabet=st.sampled_from("abcdeéèÿZYX0123456789 -'./^_,é"), min_size=1, max_size=24)


@settings(max_examples=300, deadline=None)
@given(name=_TEXT, patient_id=_TEXT, before=_TEXT, after=_TEXT, case=st.booleans())
def test_post_check_word_index_finds_what_a_search_per_needle_finds(
    name: str, patient_id: str, before: str, after: str, case: bool
) -> None:
    """The header's words looked up once, for every needle, give the same verdict as a
    search of the header for each needle: whatever the tokens, surroundings and case."""
    source = _minimal(
        b"PN",
        name.encode("utf-8"),
        extra=[(0x00100020, b"LO", patient_id.encode("utf-8"))],
    )
    identity = gather(grammar.parse(source, whole=True))
    planted = before + (name.upper() if case else name) + after + " " + patient_id
    written = _minimal(
        b"PN", b"PSEUDONYM^X", extra=[(0x00081030, b"LO", planted.encode("utf-8")[:64])]
    )
    header = grammar.parse(written, whole=True)
    expected = _plain_search(header, identity)
    got = postcheck.check_header(header, identity)
    assert isinstance(got, postcheck.Residue) == expected, (name, patient_id, planted)
