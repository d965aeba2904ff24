"""verify on trees no one tuned it to: real DICOM files from installed packages and the sample
corpus, de-identified (default options, then clean-pixel-data), must give no identifier
finding; identifiers planted after de-identification (names, IDs, dates, phones, NIR, e-mail;
in code meanings, private elements, SR text, wrong VRs, unknown tags, pixels) must be found."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.pixels import needs_pixel_cleaning
from pacsguard.sample import AnswerKey
from pacsguard.verify import Finding, verify
from test_pixels_support import burn
from verify_corpus import Plant, copy_real_files, plant_tree, recall, valid_nir

# A leak deid leaves today (reported, not verify's to fix): in pydicom's RLE RT Dose files
# the Referenced SOP Instance UID of the Referenced RT Plan Sequence keeps its source value.
# verify must report it (known value with --mapping, uid-not-replaced without).
KNOWN_DEID_LEAK = "ReferencedRTPlanSequence[0] > (0008,1155) ReferencedSOPInstanceUID"


@pytest.fixture(scope="module")
def inputs(sample_corpus: tuple[Path, AnswerKey], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify-real") / "in"
    copy_real_files(root / "real")
    shutil.copytree(sample_corpus[0], root / "sample")
    assert len(list((root / "real").rglob("*"))) > 150
    return root


def _deid(inputs: Path, key: ProjectKey, options: frozenset[str], out: Path) -> tuple[Path, Path]:
    mapping = out.parent / f"{out.name}-mapping.csv"
    config = DeidConfig(jobs=2, options=options, mapping_out=mapping)
    report = deidentify([inputs], out, key=key, config=config)
    assert report.output > 150  # the rest: files deid refuses (truncated, no SOP UID...)
    return out, mapping


@pytest.fixture(scope="module")
def default_tree(inputs: Path, project_key: ProjectKey) -> tuple[Path, Path]:
    return _deid(inputs, project_key, frozenset(), inputs.parent / "out-default")


@pytest.fixture(scope="module")
def pixel_tree(inputs: Path, project_key: ProjectKey) -> tuple[Path, Path]:
    return _deid(inputs, project_key, frozenset({"clean-pixel-data"}), inputs.parent / "out-cpd")


def only_known_leak(findings: list[Finding]) -> list[str]:
    """Identifier findings other than deid's known leak (expected: none)."""
    return [
        f"{f.file}: {f.location}: {f.kind} ({f.detail})"
        for f in findings
        if f.finding_class == "identifier" and KNOWN_DEID_LEAK not in f.location
    ]


