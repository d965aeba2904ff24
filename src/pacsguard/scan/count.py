"""Counting what a DICOM archive exposes with C-FIND, without keeping any identifier.

The study query asks only for counting keys (Study Instance UID, Number of Study Related
Series/Instances, Modalities in Study). When an archive does not fill the counts, the
series and image levels are walked (inside the same association) and only responses are
counted. Every query stops at the cap: a C-CANCEL is sent and the count reads "at least".
UIDs are held in memory while counting and dropped afterwards; nothing is logged.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from pydicom.dataset import Dataset

from pacsguard.net.sockets import settle
from pacsguard.scan.dimse import PATIENT_ROOT, STUDY_ROOT
from pacsguard.scan.model import Exposure, as_count

PENDING = (0xFF00, 0xFF01)
SUCCESS = 0x0000
CANCELLED = 0xFE00
DRAIN_GRACE = 50

Outcome = Literal["complete", "capped", "refused", "failed"]


@dataclass
class Answer:
    """The responses to one C-FIND, reduced to the keys that counting needs."""

    outcome: Outcome
    rows: list[dict[str, Any]] = field(default_factory=list)


class Finder:
    """Runs capped C-FINDs on one established association."""

    def __init__(self, assoc: Any, cap: int, seconds: float = float("inf")) -> None:
        self.assoc = assoc
        self.cap = cap
        self.seconds = seconds  # a whole query's time: a peer trickling answers is left
        self._ids = itertools.count(1)
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        self.study_root = STUDY_ROOT in accepted
        self.patient_root = PATIENT_ROOT in accepted

    def find(self, model: str, query: Dataset, keep: tuple[str, ...], limit: int) -> Answer:
        if not self.assoc.is_established:
            return Answer("failed")
        try:
            return self._find(model, query, keep, limit)
        except (RuntimeError, ValueError, OSError):  # the peer went away mid-query
            return Answer("failed")

    def _find(self, model: str, query: Dataset, keep: tuple[str, ...], limit: int) -> Answer:
        msg_id = next(self._ids) % 65536
        answer = Answer("failed")
        cancelled = False
        extra = 0
        settle(self.assoc)  # the previous query's reactor pause must be over (net.sockets)
        deadline = time.monotonic() + self.seconds
        for status, identifier in self.assoc.send_c_find(query, model, msg_id=msg_id):
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in PENDING and time.monotonic() > deadline:  # counted so far: "at least"
                self.assoc.abort()
                answer.outcome = "capped"
                return answer
            if code in PENDING:
                if len(answer.rows) < limit:
                    answer.rows.append(_reduce(identifier, keep))
                    continue
                extra += 1
                if not cancelled:
                    self.assoc.send_c_cancel(msg_id, query_model=model)
                    cancelled = True
                if extra > DRAIN_GRACE:  # the peer ignores C-CANCEL: stop listening
                    self.assoc.abort()
                    answer.outcome = "capped"
                    return answer
                continue
            if code == SUCCESS:
                answer.outcome = "capped" if cancelled else "complete"
            elif code == CANCELLED:
                answer.outcome = "capped"
            elif code == -1:
                answer.outcome = "failed"
            else:
                answer.outcome = "refused" if not answer.rows else "failed"
            break
        return answer


def _reduce(identifier: Dataset | None, keep: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if identifier is None:
        return row
    for keyword in keep:
        element = identifier.get(keyword)
        if element is None or element == "":
            continue
        row[keyword] = element
    return row


def _query(level: str, **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _sum_of(rows: list[dict[str, Any]], keyword: str) -> int | None:
    values = [as_count(row.get(keyword)) for row in rows]
    if not rows or any(v is None for v in values):
        return None if rows else 0
    return sum(v for v in values if v is not None)


@functools.cache
def modality_terms() -> frozenset[str]:
    """The Modality defined terms a report may repeat (``modalities.txt``)."""
    text = resources.files(__package__).joinpath("modalities.txt").read_text(encoding="utf-8")
    return frozenset(w for line in text.splitlines() if (w := line.split("#")[0].strip()))


def _modalities(rows: list[dict[str, Any]]) -> list[str]:
    found: set[str] = set()
    other = 0
    for row in rows:
        value = row.get("ModalitiesInStudy")
        items = str(value or "").split("\\") if isinstance(value, str) else list(value or [])
        for item in (str(v).strip() for v in items):
            if item in modality_terms():
                found.add(item)
            elif item:
                other += 1
    return sorted(found) + ([f"other ({other})"] if other else [])


STUDY_KEYS = (
    "StudyInstanceUID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "ModalitiesInStudy",
)


FindState = Literal["answered", "refused", "not-offered"]


def count_exposure(finder: Finder) -> tuple[FindState, Exposure]:
    """Count patients, studies, series and instances; also the modalities seen."""
    if not finder.study_root and not finder.patient_root:
        return "not-offered", Exposure()
    exposure = Exposure(source="c-find")
    answered = False
    if finder.patient_root:
        patients = finder.find(PATIENT_ROOT, _query("PATIENT", PatientID=""), (), finder.cap)
        if patients.outcome in ("complete", "capped"):
            answered = True
            exposure.patients = len(patients.rows)
            exposure.capped |= patients.outcome == "capped"
    if finder.study_root:
        keys = {k: "" for k in STUDY_KEYS}
        studies = finder.find(STUDY_ROOT, _query("STUDY", **keys), STUDY_KEYS, finder.cap)
        if studies.outcome in ("complete", "capped"):
            answered = True
            _count_studies(finder, studies, exposure)
            exposure.modalities = _modalities(studies.rows)
    if not answered:
        return "refused", Exposure()
    return "answered", exposure


def _count_studies(finder: Finder, studies: Answer, exposure: Exposure) -> None:
    exposure.studies = len(studies.rows)
    exposure.capped |= studies.outcome == "capped"
    exposure.series = _sum_of(studies.rows, "NumberOfStudyRelatedSeries")
    exposure.instances = _sum_of(studies.rows, "NumberOfStudyRelatedInstances")
    if exposure.capped or (exposure.series is not None and exposure.instances is not None):
        return
    _walk_series(finder, studies.rows, exposure)


def _walk_series(finder: Finder, studies: list[dict[str, Any]], exposure: Exposure) -> None:
    """Series and image levels, study by study, under one shared cap per level.

    Counts stay unknown when the archive refuses the series level altogether; they read
    "at least" (capped) when a cap or a later refusal cut the walk short.
    """
    walk = _Walk(series_left=finder.cap, images_left=finder.cap)
    for study in studies:
        if not walk.study(finder, str(study.get("StudyInstanceUID", ""))):
            walk.complete = False
            break
    if not walk.answered:
        return
    if exposure.series is None:
        exposure.series = walk.series
    if exposure.instances is None:
        exposure.instances = walk.instances
    exposure.capped |= not walk.complete


@dataclass
class _Walk:
    series_left: int
    images_left: int
    series: int = 0
    instances: int = 0
    answered: bool = False
    complete: bool = True

    def study(self, finder: Finder, study_uid: str) -> bool:
        """Count one study's series (and images when needed); ``False`` stops the walk."""
        if not study_uid or self.series_left <= 0:
            return False
        query = _query(
            "SERIES",
            StudyInstanceUID=study_uid,
            SeriesInstanceUID="",
            NumberOfSeriesRelatedInstances="",
        )
        keep = ("SeriesInstanceUID", "NumberOfSeriesRelatedInstances")
        answer = finder.find(STUDY_ROOT, query, keep, self.series_left)
        if answer.outcome not in ("complete", "capped"):
            return False
        self.answered = True
        self.series_left -= len(answer.rows)
        self.series += len(answer.rows)
        counted = _sum_of(answer.rows, "NumberOfSeriesRelatedInstances")
        if counted is not None:
            self.instances += counted
        else:
            for series in answer.rows:
                if not self.images(finder, study_uid, str(series.get("SeriesInstanceUID", ""))):
                    return False
        return answer.outcome == "complete"

    def images(self, finder: Finder, study_uid: str, series_uid: str) -> bool:
        if self.images_left <= 0 or not series_uid:
            return False
        query = _query(
            "IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=""
        )
        answer = finder.find(STUDY_ROOT, query, (), self.images_left)
        if answer.outcome not in ("complete", "capped"):
            return False
        self.images_left -= len(answer.rows)
        self.instances += len(answer.rows)
        return answer.outcome == "complete"
