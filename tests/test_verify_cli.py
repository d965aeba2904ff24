"""``pacsguard verify``: exit codes, JSON and HTML reports, values only with --show-phi."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pacsguard.cli import main
from test_pack_support import write_dicom


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["pacsguard", "verify", *args])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "out"
    write_dicom(root / "a" / "1.dcm", 1)
    write_dicom(root / "a" / "2.dcm", 2)
    return root


def test_clean_tree_exits_zero(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    assert run(monkeypatch, str(tree), "--json", str(report)) == 0
    assert "clean" in capsys.readouterr().out
    doc = json.loads(report.read_text())
    assert doc["clean"] is True and doc["files_checked"] == 2 and doc["findings"] == []
    assert str(tmp_path) not in report.read_text()


def plant(tree: Path) -> None:
    import pydicom

    path = tree / "a" / "1.dcm"
    ds = pydicom.dcmread(path)
    ds.ImageComments = "Madame Jeanne DUPONT, tel 06 12 34 56 78"
    ds.save_as(path, enforce_file_format=True)


def test_findings_exit_one_and_hide_values(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(tree)
    json_out, html_out = tmp_path / "r.json", tmp_path / "r.html"
    code = run(monkeypatch, str(tree), "--no-ocr", "--json", str(json_out), "--html", str(html_out))
    assert code == 1
    printed = capsys.readouterr().out
    assert "person-name" in printed and "phone" in printed
    for text in (printed, json_out.read_text(), html_out.read_text()):
        assert "DUPONT" not in text and "06 12 34 56 78" not in text
    doc = json.loads(json_out.read_text())
    assert doc["clean"] is False and doc["values_shown"] is False
    assert {f["file"] for f in doc["findings"]} == {"a/1.dcm"}
    assert all("value" not in f for f in doc["findings"])
    page = html_out.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page
    assert (json_out.stat().st_mode & 0o777) == 0o644


def test_show_phi_shows_values_in_private_reports(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(tree)
    json_out, html_out = tmp_path / "r.json", tmp_path / "r.html"
    args = ("--no-ocr", "--show-phi", "--json", str(json_out), "--html", str(html_out))
    assert run(monkeypatch, str(tree), *args) == 1
    assert "Madame Jeanne" in capsys.readouterr().out
    assert "06 12 34 56 78" in json_out.read_text() and "Jeanne" in html_out.read_text()
    assert (json_out.stat().st_mode & 0o777) == 0o600


def test_usage_errors_exit_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(monkeypatch, str(tmp_path / "missing")) == 2
    assert run(monkeypatch, str(tmp_path), "--mapping", str(tmp_path / "none.csv")) == 2
    assert run(monkeypatch, str(tmp_path), "--no-such-option") == 2


def test_zip_archives_are_verified_member_by_member(tree: Path, tmp_path: Path) -> None:
    import zipfile

    from pacsguard.verify import verify

    plant(tree)
    archive = tmp_path / "out.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(tree.rglob("*.dcm")):
            bundle.write(path, path.relative_to(tree).as_posix())
    report = verify(archive, ocr=False)
    assert report.files_checked == 2
    assert {f.file for f in report.findings} == {"out.zip!a/1.dcm"}


def test_review_findings_pass_unless_strict(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pydicom

    path = tree / "a" / "1.dcm"
    ds = pydicom.dcmread(path)
    ds.PatientComments = "free text, nothing identifying"
    ds.save_as(path, enforce_file_format=True)
    report = tmp_path / "r.json"
    assert run(monkeypatch, str(tree), "--no-ocr", "--json", str(report)) == 0
    assert "1 review (text-not-allowed 1)" in capsys.readouterr().out
    doc = json.loads(report.read_text())
    assert doc["clean"] is True and doc["counts_by_class"]["review"] == {"text-not-allowed": 1}
    finding = doc["findings"][0]
    assert finding["class"] == "review" and finding["reason"] and finding["fix"]
    assert run(monkeypatch, str(tree), "--no-ocr", "--strict") == 1


def test_pack_refuses_identifiers_not_review_findings(tree: Path) -> None:
    import pydicom

    from pacsguard.pack.preflight import run_verify

    path = tree / "a" / "1.dcm"
    ds = pydicom.dcmread(path)
    ds.PatientComments = "free text, nothing identifying"
    ds.save_as(path, enforce_file_format=True)
    assert run_verify(tree, ocr=False) == []  # a review finding: pack may send
    plant(tree)
    problems = run_verify(tree, ocr=False)
    assert problems and "person-name" in problems[0]


def test_a_folder_without_dicom_is_an_error_not_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing read is nothing proven: exit 2 with one line, never "clean"."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here\n")
    for folder in ("empty", "notes"):
        assert run(monkeypatch, str(tmp_path / folder)) == 2
        captured = capsys.readouterr()
        assert "clean" not in captured.out
        assert "no DICOM file found" in captured.err and "Traceback" not in captured.err
