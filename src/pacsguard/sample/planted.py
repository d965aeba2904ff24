"""Find where each planted value ended up, by walking the dataset about to be written.

Walking the real dataset (instead of noting values while building it) keeps the answer
key true to the files by construction: a value is listed where it is, and only there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.tag import BaseTag

from pacsguard.sample.answer_key import Planted
from pacsguard.sample.identities import Identity, Person, french_date, strip_accents
from pacsguard.sample.plan import IMPLEMENTATION_UID, UID_ROOT, StudyPlan

BIRTH_DATE_TAG = 0x00100030
SEX_TAG = 0x00100040
AGE_TAG = 0x00101010
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


@dataclass(frozen=True)
class Needle:
    value: str
    kind: str


def _person_forms(person: Person) -> list[str]:
    return [person.dicom, *person.natural_forms]


def patient_needles(who: Identity, studies: Iterable[StudyPlan]) -> list[Needle]:
    """Every value planted for one patient, in every form it was written, longest first."""
    out: list[Needle] = []
    names = [*_person_forms(who.person), who.person.family, who.person.family.upper()]
    names.append(strip_accents(who.person.family.upper()))
    names += _person_forms(who.other_name)
    out += [Needle(v, "patient-name") for v in names]
    out += [Needle(v, "patient-id") for v in (who.patient_id, *who.other_ids)]
    birth = who.birth_date
    out += [Needle(v, "birth-date") for v in (french_date(birth), birth.isoformat())]
    out += [Needle(v, "nir") for v in (who.nir, who.nir_spaced)]
    out += [Needle(v, "phone") for v in (*who.phones, who.phone_international)]
    out += [Needle(who.email, "email"), Needle(who.address, "address")]
    for study in studies:
        out += [Needle(french_date(study.date), "date"), Needle(study.accession, "accession")]
        # Request and procedure step IDs are derived from the accession number's digits.
        out += [Needle(study.accession[2:], "accession"), Needle(study.study_id, "study-id")]
        for person in (study.referring, study.performing, study.reading):
            out += [Needle(v, "physician") for v in _person_forms(person)]
        out += [Needle(v, "operator") for v in _person_forms(study.operator)]
        out += [Needle(v, "institution") for v in study.institution]
        out += [Needle(strip_accents(study.institution[0]), "institution")]
        out += [Needle(study.station, "device"), Needle(study.serial, "device")]
    unique = {(n.value, n.kind): n for n in out if n.value}
    return sorted(unique.values(), key=lambda n: (-len(n.value), n.value, n.kind))


def location_of(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _elements(ds: Dataset, prefix: str) -> Iterator[tuple[str, DataElement]]:
    for elem in ds:
        location = prefix + location_of(elem.tag)
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from _elements(item, f"{location}[{index}]>")
        else:
            yield location, elem


def _texts(elem: DataElement) -> list[str]:
    if elem.VR in BINARY_VRS or elem.value is None:
        return []
    values = elem.value if elem.VM > 1 else [elem.value]
    return [str(v) for v in values if isinstance(v, str) or elem.VR == "PN"]


def _by_vr(elem: DataElement, text: str) -> str | None:
    """The kind of an element planted by its type alone (dates, times, our UIDs), if any."""
    if elem.tag == BIRTH_DATE_TAG:
        return "birth-date"
    if elem.tag == SEX_TAG:
        return "sex"
    if elem.tag == AGE_TAG:
        return "age"
    if elem.VR in ("DA", "DT"):
        return "date"
    if elem.VR == "TM":
        return "time"
    if elem.VR == "UI" and text.startswith(UID_ROOT + ".") and text != IMPLEMENTATION_UID:
        return "uid"
    return None


def _matches(text: str, needles: list[Needle]) -> Iterator[Needle]:
    """Needles found in text, longest first, never two over the same characters."""
    taken: list[tuple[int, int]] = []
    for needle in needles:
        start = text.find(needle.value)
        found = False
        while start >= 0:
            end = start + len(needle.value)
            if all(end <= a or start >= b for a, b in taken):
                taken.append((start, end))
                found = True
            start = text.find(needle.value, start + 1)
        if found:
            yield needle


def find_planted(
    ds: Dataset, file: str, needles: list[Needle], *, with_meta: bool = True
) -> list[Planted]:
    found: list[Planted] = []
    sources = [("", ds)]
    if with_meta and hasattr(ds, "file_meta"):
        sources.insert(0, ("", ds.file_meta))
    for prefix, dataset in sources:
        for location, elem in _elements(dataset, prefix):
            for text in _texts(elem):
                kind = _by_vr(elem, text)
                if kind is not None:
                    if text:
                        found.append(Planted(file, location, kind, text))
                    continue
                found += [Planted(file, location, n.kind, n.value) for n in _matches(text, needles)]
    return found
