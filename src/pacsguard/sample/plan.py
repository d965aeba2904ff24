"""What will be generated: patients, their studies and series, with every UID decided up front."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from pacsguard.sample.identities import (
    INSTITUTIONS,
    Identity,
    Person,
    dicom_date,
    make_identities,
    staff,
    strip_accents,
)

UID_ROOT = "1.2.826.0.1.3680043.9.7"
IMPLEMENTATION_UID = f"{UID_ROOT}.0.1"
IMPLEMENTATION_NAME = "PACSGUARD_SMPL"


class UidMaker:
    """UIDs whose root embeds a date, as many devices do: ``ROOT.YYYYMMDD.salt.n``."""

    def __init__(self, rng: random.Random) -> None:
        self.salt = rng.randint(100000, 999999)
        self.counter = 0

    def make(self, day: dt.date) -> str:
        self.counter += 1
        return f"{UID_ROOT}.{dicom_date(day)}.{self.salt}.{self.counter}"


@dataclass(frozen=True)
class Procedure:
    modality: str
    code: str
    meaning: str
    description: str
    body_part: str


PROCEDURES = (
    Procedure("CT", "ZBQK002", "Scanographie du thorax", "TDM THORAX", "CHEST"),
    Procedure("MR", "ACQN001", "IRM de l'encéphale", "IRM CEREBRALE", "HEAD"),
    Procedure("US", "EBQM001", "Échographie-doppler cardiaque", "ECHO CARDIAQUE", "HEART"),
)


@dataclass(frozen=True)
class StudyPlan:
    identity: Identity
    number: int
    uid: str
    date: dt.date
    time: str
    accession: str
    study_id: str
    procedure: Procedure
    institution: tuple[str, str]
    referring: Person
    performing: Person
    reading: Person
    operator: Person
    station: str
    serial: str
    patient_uid: str
    prior_uid: str

    @property
    def description(self) -> str:
        return f"{self.procedure.description} {self.identity.person.family.upper()}"


@dataclass(frozen=True)
class SeriesPlan:
    study: StudyPlan
    uid: str
    number: int
    modality: str
    description: str
    time: str
    frame_of_reference: str


def _station(modality: str, institution: str, number: int) -> str:
    place = strip_accents(institution.split()[-1]).upper().replace("-", "")[:8]
    return f"{modality}-{place}-{number:02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"


def plan_studies(
    rng: random.Random, count: int, uids: UidMaker
) -> tuple[list[Identity], list[list[StudyPlan]]]:
    """Each patient gets one CT, one MR and one US study, on different days."""
    identities = make_identities(rng, count)
    people = staff(rng, 8)
    plans: list[list[StudyPlan]] = []
    for identity in identities:
        first = dt.date(2016, 1, 4) + dt.timedelta(days=rng.randint(0, 8 * 365))
        dates = [first + dt.timedelta(days=rng.randint(1, 40) * k) for k in range(len(PROCEDURES))]
        study_uids = [uids.make(day) for day in dates]
        patient_uid = f"{UID_ROOT}.{dicom_date(identity.birth_date)}.{identity.patient_uid_suffix}"
        studies = []
        for number, (procedure, day, uid) in enumerate(
            zip(PROCEDURES, dates, study_uids, strict=True)
        ):
            institution = INSTITUTIONS[(identity.index + number) % len(INSTITUTIONS)]
            referring, performing, reading, operator = rng.sample(people, 4)
            studies.append(
                StudyPlan(
                    identity=identity,
                    number=number + 1,
                    uid=uid,
                    date=day,
                    time=_time(rng),
                    accession=f"RX{day:%y}{rng.randint(10**6, 10**7 - 1)}",
                    study_id=f"EX{rng.randint(10**5, 10**6 - 1)}",
                    procedure=procedure,
                    institution=institution,
                    referring=referring,
                    performing=performing,
                    reading=reading,
                    operator=operator,
                    station=_station(procedure.modality, institution[0], number + 1),
                    serial=f"SN{rng.randint(10**6, 10**7 - 1)}",
                    patient_uid=patient_uid,
                    prior_uid=study_uids[number - 1],
                )
            )
        plans.append(studies)
    return identities, plans


def plan_series(
    study: StudyPlan,
    uids: UidMaker,
    number: int,
    modality: str,
    description: str,
    rng: random.Random,
) -> SeriesPlan:
    return SeriesPlan(
        study=study,
        uid=uids.make(study.date),
        number=number,
        modality=modality,
        description=description,
        time=_time(rng),
        frame_of_reference=uids.make(study.date),
    )
