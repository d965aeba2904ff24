"""The lab's patients: made by ``pacsguard.sample``, with the truth to check counts against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pacsguard.lab.procs import LabError, run, tool
from pacsguard.sample import AnswerKey, generate
from pacsguard.sample.answer_key import Totals

RLE = "1.2.840.10008.1.2.5"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
JPEG_PREFIX = "1.2.840.10008.1.2.4."
# Values that are characteristics or too short to be told apart from ordinary text.
NOT_IDENTIFYING = frozenset({"sex", "age", "time", "date", "study-id"})
MIN_LEAK_LENGTH = 6


@dataclass(frozen=True)
class LabData:
    root: Path
    files: tuple[Path, ...]
    headerless: tuple[Path, ...]
    totals: Totals
    planted: frozenset[str]


def _leak_markers(key: AnswerKey) -> frozenset[str]:
    values = {
        p.value.strip()
        for p in key.planted
        if p.kind not in NOT_IDENTIFYING and p.location != "pixels"
    }
    for patient in key.patients:
        values.update((patient.patient_id, patient.family_name, patient.given_name))
    return frozenset(v for v in values if len(v) >= MIN_LEAK_LENGTH)


def make_data(out: Path, *, seed: int = 7, patients: int = 3) -> LabData:
    """Generate the sample once; ``files`` have file meta, ``headerless`` are bare datasets."""
    key = generate(out, seed=seed, patients=patients)
    files = tuple(out / f.path for f in key.files if f.has_file_meta)
    headerless = tuple(out / f.path for f in key.files if not f.has_file_meta)
    return LabData(out, files, headerless, key.totals, _leak_markers(key))


def decompressed_for_dcmtk(data: LabData, work: Path) -> list[Path]:
    """Copies that storescu can send to any archive: RLE and JPEG decoded with DCMTK's tools."""
    import pydicom

    work.mkdir(parents=True, exist_ok=True)
    ready: list[Path] = []
    for index, path in enumerate(data.files):
        syntax = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        if syntax == RLE:
            decoder = "dcmdrle"
        elif syntax in JPEG_LS:
            decoder = "dcmdjpls"
        elif syntax.startswith(JPEG_PREFIX):
            decoder = "dcmdjpeg"
        else:
            ready.append(path)
            continue
        target = work / f"decoded-{index}.dcm"
        run([tool(decoder), str(path), str(target)], work / "decode.log")
        ready.append(target)
    if not ready:
        raise LabError("the sample holds no file to load")
    return ready
