"""verify on real outputs: de-identified sample corpus passes; every injected identifier
(header, nested sequence, private tag, free text, pixels) is found; unreadable files fail."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.pixels import clean_pixels, needs_pixel_cleaning
from pacsguard.sample import AnswerKey
from pacsguard.verify import Finding, KnownValues, verify, verify_dataset
from test_pixels_support import burn

NIR = "1 85 05 78 006 084 91"


@pytest.fixture(scope="module")
def deid_tree(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    """The sample corpus de-identified under the Basic Profile, burned-in pixels kept as
    they are (so that verify has them to find), and its mapping CSV."""
    root = tmp_path_factory.mktemp("verify")
    mapping = root / "mapping.csv"
    config = DeidConfig(jobs=1, mapping_out=mapping, burned_in="keep")
    report = deidentify([sample_corpus[0]], root / "out", key=project_key, config=config)
    assert report.quarantine == 0
    return root / "out", mapping


@pytest.fixture(scope="module")
def cleaned_tree(deid_tree: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One patient's outputs, the images at risk passed through clean_pixels."""
    out, _ = deid_tree
    patient = sorted(p for p in out.iterdir() if p.is_dir())[0]
    target = tmp_path_factory.mktemp("cleaned") / patient.name
    shutil.copytree(patient, target)
    cleaned = 0
    for path in sorted(target.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if needs_pixel_cleaning(ds):
            clean_pixels(ds)
            ds.save_as(path, enforce_file_format=True)
            cleaned += 1
    assert cleaned >= 2
    return target


def mapping_value(mapping: Path, kind: str) -> str:
    with mapping.open(encoding="utf-8", newline="") as handle:
        return next(row["original"] for row in csv.DictReader(handle) if row["kind"] == kind)


def test_clean_headers_give_no_finding(deid_tree: tuple[Path, Path]) -> None:
    out, mapping = deid_tree
    report = verify(out, ocr=False)
    assert report.clean, [f.describe() for f in report.findings[:5]]
    assert report.files_checked > 20 and report.files_skipped == 0  # its manifest is not one
    assert verify(out, ocr=False, mapping=mapping).clean


def test_clean_pixels_give_no_finding(cleaned_tree: Path, deid_tree: tuple[Path, Path]) -> None:
    report = verify(cleaned_tree, ocr=True, mapping=deid_tree[1])
    assert report.ocr_checked >= 2
    assert report.clean, [f.describe(show_phi=True) for f in report.findings[:5]]


def test_uncleaned_pixels_are_found(deid_tree: tuple[Path, Path]) -> None:
    out, _ = deid_tree
    at_risk = next(
        p for p in sorted(out.rglob("*.dcm")) if needs_pixel_cleaning(pydicom.dcmread(p))
    )
    findings = verify_dataset(pydicom.dcmread(at_risk))
    assert findings and {f.kind for f in findings} == {"burned-in-text"}
    assert all(f.location.startswith("pixels frame") for f in findings)


def pick(tree: Path, *, at_risk: bool) -> Path:
    return next(
        p
        for p in sorted(tree.rglob("*.dcm"))
        if needs_pixel_cleaning(pydicom.dcmread(p)) is at_risk
    )


def inject_header(ds: Dataset, patient_id: str, birth_date: str) -> dict[str, str]:
    """Plant identifiers; returns expected location fragment -> kind."""
    ds.ImageComments = "Patient Jean DUPONT"
    item = Dataset()
    item.PatientName = "DUPONT^JEAN"
    ds.ReferencedImageSequence = [item]
    block = ds.private_block(0x0011, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", NIR)
    block.add_new(0x02, "UN", b"contact: jean.dupont@example.fr\x00")
    ds.StudyDescription = "controle tel 06 12 34 56 78"
    ds.SeriesDescription = f"dossier {patient_id}"
    ds.PatientBirthDate = birth_date
    ds.PatientComments = "nothing identifying here, but free text"
    return {
        "(0020,4000) ImageComments": "person-name",
        "ReferencedImageSequence[0] > (0010,0010) PatientName": "person-name",
        "(0011,1001) private": "nir",
        "(0011,1002) private": "email",
        "(0008,1030) StudyDescription": "phone",
        "(0008,103E) SeriesDescription": "known-value",
        "(0010,0030) PatientBirthDate": "unshifted-date",
        "(0010,4000) PatientComments": "text-not-allowed",
    }


def burn_pixels(ds: Dataset, name: str) -> None:
    array = ds.pixel_array.copy()
    frame = array[0] if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else array
    mode = "RGB" if frame.ndim == 3 else "L"
    image = Image.fromarray(np.ascontiguousarray(frame), mode)
    burn(image, (name, "12/03/1956"), (255, 255, 255) if mode == "RGB" else 255)
    if array.ndim > frame.ndim:
        array[0] = np.asarray(image)
    else:
        array = np.asarray(image)
    ds.PixelData = np.ascontiguousarray(array).tobytes()


def expect(findings: list[Finding], expected: dict[str, str]) -> None:
    for fragment, kind in expected.items():
        assert any(fragment in f.location and f.kind == kind for f in findings), (fragment, kind)


def test_injected_identifiers_are_all_found(
    cleaned_tree: Path, deid_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    _, mapping = deid_tree
    patient_id = mapping_value(mapping, "patient-id")
    birth_date = mapping_value(mapping, "birth-date")
    known = KnownValues.from_mapping(mapping)

    header_file, pixel_file = pick(cleaned_tree, at_risk=False), pick(cleaned_tree, at_risk=True)
    ds = pydicom.dcmread(header_file)
    expected = inject_header(ds, patient_id, birth_date)
    expect(verify_dataset(ds, known=known, ocr=False), expected)
    ds.save_as(tmp_path / "header.dcm", enforce_file_format=True)

    image = pydicom.dcmread(pixel_file)
    assert verify_dataset(image, known=known) == []
    family, _, given = mapping_value(mapping, "patient-name").partition("^")
    burn_pixels(image, f"{family.upper()} {given.split('^')[0].upper()}")
    image.save_as(tmp_path / "pixels.dcm", enforce_file_format=True)

    report = verify(tmp_path, mapping=mapping)
    assert not report.clean and report.files_checked == 2
    expect([f for f in report.findings if f.file == "header.dcm"], expected)
    burned = [f for f in report.findings if f.file == "pixels.dcm"]
    assert burned and all(f.kind == "burned-in-text" for f in burned)
    assert any("person-name" in f.detail or "name-part" in f.detail for f in burned)
    assert any("date" in f.detail for f in burned)


def test_options_from_the_deid_manifest_widen_what_is_allowed(
    cleaned_tree: Path, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(pick(cleaned_tree, at_risk=False))
    ds.StudyDescription = "IRM CEREBRALE"
    folder = tmp_path / "tree"
    folder.mkdir()
    ds.save_as(folder / "a.dcm", enforce_file_format=True)
    assert [f.kind for f in verify(folder, ocr=False).findings] == ["text-not-allowed"]
    (folder / "pacsguard-deid.json").write_text(
        '{"profile": {"options": ["clean-descriptors"]}}', encoding="utf-8"
    )
    assert verify(folder, ocr=False).clean


def test_unreadable_dicom_fails_closed_and_other_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    (tmp_path / "notes.txt").write_text("not dicom at all", encoding="utf-8")
    report = verify(tmp_path)
    assert report.files_checked == 1 and report.files_skipped == 1
    assert [(f.file, f.kind) for f in report.findings] == [("broken.dcm", "unreadable")]
