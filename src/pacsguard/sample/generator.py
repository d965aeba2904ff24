"""``generate``: synthetic patients and studies, written as DICOM, with their answer key."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pacsguard.core.errors import InputError
from pacsguard.core.io import atomic_write_text
from pacsguard.sample.answer_key import (
    ANSWER_KEY_NAME,
    AnswerKey,
    BurnedText,
    Counts,
    FileEntry,
    FrameBox,
    PatientKey,
    Planted,
    SeriesKey,
    StudyKey,
    Totals,
)
from pacsguard.sample.clinical import CLINICAL_DIR, write_clinical_table
from pacsguard.sample.identities import Identity, dicom_date
from pacsguard.sample.images import (
    Instance,
    ct_instance,
    mr_instance,
    sc_instance,
    us_instance,
    us_multiframe,
)
from pacsguard.sample.plan import SeriesPlan, StudyPlan, UidMaker, plan_series, plan_studies
from pacsguard.sample.planted import Needle, find_planted, patient_needles
from pacsguard.sample.structured import rtstruct_instance, sr_instance
from pacsguard.sample.writer import Encoding, write

DICOM_DIR = "dicom"
# The first patient's CT series carries one slice in each encoding archives hold.
SPECIAL_CT_ENCODINGS = (
    Encoding.EXPLICIT_LE,
    Encoding.IMPLICIT_LE,
    Encoding.DEFLATED,
    Encoding.RLE,
    Encoding.BIG_ENDIAN,
    Encoding.RAW,
)

Progress = Callable[[int, int], None]


@dataclass
class _Patient:
    """What one patient's generation produced, gathered for the answer key."""

    study_series: dict[str, list[SeriesKey]] = field(default_factory=dict)
    planted: list[Planted] = field(default_factory=list)
    burned: list[BurnedText] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)


class _Writer:
    def __init__(self, out: Path, needles: list[Needle], record: _Patient) -> None:
        self.out = out
        self.needles = needles
        self.record = record

    def put(self, series: SeriesPlan, number: int, instance: Instance, encoding: Encoding) -> str:
        study = series.study
        who = study.identity
        rel = (
            f"{DICOM_DIR}/p{who.index + 1:02d}/st{study.number:02d}/"
            f"se{series.number:02d}/IM{number:04d}.dcm"
        )
        ds = instance.ds
        with_meta = encoding is not Encoding.RAW
        self.record.planted += find_planted(ds, rel, self.needles, with_meta=with_meta)
        for burned in instance.burned:
            boxes = tuple(FrameBox(frame, box) for frame, box in burned.boxes)
            self.record.burned.append(
                BurnedText(rel, burned.location, burned.kind, burned.text, boxes)
            )
            self.record.planted.append(Planted(rel, burned.location, burned.kind, burned.text))
        transfer_syntax = write(ds, self.out / rel, encoding)
        self.record.files.append(
            FileEntry(
                path=rel,
                patient_id=who.patient_id,
                study_instance_uid=study.uid,
                series_instance_uid=series.uid,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                modality=series.modality,
                transfer_syntax=transfer_syntax,
                has_preamble=with_meta,
                has_file_meta=with_meta,
                number_of_frames=int(ds.get("NumberOfFrames", 1)),
            )
        )
        return str(ds.SOPInstanceUID)


def _prepare(out: Path) -> None:
    """Start from an empty output; a previous sample output (it has a key) is replaced."""
    dicom = out / DICOM_DIR
    if out.exists() and any(out.iterdir()):
        if not (out / ANSWER_KEY_NAME).exists():
            raise InputError(f"{out} is not empty and holds no sample output; choose another")
        shutil.rmtree(dicom, ignore_errors=True)
        shutil.rmtree(out / CLINICAL_DIR, ignore_errors=True)
        (out / ANSWER_KEY_NAME).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _series_key(series: SeriesPlan, uids: list[str]) -> SeriesKey:
    return SeriesKey(series.uid, series.modality, series.description, tuple(uids))


def _ct_study(
    study: StudyPlan, uids: UidMaker, rng: random.Random, gen: np.random.Generator, w: _Writer
) -> list[SeriesKey]:
    family = study.identity.person.family
    ct = plan_series(study, uids, 1, "CT", f"THORAX 2.5mm {family}", rng)
    special = study.identity.index == 0
    encodings = SPECIAL_CT_ENCODINGS if special else (Encoding.EXPLICIT_LE,) * rng.randint(4, 5)
    ct_uids, ct_z = [], []
    for number, encoding in enumerate(encodings, start=1):
        instance = ct_instance(ct, uids.make(study.date), number, gen)
        ct_z.append(float(instance.ds.SliceLocation))
        ct_uids.append(w.put(ct, number, instance, encoding))
    rt = plan_series(study, uids, 2, "RTSTRUCT", "Contours RT", rng)
    rt_ds = rtstruct_instance(rt, uids.make(study.date), ct, ct_uids, ct_z)
    sr = plan_series(study, uids, 3, "SR", f"Compte rendu {family}", rng)
    sr_ds = sr_instance(sr, uids.make(study.date), ct, ct_uids)
    sr_encoding = Encoding.DEFLATED if study.identity.index == 1 else Encoding.EXPLICIT_LE
    return [
        _series_key(ct, ct_uids),
        _series_key(rt, [w.put(rt, 1, Instance(rt_ds), Encoding.EXPLICIT_LE)]),
        _series_key(sr, [w.put(sr, 1, Instance(sr_ds), sr_encoding)]),
    ]


