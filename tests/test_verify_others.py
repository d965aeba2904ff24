"""verify reads more than DICOM headers: file and folder names, files that are not DICOM,
UTF-16 text in private blobs and encapsulated documents. Each of these passed a tree that
named its patient ("5 other file(s) skipped — passes")."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from pacsguard.cli import main
from pacsguard.verify import verify
from pacsguard.verify.others import as_text, name_findings
from pacsguard.verify.policy import Policy
from test_pack_support import write_dicom

IDENTITY = "Madame Jeanne DUPONT, née le 14/04/1974, tel 06 12 34 56 78"


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    write_dicom(root / "PGAF5VOAGIJZ4DHYJY" / "2.25.1234" / "2.25.98765.dcm", 1)
    return root


def _kinds(root: Path) -> dict[str, set[str]]:
    report = verify(root, ocr=False, ner=False)
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.file, set()).add(f"{finding.finding_class}:{finding.kind}")
    return found


def test_a_tree_as_deid_writes_it_is_clean(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "pacsguard-deid.json").write_text('{"outputs": {"a": "0612345678" }}')
    assert _kinds(root) == {}


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "meta.json", "list.csv", "README"],
)
def test_text_files_are_read_line_by_line(tmp_path: Path, name: str) -> None:
    root = _tree(tmp_path)
    (root / name).write_text(f"export\n{IDENTITY}\n", encoding="utf-8")
    kinds = _kinds(root)[name]
    assert "identifier:phone" in kinds and "identifier:person-name" in kinds


def test_utf16_and_latin1_text_files_are_read(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "a.txt").write_bytes(IDENTITY.encode("utf-16"))
    (root / "b.txt").write_bytes(IDENTITY.encode("latin-1"))
    kinds = _kinds(root)
    assert "identifier:phone" in kinds["a.txt"] and "identifier:phone" in kinds["b.txt"]


def test_a_file_that_is_neither_dicom_nor_text_is_reviewed(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "extra.dcm.gz").write_bytes(gzip.compress(IDENTITY.encode()))
    assert _kinds(root) == {"extra.dcm.gz": {"review:not-checked"}}


def test_identifiers_in_file_and_folder_names(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    folder = root / "DUPONT Jeanne née le 14-04-1974"
    write_dicom(folder / "tel_0612345678.dcm", 2)
    kinds = _kinds(root)
    (found,) = kinds.values()
    assert "identifier:phone" in found


def test_uids_and_pseudonyms_in_paths_are_not_text() -> None:
    policy = Policy.from_options()
    for name in (
        "PGAF5VOAGIJZ4DHYJY/2.25.268019723437948876023285522133629953759/2.25.1.dcm",
        "1.2.840.113619.2.274045997629788.1/IM0001.dcm",
        "pacsguard-deid.json",
        "archive.zip!PGAF5VOAGIJZ4DHYJY/2.25.1.dcm",
    ):
        assert name_findings(name, None, policy) == [], name


def test_what_is_text() -> None:
    assert as_text("é".encode("utf-16")) == "é"
    assert as_text(b"plain\r\ntext\t1\n") == "plain\r\ntext\t1\n"
    assert as_text("Hélène".encode("latin-1")) == "Hélène"
    assert as_text(b"\x1f\x8b\x08\x00binary") is None


def _with_blob(root: Path, tag: int, vr: str, value: bytes) -> None:
    path = next(root.rglob("*.dcm"))
    ds = pydicom.dcmread(path)
    if tag >> 16 & 1:
        ds.add_new(tag & 0xFFFF0000 | 0x0010, "LO", "ACME 1.0")
    ds.add_new(tag, vr, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_text_in_a_private_blob_is_read(tmp_path: Path, codec: str) -> None:
    root = _tree(tmp_path)
    _with_blob(root, 0x00111001, "OB", b"\x01\x02" + IDENTITY.encode(codec) + b"\x00\x00")
    (found,) = _kinds(root).values()
    assert "identifier:phone" in found


def test_an_encapsulated_document_is_read(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    cda = f"<?xml version='1.0'?><ClinicalDocument><name>{IDENTITY}</name></ClinicalDocument>"
    _with_blob(root, 0x00420011, "OB", cda.encode())
    (found,) = _kinds(root).values()
    assert "identifier:phone" in found


def test_sixteen_bit_numbers_are_not_text() -> None:
    from pacsguard.verify.elements import _binary_text

    ds = Dataset()
    samples = bytes(b for value in range(40, 120) for b in (value, 0))  # 16-bit LE ramp
    ds.add_new(0x00111001, "OB", samples)
    assert _binary_text(ds[0x00111001]) == []


def test_the_summary_says_what_was_done_with_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    (root / "notes.txt").write_text("CT thorax sans injection\n")
    monkeypatch.setattr(sys, "argv", ["pacsguard", "verify", str(root), "--no-ocr"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    assert "1 other file(s) read as text or reviewed" in capsys.readouterr().out


def test_a_large_file_that_is_not_dicom_is_reviewed_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacsguard.verify import scan

    monkeypatch.setattr(scan, "MAX_TEXT", 64)
    root = _tree(tmp_path)
    (root / "big.txt").write_text("CT thorax sans injection. " * 10)
    assert _kinds(root) == {"big.txt": {"review:not-checked"}}


def test_a_zipped_tree_is_verified_under_its_own_manifest(tmp_path: Path) -> None:
    """Zipped, a tree ignored the options of its pacsguard-deid.json: another verdict."""
    import json
    import zipfile

    from pacsguard.verify.scan import deid_options

    root = _tree(tmp_path)
    manifest = {"profile": {"options": ["retain-uids", "retain-device-identity"]}}
    (root / "pacsguard-deid.json").write_text(json.dumps(manifest))
    archive = tmp_path / "tree.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in root.rglob("*"):
            zipped.write(path, path.relative_to(root).as_posix())
    assert deid_options(archive) == deid_options(root) == ["retain-uids", "retain-device-identity"]
    assert _kinds(archive) == {}  # its manifest is not read as text either


def test_text_that_starts_like_a_dicom_tag_is_read_as_text(tmp_path: Path) -> None:
    """ "PRESCOTT …" parsed as tags without a preamble: "unreadable (NotImplementedError)"."""
    root = _tree(tmp_path)
    (root / "a.txt").write_text("PRESCOTT Margaret 0612345678\n")
    assert "identifier:phone" in _kinds(root)["a.txt"]
