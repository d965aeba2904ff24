"""The answer key: every identifier the generator planted, where, and what it wrote.

``OUT/answer-key.json`` is test truth (PHI-like by design): the de-identification,
verification and scan tests read it; it is never an input of ``deid``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ANSWER_KEY_NAME = "answer-key.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Planted:
    """One planted value. ``location`` is a tag path such as ``(0040,0275)[0]>(0032,1060)``,
    ``pixels`` (burned into the image) or ``(6000,3000)`` (drawn into an overlay)."""

    file: str
    location: str
    kind: str
    value: str


@dataclass(frozen=True)
class FrameBox:
    """Where a burned text lies in one frame: pixel box, x1 and y1 exclusive."""

    frame: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class BurnedText:
    file: str
    location: str
    kind: str
    text: str
    boxes: tuple[FrameBox, ...]


@dataclass(frozen=True)
class FileEntry:
    path: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax: str
    has_preamble: bool
    has_file_meta: bool
    number_of_frames: int


@dataclass(frozen=True)
class SeriesKey:
    series_instance_uid: str
    modality: str
    description: str
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True)
class StudyKey:
    study_instance_uid: str
    accession_number: str
    study_id: str
    study_date: str
    description: str
    series: tuple[SeriesKey, ...]


@dataclass(frozen=True)
class Counts:
    studies: int
    series: int
    instances: int


@dataclass(frozen=True)
class PatientKey:
    patient_id: str
    name: str
    names: tuple[str, ...]
    family_name: str
    given_name: str
    sex: str
    birth_date: str
    address: str
    phones: tuple[str, ...]
    email: str
    nir: str
    other_patient_ids: tuple[str, ...]
    other_names: tuple[str, ...]
    studies: tuple[StudyKey, ...]
    counts: Counts


@dataclass(frozen=True)
class Totals:
    patients: int
    studies: int
    series: int
    instances: int


@dataclass(frozen=True)
class AnswerKey:
    seed: int
    patients: tuple[PatientKey, ...]
    planted: tuple[Planted, ...]
    burned_in: tuple[BurnedText, ...]
    files: tuple[FileEntry, ...]
    totals: Totals
    staff: tuple[str, ...] = ()
    institutions: tuple[str, ...] = ()
    schema_version: int = field(default=SCHEMA_VERSION)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AnswerKey:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            seed=raw["seed"],
            patients=tuple(_patient(p) for p in raw["patients"]),
            planted=tuple(Planted(**p) for p in raw["planted"]),
            burned_in=tuple(_burned(b) for b in raw["burned_in"]),
            files=tuple(FileEntry(**f) for f in raw["files"]),
            totals=Totals(**raw["totals"]),
            staff=tuple(raw.get("staff", ())),
            institutions=tuple(raw.get("institutions", ())),
            schema_version=raw.get("schema_version", SCHEMA_VERSION),
        )

    def values(self, kind: str | None = None) -> set[str]:
        """Every distinct planted value (of one kind, when given)."""
        return {p.value for p in self.planted if kind is None or p.kind == kind}


def _burned(raw: dict[str, Any]) -> BurnedText:
    boxes = tuple(FrameBox(b["frame"], (b["box"][0], b["box"][1], b["box"][2], b["box"][3]))
                  for b in raw["boxes"])  # fmt: skip
    return BurnedText(raw["file"], raw["location"], raw["kind"], raw["text"], boxes)


def _study(raw: dict[str, Any]) -> StudyKey:
    series = tuple(
        SeriesKey(
            s["series_instance_uid"], s["modality"], s["description"], tuple(s["sop_instance_uids"])
        )
        for s in raw["series"]
    )
    return StudyKey(
        raw["study_instance_uid"],
        raw["accession_number"],
        raw["study_id"],
        raw["study_date"],
        raw["description"],
        series,
    )


def _patient(raw: dict[str, Any]) -> PatientKey:
    fields = dict(raw)
    for name in ("names", "phones", "other_patient_ids", "other_names"):
        fields[name] = tuple(fields[name])
    fields["studies"] = tuple(_study(s) for s in raw["studies"])
    fields["counts"] = Counts(**raw["counts"])
    return PatientKey(**fields)


def load_answer_key(path: Path) -> AnswerKey:
    """Load ``answer-key.json``, or the one inside ``path`` when given the output folder."""
    if path.is_dir():
        path = path / ANSWER_KEY_NAME
    return AnswerKey.from_json(path.read_text(encoding="utf-8"))
