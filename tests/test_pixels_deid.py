"""``deid --option clean-pixel-data [--verify]`` end to end (runs once deid offers the option)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.options import SUPPORTED
from pacsguard.deid.pixels import needs_pixel_cleaning
from pacsguard.sample import AnswerKey
from pacsguard.verify import verify
from test_pixels_support import grey_image

pytestmark = pytest.mark.skipif(
    "clean-pixel-data" not in SUPPORTED, reason="clean-pixel-data is not wired into deid yet"
)
CLEAN_PIXEL_DATA_CODE = "113101"


def at_risk_inputs(sample: Path, answer: AnswerKey, target: Path) -> int:
    """Copy the first patient's images with burned-in text; returns how many."""
    files = sorted({b.file for b in answer.burned_in if b.location == "pixels"})[:3]
    for file in files:
        destination = target / file
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample.parent / file, destination)
    return len(files)


def test_deid_cleans_burned_in_text_and_verify_passes(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    count = at_risk_inputs(*sample_corpus, tmp_path / "in")
    config = DeidConfig(jobs=1, options=frozenset({"clean-pixel-data"}), verify=True)
    report = deidentify([tmp_path / "in"], tmp_path / "out", key=project_key, config=config)
    assert (report.output, report.quarantine) == (count, 0), report.reasons
    for path in (tmp_path / "out").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert needs_pixel_cleaning(ds) and ds.BurnedInAnnotation == "NO"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert CLEAN_PIXEL_DATA_CODE in codes
    assert verify(tmp_path / "out").clean


def test_an_undecodable_image_that_needs_cleaning_is_quarantined(
    project_key: ProjectKey, tmp_path: Path
) -> None:
    ds, _ = grey_image()
    ds.PatientName = "DUPONT^JEAN"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not a jpeg"])
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "bad.dcm", enforce_file_format=True)
    config = DeidConfig(jobs=1, options=frozenset({"clean-pixel-data"}))
    report = deidentify([tmp_path / "in"], tmp_path / "out", key=project_key, config=config)
    assert (report.output, report.quarantine) == (0, 1)
    (reason,) = report.reasons
    assert "decode" in reason and "DUPONT" not in reason
