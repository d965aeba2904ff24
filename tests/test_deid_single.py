"""The one-file API that long-running nodes use: same engine, durable outcome."""

from __future__ import annotations

from pathlib import Path

import pydicom

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, FileDeidentifier


def _ct(corpus: Path) -> Path:
    for path in sorted(corpus.rglob("*.dcm")):
        if pydicom.dcmread(path, stop_before_pixels=True).Modality == "CT":
            return path
    raise AssertionError("no CT in the sample corpus")


def test_one_file_out_and_one_quarantined(
    tmp_path: Path, sample_corpus: tuple[Path, object], project_key: ProjectKey
) -> None:
    key = project_key
    source_path = _ct(sample_corpus[0])
    node = FileDeidentifier(key, DeidConfig(), tmp_path / "out", tmp_path / "q")
    good = node.run(source_path)
    assert good.status == "output" and good.output is not None
    assert good.output.is_file() and good.sha256 and good.size == good.output.stat().st_size
    ds = pydicom.dcmread(good.output)
    assert ds.PatientIdentityRemoved == "YES"
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 10)
    outcome = node.run(bad)
    assert outcome.status == "quarantine" and outcome.reason
    assert not any((tmp_path / "out").rglob("bad*"))


def test_dataset_in_memory_uses_the_same_pseudonyms(
    tmp_path: Path, sample_corpus: tuple[Path, object], project_key: ProjectKey
) -> None:
    key = project_key
    source_path = _ct(sample_corpus[0])
    node = FileDeidentifier(key, DeidConfig(), tmp_path / "out", tmp_path / "q")
    written = node.run(source_path)
    assert written.output is not None
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    query = pydicom.Dataset()
    query.PatientName = source.PatientName
    query.PatientID = source.PatientID
    query.StudyInstanceUID = source.StudyInstanceUID
    query.SOPClassUID = source.SOPClassUID
    answer = node.dataset(query)
    out = pydicom.dcmread(written.output, stop_before_pixels=True)
    assert answer.PatientID == out.PatientID
    assert answer.StudyInstanceUID == out.StudyInstanceUID
