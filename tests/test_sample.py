"""The synthetic sample generator: determinism, readability, truth of the answer key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)
from typer.testing import CliRunner

from pacsguard.core.errors import InputError
from pacsguard.sample import AnswerKey, generate, generate_ct_corpus, load_answer_key
from pacsguard.sample.identities import nir_is_valid

SEED = 7
PATIENTS = 3
STEP = re.compile(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)(?:\[(\d+)\])?")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnswerKey]:
    out = tmp_path_factory.mktemp("sample") / "out"
    return out, generate(out, seed=SEED, patients=PATIENTS)


@pytest.fixture(scope="module")
def datasets(sample: tuple[Path, AnswerKey]) -> dict[str, Dataset]:
    out, key = sample
    read = {}
    for entry in key.files:
        ds = pydicom.dcmread(out / entry.path, force=True)
        if not entry.has_file_meta:  # a bare dataset: its encoding is known, not declared
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        read[entry.path] = ds
    return read


def _dicom_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "dicom").rglob("*") if p.is_file())


def test_same_seed_gives_identical_bytes(sample: tuple[Path, AnswerKey], tmp_path: Path) -> None:
    out, _ = sample
    again = tmp_path / "again"
    generate(again, seed=SEED, patients=PATIENTS)
    first, second = _dicom_files(out), _dicom_files(again)
    assert [p.relative_to(out) for p in first] == [p.relative_to(again) for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a
    assert (out / "answer-key.json").read_bytes() == (again / "answer-key.json").read_bytes()


def test_other_seed_gives_other_files(sample: tuple[Path, AnswerKey], tmp_path: Path) -> None:
    out, key = sample
    other = generate(tmp_path / "other", seed=SEED + 1, patients=PATIENTS)
    assert {p.patient_id for p in other.patients}.isdisjoint(p.patient_id for p in key.patients)
    first = out / key.files[0].path
    assert first.read_bytes() != (tmp_path / "other" / key.files[0].path).read_bytes()


def test_answer_key_round_trips(sample: tuple[Path, AnswerKey]) -> None:
    out, key = sample
    assert load_answer_key(out) == key
    assert load_answer_key(out / "answer-key.json") == key
    raw = json.loads((out / "answer-key.json").read_text(encoding="utf-8"))
    assert set(raw) >= {"patients", "planted", "burned_in", "files", "totals"}


def test_every_file_reads_back_with_pydicom(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    _, key = sample
    for entry in key.files:
        ds = datasets[entry.path]
        assert ds.SOPInstanceUID == entry.sop_instance_uid
        if "PixelData" in ds:
            pixels = ds.pixel_array
            assert pixels.shape[-2:] in {(ds.Rows, ds.Columns), (ds.Columns, 3)}


def test_every_file_reads_back_with_dcmdump(sample: tuple[Path, AnswerKey]) -> None:
    if shutil.which("dcmdump") is None:
        pytest.skip("DCMTK is not installed")
    out, key = sample
    paths = [str(out / f.path) for f in key.files]
    result = subprocess.run(["dcmdump", "-q", *paths], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[:2000]
    assert "E:" not in result.stderr


def test_special_encodings_are_present(sample: tuple[Path, AnswerKey]) -> None:
    out, key = sample
    syntaxes = {f.transfer_syntax for f in key.files if f.has_file_meta}
    assert {
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        RLELossless,
        ExplicitVRBigEndian,
    } <= syntaxes
    for entry in key.files:
        data = (out / entry.path).read_bytes()
        assert (data[128:132] == b"DICM") is entry.has_preamble
        if entry.has_file_meta:
            meta = pydicom.dcmread(out / entry.path, stop_before_pixels=True).file_meta
            assert meta.TransferSyntaxUID == entry.transfer_syntax
    raw = [f for f in key.files if not f.has_file_meta]
    assert len(raw) == 1
    bare = pydicom.dcmread(out / raw[0].path, force=True)
    assert bare.original_encoding == (True, True)  # implicit VR, little endian


def _element(ds: Dataset, location: str) -> object:
    """The value at a location, or None inside a private SQ that implicit VR made opaque."""
    node: Dataset = ds
    steps = location.split(">")
    for depth, step in enumerate(steps):
        match = STEP.fullmatch(step)
        assert match, location
        tag = (int(match.group(1), 16) << 16) | int(match.group(2), 16)
        container = node.file_meta if tag >> 16 == 2 and depth == 0 else node
        elem = container[tag]
        if match.group(3) is None:
            assert depth == len(steps) - 1, location
            return elem.value
        if isinstance(elem.value, bytes):
            return None
        node = elem.value[int(match.group(3))]
    raise AssertionError(location)


def _text(value: object) -> str:
    if isinstance(value, bytes):  # private elements read back as UN in implicit VR files
        return value.decode("utf-8")
    if isinstance(value, list | pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def test_planted_values_are_where_the_key_says(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    out, key = sample
    header = [p for p in key.planted if p.location.startswith("(") and p.location != "(6000,3000)"]
    assert len(header) > 1000
    for planted in header:
        value = _element(datasets[planted.file], planted.location)
        if value is not None:
            assert planted.value in _text(value), planted
        entry = next(f for f in key.files if f.path == planted.file)
        if entry.transfer_syntax != DeflatedExplicitVRLittleEndian:
            assert planted.value.encode("utf-8") in (out / planted.file).read_bytes(), planted


def test_every_kind_of_identifier_is_planted(sample: tuple[Path, AnswerKey]) -> None:
    _, key = sample
    kinds = {p.kind for p in key.planted}
    assert {
        "patient-name", "patient-id", "birth-date", "nir", "phone", "email", "address",
        "institution", "physician", "operator", "device", "date", "time", "accession",
        "study-id", "uid", "age", "sex",
    } <= kinds  # fmt: skip
    for patient in key.patients:
        assert nir_is_valid(patient.nir)
        planted = {p.value for p in key.planted}
        for value in (patient.name, patient.patient_id, patient.nir, patient.email):
            assert value in planted
        assert patient.birth_date in planted
        assert patient.other_names and set(patient.other_names) <= planted
        assert patient.address in planted
        assert set(patient.phones) <= planted


def test_free_text_and_private_and_nested_locations(sample: tuple[Path, AnswerKey]) -> None:
    _, key = sample
    where = {(p.location, p.kind) for p in key.planted}
    for expected in [
        ("(0040,0275)[0]>(0032,1060)", "patient-name"),
        ("(0040,0275)[0]>(0040,1002)", "nir"),
        ("(0010,4000)", "email"),
        ("(0010,21B0)", "birth-date"),
        ("(0009,1001)", "patient-name"),
        ("(0009,1003)[0]>(0029,1010)", "nir"),
        ("(0010,1002)[1]>(0010,0020)", "patient-id"),
        ("(0008,1120)[0]>(0008,1155)", "uid"),
        ("(0008,1110)[0]>(0008,1155)", "uid"),
        ("(0002,0003)", "uid"),
        ("(6000,0022)", "patient-name"),
        ("(0040,A730)[0]>(0040,A123)", "patient-name"),
        ("(0040,A730)[1]>(0040,A123)", "physician"),
        ("(0040,A730)[3]>(0040,A160)", "patient-name"),
        ("(6000,3000)", "patient-name"),
        ("pixels", "patient-name"),
        ("pixels", "birth-date"),
        ("pixels", "institution"),
    ]:
        assert expected in where, expected
    harmless = [p for p in key.planted if p.location.startswith(("(0019,", "(0002,0012)"))]
    assert harmless == []


def test_burned_text_is_in_the_pixels(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    _, key = sample
    assert key.burned_in
    for burned in key.burned_in:
        ds = datasets[burned.file]
        assert burned.text
        if burned.location == "(6000,3000)":
            continue
        assert ds.BurnedInAnnotation == "YES"
        assert ds.Columns >= 256
        frames = ds.pixel_array if ds.get("NumberOfFrames", 1) > 1 else ds.pixel_array[None]
        assert len(burned.boxes) == len(frames)
        for box in burned.boxes:
            x0, y0, x1, y1 = box.box
            assert 0 <= x0 < x1 <= ds.Columns and 0 <= y0 < y1 <= ds.Rows
            assert y1 - y0 >= 14  # large enough for OCR
            region = np.asarray(frames[box.frame][y0:y1, x0:x1])
            assert region.max() >= 220  # the drawn text, brighter than any background


def test_multiframe_has_text_on_every_frame(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    _, key = sample
    multi = [f for f in key.files if f.number_of_frames > 1]
    assert multi
    for entry in multi:
        assert int(datasets[entry.path].NumberOfFrames) == entry.number_of_frames
        boxes = [b for b in key.burned_in if b.file == entry.path]
        assert boxes
        assert all(len(b.boxes) == entry.number_of_frames for b in boxes)


def _ct_uids(key: AnswerKey, datasets: dict[str, Dataset]) -> dict[str, Dataset]:
    return {
        f.sop_instance_uid: datasets[f.path] for f in key.files if f.sop_class_uid == CTImageStorage
    }


def test_sr_references_resolve(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    _, key = sample
    ct = _ct_uids(key, datasets)
    reports = [datasets[f.path] for f in key.files if f.modality == "SR"]
    assert len(reports) == PATIENTS
    for sr in reports:
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
        series = evidence.ReferencedSeriesSequence[0]
        refs = [r.ReferencedSOPInstanceUID for r in series.ReferencedSOPSequence]
        assert refs and all(ct[uid].SeriesInstanceUID == series.SeriesInstanceUID for uid in refs)
        assert all(ct[uid].PatientID == sr.PatientID for uid in refs)
        images = [i for i in sr.ContentSequence if i.ValueType == "IMAGE"]
        assert images and all(
            i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID in ct for i in images
        )
        value_types = {i.ValueType for i in sr.ContentSequence}
        assert {"TEXT", "PNAME"} <= value_types


def test_rtstruct_references_resolve(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    _, key = sample
    ct = _ct_uids(key, datasets)
    structures = [datasets[f.path] for f in key.files if f.modality == "RTSTRUCT"]
    assert len(structures) == PATIENTS
    for rt in structures:
        frame = rt.ReferencedFrameOfReferenceSequence[0]
        series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        refs = [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence]
        assert refs
        for uid in refs:
            assert (
                ct[uid].FrameOfReferenceUID == frame.FrameOfReferenceUID == rt.FrameOfReferenceUID
            )
            assert ct[uid].SeriesInstanceUID == series.SeriesInstanceUID
        for contour in rt.ROIContourSequence[0].ContourSequence:
            assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID in ct


def test_counts_match_the_files(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    out, key = sample
    files = _dicom_files(out)
    assert len(files) == key.totals.instances == len(key.files)
    assert key.totals.patients == PATIENTS == len({d.PatientID for d in datasets.values()})
    assert key.totals.studies == len({d.StudyInstanceUID for d in datasets.values()})
    assert key.totals.series == len({d.SeriesInstanceUID for d in datasets.values()})
    for patient in key.patients:
        mine = [d for d in datasets.values() if d.PatientID == patient.patient_id]
        assert patient.counts.instances == len(mine)
        assert patient.counts.studies == len({d.StudyInstanceUID for d in mine}) >= 2
        assert patient.counts.series == len({d.SeriesInstanceUID for d in mine})
    modalities = {f.modality for f in key.files}
    assert {"CT", "MR", "US", "OT", "SR", "RTSTRUCT"} <= modalities


def test_file_names_carry_no_identifier(sample: tuple[Path, AnswerKey]) -> None:
    out, _ = sample
    for path in _dicom_files(out):
        assert re.fullmatch(r"dicom/p\d\d/st\d\d/se\d\d/IM\d{4}\.dcm", str(path.relative_to(out)))


def test_rerun_into_a_sample_folder_replaces_it(tmp_path: Path) -> None:
    first = generate(tmp_path, seed=3, patients=2)
    second = generate(tmp_path, seed=3, patients=1)
    assert len(_dicom_files(tmp_path)) == second.totals.instances < first.totals.instances


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError):
        generate(tmp_path, patients=1)
    assert (tmp_path / "precious.txt").exists()


def test_ct_corpus(tmp_path: Path) -> None:
    generate_ct_corpus(tmp_path, files=230, rows=32, cols=32, seed=1, patients=2)
    paths = sorted(tmp_path.rglob("*.dcm"))
    assert len(paths) == 230
    info = json.loads((tmp_path / "corpus.json").read_text())
    assert info["instances"] == 230 and info["patients"] == 2
    read = [pydicom.dcmread(p) for p in paths[::23]]
    assert len({d.SOPInstanceUID for d in read}) == len(read)
    assert all(d.pixel_array.shape == (32, 32) for d in read)
    assert len({d.SeriesInstanceUID for d in (pydicom.dcmread(p) for p in paths)}) == info["series"]


def test_cli(tmp_path: Path) -> None:
    from pacsguard.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["sample", str(tmp_path / "s"), "--patients", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert load_answer_key(tmp_path / "s").totals.patients == 1
    result = runner.invoke(app, ["sample", str(tmp_path / "c"), "--ct-corpus", "5", "--rows", "16"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "c").rglob("*.dcm"))) == 5


def test_burned_text_is_readable_by_ocr(
    sample: tuple[Path, AnswerKey], datasets: dict[str, Dataset]
) -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    from io import BytesIO

    from PIL import Image

    _, key = sample
    for modality in ("US", "OT"):
        entry = next(f for f in key.files if f.modality == modality and f.number_of_frames == 1)
        png = BytesIO()
        Image.fromarray(datasets[entry.path].pixel_array).save(png, format="PNG")
        result = subprocess.run(
            ["tesseract", "-", "-"], input=png.getvalue(), capture_output=True, check=True
        )
        text = result.stdout.decode()
        for burned in key.burned_in:
            if burned.file == entry.path:
                assert burned.text in text, (burned.text, text)
