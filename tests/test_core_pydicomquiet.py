"""A value pydicom finds invalid is read without a word: its validation messages quote the
value (a name, a birth date), and deid and verify keep them out of every log."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

SECONDARY_CAPTURE = SecondaryCaptureImageStorage
SECRET = "DUPONT^JEANNE-MARIE-ANTOINETTE-BERNADETTE-CHARLOTTE-EUGENIE-ROSALIE-VICTOIRE"


def bad_file(path: Path) -> Path:
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, uid
    with warnings.catch_warnings():  # pydicom warns as they are set
        warnings.simplefilter("ignore")
        ds.PatientName = SECRET  # a PN component longer than 64 characters
        ds.PatientBirthDate = "1962XX15"  # no date
        ds.save_as(path, enforce_file_format=True)
    return path


READ = """
import importlib, io, logging, sys, warnings
import pydicom
log = io.StringIO()
logging.basicConfig(stream=log, level=logging.DEBUG)
importlib.import_module(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = pydicom.dcmread(sys.argv[2])
    print(ds.PatientName, ds.PatientBirthDate)
print(len(caught), "DUPONT" in log.getvalue() or "1962" in log.getvalue())
"""


@pytest.mark.parametrize("module", ["pacsguard.verify.scan", "pacsguard.deid.pipeline"])
def test_invalid_values_read_without_a_warning_or_a_log_line(module: str, tmp_path: Path) -> None:
    """In a process of its own: importing either module is all it takes."""
    path = bad_file(tmp_path / "bad.dcm")
    done = subprocess.run(
        [sys.executable, "-c", READ, module, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == [f"{SECRET} 1962XX15", "0 False"], done.stderr


def test_verify_reads_them_as_they_are(tmp_path: Path) -> None:
    from pacsguard.verify import verify

    bad_file(tmp_path / "bad.dcm")
    report = verify(tmp_path, ocr=False)
    assert report.files_checked == 1
    found = {(f.location.split()[-1], f.kind) for f in report.findings}
    assert {("PatientName", "person-name"), ("PatientBirthDate", "unshifted-date")} <= found