def summary(findings: list[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        key = f"{f.finding_class}/{f.kind}"
        out[key] = out.get(key, 0) + 1
    return out


def test_clean_default_output_has_no_identifier_finding(default_tree: tuple[Path, Path]) -> None:
    out, mapping = default_tree
    bare = verify(out, ocr=False)
    print("default options, no mapping:", bare.files_checked, "files,", summary(bare.findings))
    assert only_known_leak(bare.findings) == []
    assert bare.clean
    mapped = verify(out, ocr=False, mapping=mapping)
    print("default options, mapping:", summary(mapped.findings))
    assert only_known_leak(mapped.findings) == []
    # the leak this test once had to allow is gone: rtdose.dcm and rtdose_rle.dcm share one
    # SOP Instance UID, and deid no longer lets the second overwrite the first's output
    assert not any(KNOWN_DEID_LEAK in f.location for f in mapped.findings)


def test_clean_pixel_output_has_no_identifier_finding(pixel_tree: tuple[Path, Path]) -> None:
    out, mapping = pixel_tree
    report = verify(out, ocr=True, mapping=mapping)
    print("clean-pixel-data, mapping, OCR:", report.ocr_checked, "read;", summary(report.findings))
    assert report.ocr_checked >= 5
    assert only_known_leak(report.findings) == []
    # the false alarms of issue 15 are not identifiers (most are not findings at all)
    for f in report.findings:
        assert f.finding_class == "review" or KNOWN_DEID_LEAK in f.location


@pytest.fixture(scope="module")
def planted(
    default_tree: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Plant], Path]:
    out, mapping = default_tree
    target = tmp_path_factory.mktemp("planted") / "tree"
    plants, extended = plant_tree(out, mapping, target)
    assert len(plants) >= 100
    return target, plants, extended


def _stray(plants: list[Plant], findings: list[Finding]) -> list[str]:
    return [
        f"{f.location}: {f.kind}"
        for f in findings
        if f.finding_class == "identifier"
        and KNOWN_DEID_LEAK not in f.location
        and not any(f.file == p.file and p.fragment in f.location for p in plants)
    ]


def test_planted_identifiers_are_all_flagged_with_the_mapping(
    planted: tuple[Path, list[Plant], Path],
) -> None:
    tree, plants, mapping = planted
    report = verify(tree, ocr=False, mapping=mapping)
    rates = recall(plants, report.findings)
    print("with mapping:", rates)
    assert all(found == total for found, total in rates.values()), rates
    assert _stray(plants, report.findings) == []


def test_planted_identifiers_without_a_mapping(planted: tuple[Path, list[Plant], Path]) -> None:
    tree, plants, _ = planted
    report = verify(tree, ocr=False)
    rates = recall(plants, report.findings)
    print("without mapping:", rates)
    assert _stray(plants, report.findings) == []
    shaped = [p for p in plants if p.shaped and p.kind != "person-name"]
    found = recall(shaped, report.findings)
    assert all(f == t for k, (f, t) in found.items() if "/" not in k), found  # 100 % per kind
    names, total = rates["person-name"]
    assert names / total >= 0.95, rates["person-name"]
    # bare IDs and bare dates have no shape: only the mapping finds them (stated, measured)
    assert rates["patient-id/bare"][0] < rates["patient-id/bare"][1]


def _burn(path: Path, lines: tuple[str, ...]) -> None:
    ds = pydicom.dcmread(path)
    array = ds.pixel_array.copy()
    multi = int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
    frame = array[0] if multi else array
    mode = "RGB" if frame.ndim == 3 else "L"
    peak = int(np.iinfo(frame.dtype).max) if frame.dtype.kind in "ui" else 255
    image = Image.fromarray(np.ascontiguousarray(frame).astype(np.uint8), mode)
    ImageDraw.Draw(image).rectangle((0, 0, 330, 70), fill=0)  # an annotation band
    burn(image, lines, (255, 255, 255) if mode == "RGB" else 255)
    burned = np.asarray(image).astype(frame.dtype) * (peak // 255 if mode == "L" else 1)
    if multi:
        array[0] = burned
    else:
        array = burned
    ds.PixelData = np.ascontiguousarray(array).tobytes()
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def _burnable(path: Path) -> bool:
    """An image at risk, 8-bit grey or RGB, single frame, large enough to write on."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return (
        needs_pixel_cleaning(ds)
        and ds.get("BitsAllocated") == 8
        and ds.get("PhotometricInterpretation") in ("MONOCHROME2", "RGB")
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
        and int(ds.Rows) >= 384
        and int(ds.Columns) >= 512
        and not ds.file_meta.TransferSyntaxUID.is_compressed
    )


def test_burned_in_identifiers_are_found_and_pictured(
    pixel_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    out, _ = pixel_tree
    target = tmp_path / "burned"
    risky = [p for p in sorted(out.rglob("*.dcm")) if _burnable(p)][:3]
    assert risky
    lines = [("DUPONT Jean", f"NIR {valid_nir(3)}"), ("Patient: MARTIN", "tel 06 12 34 56 78")]
    for i, path in enumerate(risky):
        dest = target / path.relative_to(out)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        _burn(dest, lines[i % 2])
    report = verify(target, ocr=True)
    burned = [f for f in report.findings if f.kind == "burned-in-text"]
    files = {f.file for f in burned if f.finding_class == "identifier"}
    assert len(files) == len(risky), [(f.file, f.detail, f.finding_class) for f in burned]
    assert not report.clean
    assert {name for name, _ in report.thumbnails} == files
    assert all(png.startswith(b"\x89PNG") for png in report.thumbnails.values())
