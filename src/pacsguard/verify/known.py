"""Values known to identify the source: what must never reappear in an output.

Built from the source dataset (``KnownValues.from_dataset``) for ``deid --verify``, or
from the re-identification mapping CSV (``kind,original,pseudonym``) for ``pacsguard
verify --mapping``. Values are stored normalised (upper case, accents and punctuation
folded) so that ``DUPONT^Jean``, ``Jean Dupont`` and ``dupont, jean`` all match.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from pacsguard.core.errors import InputError
from pacsguard.core.names import fold_letters as fold
from pacsguard.core.names import width
from pacsguard.core.shapes import MONTHS_EN, MONTHS_FR
from pacsguard.verify.policy import PLACEHOLDERS

# Attributes of the source whose values identify someone or something (by keyword).
NAME_KEYWORDS = (
    "PatientName",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientNames",
    "ResponsiblePerson",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
)
ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyID",
    "AdmissionID",
    "MedicalRecordLocator",
    "PatientInsurancePlanCodeSequence",
    "RequestedProcedureID",
    "ScheduledProcedureStepID",
    "PerformedProcedureStepID",
    "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest",
)
DEVICE_KEYWORDS = ("DeviceSerialNumber", "StationName", "DetectorID", "GantryID", "PlateID")
PLACE_KEYWORDS = (
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "RegionOfResidence",
)
INSTITUTION_KEYWORDS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")
DATE_KEYWORDS = (
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
)
MIN_TEXT = 3  # shorter known values (initials, "M") would match everywhere
MIN_ID = 4


def fold_compact(text: str) -> str:
    """``fold`` without the spaces: for identifiers written with or without separators."""
    return fold(text).replace(" ", "")


def is_placeholder(value: str) -> bool:
    """A source value that names no one ("ANONYMIZED", "UNKNOWN"): never a known value."""
    words = fold(value).split()
    return not words or all(w in PLACEHOLDERS for w in words)


def parse_da(value: str) -> date | None:
    text = value.strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def date_forms(day: date) -> set[str]:
    """The ways a date may be written, folded: 19560312, 12/03/1956, 12 mars 1956…"""
    d, m, y = day.day, day.month, day.year
    forms = {
        f"{y:04d}{m:02d}{d:02d}",
        f"{y:04d} {m:02d} {d:02d}",
        f"{d:02d} {m:02d} {y:04d}",
        f"{m:02d} {d:02d} {y:04d}",
        f"{d} {m} {y:04d}",
        f"{d:02d} {m:02d} {y % 100:02d}",
        f"{d:02d}{m:02d}{y:04d}",
    }
    for months in (MONTHS_EN, MONTHS_FR):
        month = months[m - 1]
        forms |= {f"{d} {month} {y}", f"{month} {d} {y}", f"{d:02d} {month} {y}"}
    return {fold(f) for f in forms}


def _name_forms(value: str) -> tuple[set[str], set[str]]:
    """(full-name forms, single name parts) of a person name in DICOM or natural form,
    from each of its component groups (alphabetic, ideographic, phonetic: PS3.5 6.2.1)."""
    full: set[str] = set()
    parts: set[str] = set()
    raw = str(value)
    for group in raw.split("=") if "^" in raw or "=" in raw else [raw]:
        group_full, group_parts = _group_forms(group)
        full |= group_full
        parts |= group_parts
    return full, parts


def _group_forms(group: str) -> tuple[set[str], set[str]]:
    if "^" in group:
        components = [fold(c) for c in group.split("^")] + ["", ""]
        family, given, middle = components[0], components[1], components[2]
    else:
        words = fold(group).split()
        if not words:
            return set(), set()
        family, given, middle = words[-1], " ".join(words[:-1]), ""
    # A source whose name was already a placeholder ("Anonymized") names no one: the
    # placeholder found again in the output is not a leak.
    parts = {
        p
        for p in f"{family} {given} {middle}".split()
        if width(p) >= MIN_TEXT and p not in PLACEHOLDERS
    }
    if not parts:
        return set(), set()
    full = {f"{given} {family}", f"{family} {given}", fold(group)}
    if family and given:
        full.add(f"{family}{given}".replace(" ", ""))  # run together, as OCR or CJK text has it
    return {" ".join(f.split()) for f in full if f.strip()}, parts


@dataclass
class KnownValues:
    """Folded identifying values of one source (or of a whole mapping)."""

    full_names: set[str] = field(default_factory=set)
    name_parts: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)  # compact-folded
    uids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)  # addresses, telephone numbers
    devices: set[str] = field(default_factory=set)  # compact-folded serial numbers, stations
    institutions: set[str] = field(default_factory=set)  # folded names and addresses
    dates: set[str] = field(default_factory=set)  # DA form YYYYMMDD
    date_texts: set[str] = field(default_factory=set)  # every written form, folded
    birth_dates: set[str] = field(default_factory=set)  # DA form

    def __repr__(self) -> str:
        return "KnownValues(<secret>)"

    def __bool__(self) -> bool:
        return any(
            (self.full_names, self.name_parts, self.identifiers, self.uids, self.texts, self.dates)
        )

    # --- building ---------------------------------------------------------------------
    def add_name(self, value: str) -> None:
        full, parts = _name_forms(value)
        self.full_names |= {f for f in full if width(f) >= MIN_TEXT}
        self.name_parts |= parts

    def add_identifier(self, value: str) -> None:
        if is_placeholder(value):
            return
        compact = fold_compact(value)
        if len(compact) >= MIN_ID:
            self.identifiers.add(compact)

    def add_text(self, value: str) -> None:
        if is_placeholder(value):
            return
        folded = fold(value)
        if len(folded) >= MIN_TEXT + 1:
            self.texts.add(folded)
        compact = fold_compact(value)
        if compact.isdigit() and len(compact) >= 6:  # a telephone number, however written
            self.identifiers.add(compact)

    def add_device(self, value: str) -> None:
        if is_placeholder(value):
            return
        compact = fold_compact(value)
        if len(compact) >= MIN_ID:
            self.devices.add(compact)

    def add_institution(self, value: str) -> None:
        if is_placeholder(value):
            return
        folded = fold(value)
        if len(folded) >= MIN_TEXT + 1:
            self.institutions.add(folded)

    def add_uid(self, value: str) -> None:
        uid = value.strip(" \x00")
        if uid:
            self.uids.add(uid)

    def add_date(self, value: str, *, birth: bool = False) -> None:
        day = parse_da(value)
        if day is None:
            return
        self.dates.add(day.strftime("%Y%m%d"))
        self.date_texts |= date_forms(day)
        if birth:
            self.birth_dates.add(day.strftime("%Y%m%d"))

    def update(self, other: KnownValues) -> None:
        self.full_names |= other.full_names
        self.name_parts |= other.name_parts
        self.identifiers |= other.identifiers
        self.uids |= other.uids
        self.texts |= other.texts
        self.devices |= other.devices
        self.institutions |= other.institutions
        self.dates |= other.dates
        self.date_texts |= other.date_texts
        self.birth_dates |= other.birth_dates

    @classmethod
    def from_dataset(cls, ds: Dataset) -> KnownValues:
        """Every identifying value of the source dataset, at every depth."""
        known = cls()
        for elem in _walk(ds):
            keyword, value = elem.keyword, elem.value
            if value is None or value == "":
                continue
            values = list(value) if isinstance(value, pydicom.multival.MultiValue) else [value]
            for one in values:
                text = str(one)
                if elem.VR == "PN" or keyword in NAME_KEYWORDS:
                    known.add_name(text)
                elif keyword in ID_KEYWORDS:
                    known.add_identifier(text)
                elif keyword in PLACE_KEYWORDS:
                    known.add_text(text)
                elif keyword in DEVICE_KEYWORDS:
                    known.add_device(text)
                elif keyword in INSTITUTION_KEYWORDS:
                    known.add_institution(text)
                elif keyword == "PatientBirthDate":
                    known.add_date(text, birth=True)
                elif elem.VR == "DA" or keyword in DATE_KEYWORDS:
                    known.add_date(text)
                elif elem.VR == "UI" and keyword not in _TYPE_UIDS:
                    known.add_uid(text)
        return known

    @classmethod
    def from_mapping(cls, path: Path) -> KnownValues:
        """Originals from a mapping CSV with header ``kind,original,pseudonym``."""
        known = cls()
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not {"kind", "original"} <= set(reader.fieldnames):
                    raise InputError(
                        f"{path}: a mapping CSV has the header kind,original,pseudonym"
                    )
                for row in reader:
                    known.add_mapping_row(row.get("kind") or "", row.get("original") or "")
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(
                f"{path}: cannot read the mapping ({exc.__class__.__name__})"
            ) from None
        return known

    def add_mapping_row(self, kind: str, original: str) -> None:
        kind = kind.strip().lower()
        if not original.strip():
            return
        if kind == "patient-name" or kind.endswith("name"):
            self.add_name(original)
        elif kind == "birth-date":
            self.add_date(original, birth=True)
        elif kind.endswith("date"):
            self.add_date(original)
        elif kind == "uid":
            self.add_uid(original)
        elif kind in ("date-offset",):
            return  # original is a patient ID, already listed under patient-id
        elif kind == "institution":
            self.add_institution(original)
        elif kind in ("device", "station"):
            self.add_device(original)
        elif kind in ("address", "phone", "text"):
            self.add_text(original)
        else:  # patient-id, accession, and any other identifier kind
            self.add_identifier(original)


_TYPE_UIDS = frozenset(
    {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID"}
    | {"ImplementationClassUID", "AffectedSOPClassUID", "RequestedSOPClassUID"}
    | {"ReferencedSOPClassUIDInFile", "CodingSchemeUID", "MappingResourceUID"}
)


def _walk(ds: Dataset) -> Iterator[pydicom.DataElement]:
    for elem in ds.iterall():
        if elem.VR == "SQ":
            continue
        yield elem
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from (e for e in meta if e.VR != "SQ")


def iter_strings(value: object) -> Iterable[str]:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        for one in value:
            yield str(one)
    elif value is not None:
        yield str(value)