def _mr_study(
    study: StudyPlan, uids: UidMaker, rng: random.Random, gen: np.random.Generator, w: _Writer
) -> list[SeriesKey]:
    mr = plan_series(study, uids, 1, "MR", "T1 SE AXIAL", rng)
    mr_uids = []
    for number in range(1, 4):
        encoding = Encoding.IMPLICIT_LE if study.identity.index == 1 else Encoding.EXPLICIT_LE
        instance = mr_instance(mr, uids.make(study.date), number, gen)
        mr_uids.append(w.put(mr, number, instance, encoding))
    sc = plan_series(study, uids, 2, "OT", "Capture écran", rng)
    sc_uid = w.put(sc, 1, sc_instance(sc, uids.make(study.date), 1, gen), Encoding.EXPLICIT_LE)
    return [_series_key(mr, mr_uids), _series_key(sc, [sc_uid])]


def _us_study(
    study: StudyPlan, uids: UidMaker, rng: random.Random, gen: np.random.Generator, w: _Writer
) -> list[SeriesKey]:
    us = plan_series(study, uids, 1, "US", f"Echo {dicom_date(study.date)}", rng)
    rgb_encoding = Encoding.RLE if study.identity.index == 1 else Encoding.EXPLICIT_LE
    first = w.put(us, 1, us_instance(us, uids.make(study.date), 1, gen), rgb_encoding)
    second = w.put(us, 2, us_multiframe(us, uids.make(study.date), 2, gen), Encoding.EXPLICIT_LE)
    return [_series_key(us, [first, second])]


STUDY_BUILDERS = {"CT": _ct_study, "MR": _mr_study, "US": _us_study}


def _patient_key(who: Identity, studies: list[StudyPlan], record: _Patient) -> PatientKey:
    study_keys = tuple(
        StudyKey(
            study_instance_uid=s.uid,
            accession_number=s.accession,
            study_id=s.study_id,
            study_date=dicom_date(s.date),
            description=s.description,
            series=tuple(record.study_series[s.uid]),
        )
        for s in studies
    )
    series_count = sum(len(s.series) for s in study_keys)
    return PatientKey(
        patient_id=who.patient_id,
        name=who.person.dicom,
        names=who.person.natural_forms,
        family_name=who.person.family,
        given_name=who.person.given,
        sex=who.sex,
        birth_date=dicom_date(who.birth_date),
        address=who.address,
        phones=(*who.phones, who.phone_international),
        email=who.email,
        nir=who.nir,
        other_patient_ids=who.other_ids,
        other_names=(who.other_name.dicom,),
        studies=study_keys,
        counts=Counts(len(study_keys), series_count, len(record.files)),
    )


def _staff(plans: list[list[StudyPlan]]) -> tuple[str, ...]:
    people = {
        person.dicom
        for studies in plans
        for s in studies
        for person in (s.referring, s.performing, s.reading, s.operator)
    }
    return tuple(sorted(people))


def generate(
    out: Path, *, seed: int = 0, patients: int = 4, progress: Progress | None = None
) -> AnswerKey:
    """Write ``patients`` synthetic patients under ``out/dicom``, their clinical table
    (``out/clinical/export.csv``, one row per study) and ``out/answer-key.json``.

    The same seed gives byte-identical files; nothing depends on the clock.
    """
    if patients < 1:
        raise InputError("the number of patients must be at least 1")
    _prepare(out)
    rng = random.Random(seed)
    gen = np.random.default_rng(rng.getrandbits(64))
    uids = UidMaker(rng)
    identities, plans = plan_studies(rng, patients, uids)
    patient_keys, records = [], []
    for done, (who, studies) in enumerate(zip(identities, plans, strict=True), start=1):
        record = _Patient()
        writer = _Writer(out, patient_needles(who, studies), record)
        for study in studies:
            build = STUDY_BUILDERS[study.procedure.modality]
            record.study_series[study.uid] = build(study, uids, rng, gen, writer)
        patient_keys.append(_patient_key(who, studies, record))
        records.append(record)
        if progress is not None:
            progress(done, patients)
    key = AnswerKey(
        seed=seed,
        patients=tuple(patient_keys),
        planted=tuple(p for r in records for p in r.planted),
        burned_in=tuple(b for r in records for b in r.burned),
        files=tuple(f for r in records for f in r.files),
        totals=Totals(
            patients=len(patient_keys),
            studies=sum(p.counts.studies for p in patient_keys),
            series=sum(p.counts.series for p in patient_keys),
            instances=sum(p.counts.instances for p in patient_keys),
        ),
        staff=_staff(plans),
        institutions=tuple(sorted({s.institution[0] for p in plans for s in p})),
    )
    write_clinical_table(out, plans, seed)
    atomic_write_text(out / ANSWER_KEY_NAME, key.to_json())
    return key
