"""Many CT slices, fast, for benchmarks: one pixel buffer, one dataset, only headers vary."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from pacsguard.core.errors import InputError
from pacsguard.sample.headers import add_patient, add_private, add_series, add_study
from pacsguard.sample.images import ct_instance, ct_pixels
from pacsguard.sample.plan import SeriesPlan, StudyPlan, UidMaker, plan_series, plan_studies

CORPUS_INFO_NAME = "corpus.json"
SLICES_PER_SERIES = 100
SERIES_PER_STUDY = 2


def _series_layout(files: int, patients: int) -> list[tuple[int, int, int, int]]:
    """(patient, study, series, slices) for each series, patients taking turns."""
    layout = []
    series_count = -(-files // SLICES_PER_SERIES)
    remaining = files
    for index in range(series_count):
        patient, turn = index % patients, index // patients
        slices = min(SLICES_PER_SERIES, remaining)
        remaining -= slices
        layout.append((patient, turn // SERIES_PER_STUDY, turn % SERIES_PER_STUDY, slices))
    return layout


def _retarget(ds: Dataset, series: SeriesPlan) -> None:
    """Point the shared dataset at another patient, study and series."""
    add_patient(ds, series.study)
    add_study(ds, series.study)
    add_series(ds, series)
    add_private(ds, series.study)
    ds.FrameOfReferenceUID = series.frame_of_reference


def generate_ct_corpus(
    out: Path,
    *,
    files: int,
    rows: int = 512,
    cols: int = 512,
    seed: int = 0,
    patients: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Write ``files`` CT slices (16-bit, rows x cols) under ``out``, with identifiers in headers.

    Files are ``out/pNNN/stNN/seNN/IMnnnnn.dcm``; ``out/corpus.json`` holds the counts.
    """
    if files < 1 or patients < 1:
        raise InputError("the corpus needs at least one file and one patient")
    rng = random.Random(seed)
    gen = np.random.default_rng(rng.getrandbits(64))
    uids = UidMaker(rng)
    _, plans = plan_studies(rng, patients, uids)
    studies: dict[tuple[int, int], StudyPlan] = {}
    layout = _series_layout(files, patients)
    first = plan_series(plans[0][0], uids, 1, "CT", "THORAX", rng)
    ds = ct_instance(first, uids.make(plans[0][0].date), 1, gen).ds
    _set_pixels(ds, rows, cols, gen)
    written = 0
    for patient, study_index, series_index, slices in layout:
        key = (patient, study_index)
        if key not in studies:
            studies[key] = _ct_study(plans[patient][0], uids, study_index)
        series = plan_series(studies[key], uids, series_index + 1, "CT", "THORAX", rng)
        _retarget(ds, series)
        folder = (
            out / f"p{patient + 1:03d}" / f"st{study_index + 1:02d}" / f"se{series_index + 1:02d}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        for number in range(1, slices + 1):
            uid = uids.make(series.study.date)
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
            ds.InstanceNumber = number
            z = -200.0 + (number - 1) * 2.5
            ds.ImagePositionPatient = [-cols * 0.35, -rows * 0.35, z]
            ds.SliceLocation = z
            ds.save_as(folder / f"IM{number:05d}.dcm", enforce_file_format=True)
            written += 1
            if progress is not None and written % 50 == 0:
                progress(written, files)
    info = {"patients": len({p for p, *_ in layout}), "studies": len(studies),
            "series": len(layout), "instances": written}  # fmt: skip
    (out / CORPUS_INFO_NAME).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    if progress is not None:
        progress(written, files)


def _set_pixels(ds: Dataset, rows: int, cols: int, gen: np.random.Generator) -> None:
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [0.7, 0.7]
    ds.PixelData = ct_pixels(rows, cols, 0.0, gen).tobytes()


def _ct_study(base: StudyPlan, uids: UidMaker, index: int) -> StudyPlan:
    """The patient's planned CT study, or a later follow-up CT with its own UID and accession."""
    if index == 0:
        return base
    day = base.date + dt.timedelta(days=90 * index)
    return replace(
        base, date=day, uid=uids.make(day), accession=f"{base.accession[:-2]}{index:02d}"
    )


def plant_identity(ds: Dataset) -> None:
    """Put the patient's own name, ID and birth date where real exports carry them: study
    and series descriptions, comments, the requested procedure, a code meaning and a
    private block (the planted corpora of the benchmark and of the rewriter's tests)."""
    family, _, given = str(ds.get("PatientName", "DOE^JOHN")).partition("^")
    pid, birth = str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", ""))
    ds.StudyDescription = f"CT THORAX {family} {given}"[:64]
    ds.SeriesDescription = f"{given} {family} follow-up"[:64]
    ds.ImageComments = f"patient {pid} born {birth}, {given} {family}"
    ds.StudyComments = f"seen by the team for {family}"
    ds.RequestedProcedureDescription = f"thorax {family}"[:64]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "51185008", "SCT"
    code.CodeMeaning = f"Thorax of {given} {family}"[:64]
    ds.AnatomicRegionSequence = Sequence([code])
    block = ds.private_block(0x0029, "ACME RESEARCH 1.0", create=True)
    block.add_new(0x10, "LO", f"{family}^{given}"[:64])
    block.add_new(0x11, "LO", pid[:64])
