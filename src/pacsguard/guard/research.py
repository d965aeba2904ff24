"""The research role: what a research client may ask, and what it gets back.

Queries: a short list of keys may carry matching values (the query level, modalities, SOP
classes, and the pseudonymous Patient ID and UIDs, translated back through the local
mapping). Any other key given a value is refused, by name: an allow-list, so a key nobody
thought of (a private tag, a new attribute, a sequence item) is refused too. Keys asked empty
are return keys, answered with their de-identified values.

Answers: every C-FIND response and every retrieved instance goes through the deid engine
(``pacsguard.deid.FileDeidentifier``, the same rules and pseudonyms as ``pacsguard deid``),
and a response carries only the keys that were asked.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from pacsguard.core.keys import ProjectKey
from pacsguard.guard.config import Research
from pacsguard.guard.mapping import MAPPING_FILE, Mapping
from pacsguard.net.rawquery import key_name as raw_key_name

PATIENT_ID = Tag(0x0010, 0x0020)
QUERY_LEVEL = Tag(0x0008, 0x0052)
CHARSET = Tag(0x0008, 0x0005)
RETRIEVE_AE = Tag(0x0008, 0x0054)
UID_KEYS = {
    Tag(0x0020, 0x000D): "StudyInstanceUID",
    Tag(0x0020, 0x000E): "SeriesInstanceUID",
    Tag(0x0008, 0x0018): "SOPInstanceUID",
}
# Keys that may carry a matching value for a research client (besides Patient ID and UIDs).
FREE_MATCH = {
    QUERY_LEVEL,
    CHARSET,
    Tag(0x0008, 0x0060),  # Modality
    Tag(0x0008, 0x0061),  # ModalitiesInStudy
    Tag(0x0008, 0x0016),  # SOPClassUID
    Tag(0x0008, 0x0062),  # SOPClassesInStudy
}
WILDCARDS = set("*?")


class RefusedKey(Exception):
    """A research query used an identifying key as a matching value; ``keyword`` names it."""

    def __init__(self, keyword: str) -> None:
        super().__init__(keyword)
        self.keyword = keyword


@dataclass(frozen=True)
class ResearchQuery:
    """The query to send upstream (None: it can match nothing) and the tags that were asked."""

    upstream: Dataset | None
    asked: tuple[BaseTag, ...]


def key_name(element: DataElement) -> str:
    """The keyword of a key (or its tag for a private or unknown one): never its value."""
    return raw_key_name(int(element.tag))


def key_names(ds: Dataset) -> list[str]:
    return [key_name(e) for e in ds if e.tag not in (QUERY_LEVEL, CHARSET)]


def _empty(element: DataElement) -> bool:
    if element.VR == "SQ":
        return all(all(_empty(e) for e in item) for item in element.value or [])
    value = element.value
    if value is None:
        return True
    if isinstance(value, bytes):
        return not value.strip(b" \x00")
    if isinstance(value, str):
        return not value.strip(" \x00")
    try:
        return len(value) == 0
    except TypeError:
        return False


def _values(element: DataElement) -> list[str]:
    value = element.value
    items = list(value) if not isinstance(value, str | bytes) and value is not None else [value]
    return [str(v).strip(" \x00") for v in items if str(v).strip(" \x00")]


STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
# What identifies the patient and the people of the study, as return keys of each level
# (PS3.4 C.6.1.1 and C.6.2.1): Patient Root's STUDY level takes the patient's unique key only.
_PATIENT_KEYS = (
    (0x00100020, "LO"),  # Patient ID
    (0x00100010, "PN"),  # Patient's Name
    (0x00100030, "DA"),  # Patient's Birth Date
    (0x00101000, "LO"),  # Other Patient IDs
    (0x00101001, "PN"),  # Other Patient Names
)
_STUDY_KEYS = (
    (0x00080050, "SH"),  # Accession Number
    (0x00200010, "SH"),  # Study ID
    (0x00080090, "PN"),  # Referring Physician's Name
    (0x00081060, "PN"),  # Name of Physician(s) Reading Study
)


def identity_keys(level: str, model: str) -> tuple[tuple[int, str], ...]:
    """The identifying return keys a research C-FIND at ``level`` asks of the PACS."""
    if level == "PATIENT":
        return _PATIENT_KEYS
    if level == "STUDY":
        patient = _PATIENT_KEYS if model == STUDY_ROOT_FIND else _PATIENT_KEYS[:1]
        return patient + _STUDY_KEYS
    return ()


def _identifiers(ds: Dataset) -> Dataset:
    """A copy of the keys the mapping is made of."""
    out = Dataset()
    for tag in (PATIENT_ID, *UID_KEYS):
        if tag in ds:
            out.add(DataElement(tag, ds[tag].VR, ds[tag].value))
    return out


class ResearchView:
    """The de-identifying side of the guard, for every research client."""

    def __init__(self, key: ProjectKey, settings: Research, state: Path) -> None:
        from pacsguard.deid import DeidConfig, FileDeidentifier

        work = state / "research"
        self.spool = work / "spool"
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = DeidConfig(options=settings.options, policy=settings.policy)
        self.node = FileDeidentifier(key, config, work / "out", work / "quarantine")
        self.mapping = Mapping(state / MAPPING_FILE)
        self._lock = threading.Lock()  # one engine, used by one association at a time

    def close(self) -> None:
        self.mapping.close()

    def query(self, identifier: Dataset, *, add_patient_id: bool, model: str = "") -> ResearchQuery:
        """Police and translate a research query (C-FIND, C-MOVE or C-GET identifier);
        ``model``: the C-FIND's information model, for the identity keys it may ask."""
        asked = tuple(e.tag for e in identifier)
        upstream = Dataset()
        for element in identifier:
            tag = element.tag
            if _empty(element):
                upstream.add(DataElement(tag, element.VR, None if element.VR != "SQ" else []))
                continue
            if tag in FREE_MATCH:
                upstream.add(element)
            elif tag == PATIENT_ID:
                value = str(element.value).strip(" \x00")
                if WILDCARDS & set(value) or "\\" in value:
                    raise RefusedKey("PatientID")
                real = self.mapping.real("patient-id", value)
                if real is None:
                    return ResearchQuery(None, asked)
                upstream.add(DataElement(tag, element.VR, real))
            elif tag in UID_KEYS:
                reals = [r for r in (self.mapping.real("uid", v) for v in _values(element)) if r]
                if not reals:
                    return ResearchQuery(None, asked)
                upstream.add(DataElement(tag, "UI", reals if len(reals) > 1 else reals[0]))
            else:
                raise RefusedKey(key_name(element))
        level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
        if add_patient_id and level in ("PATIENT", "STUDY"):
            # Asked of the PACS, then dropped unless the client asked: the Patient ID gives
            # the patient's date shift, as the files have it; the names and IDs let the
            # engine find them in the text the client did ask for (a study description that
            # names the patient was answered as it was: the engine never saw the name).
            for key, vr in identity_keys(level, model):
                if key not in upstream:
                    upstream.add(DataElement(key, vr, None))
        return ResearchQuery(upstream, asked)

    def response(self, identifier: Dataset, asked: tuple[BaseTag, ...], guard_ae: str) -> Dataset:
        """A de-identified C-FIND response holding only the keys asked; raises the engine's
        ``UncleanError`` when it cannot be cleaned."""
        before = _identifiers(identifier)  # the engine may change the dataset it is given
        with self._lock:
            clean = self.node.dataset(identifier)
        self._remember(before, clean)
        # A date is shifted by its patient's offset, keyed by the Patient ID; a response
        # without one (SERIES and IMAGE levels, where no level key may ask it) would have
        # every patient's dates shifted alike: one real date known would give all. Empty.
        unkeyed = not str(identifier.get("PatientID", "") or "").strip()
        out = Dataset()
        if CHARSET in clean:
            out.add(clean[CHARSET])
        for tag in asked:
            if tag == RETRIEVE_AE:
                out.RetrieveAETitle = guard_ae
            elif tag in clean and unkeyed and clean[tag].VR in ("DA", "DT"):
                out.add(DataElement(tag, clean[tag].VR, None))
            elif tag in clean:
                out.add(clean[tag])
            else:  # removed by the engine: answered empty (built from the tag, not the value)
                vr = identifier[tag].VR if tag in identifier else "UN"
                out.add(DataElement(tag, vr, [] if vr == "SQ" else None))
        return out

    def instance(self, path: Path) -> tuple[Path | None, str | None]:
        """De-identify a retrieved instance: a fresh file of the relay's own, or None and the
        engine's reason (no PHI) when it went to quarantine."""
        with self._lock:
            outcome = self.node.run(path)
            if outcome.output is None:
                return None, outcome.reason or "quarantined"
            mine = self.spool / f"{uuid.uuid4().hex}.dcm"
            shutil.move(outcome.output, mine)  # the next run may write the same output name
        try:
            before = dcmread(path, stop_before_pixels=True, specific_tags=list(UID_KEYS))
            after = dcmread(mine, stop_before_pixels=True, specific_tags=list(UID_KEYS))
        except Exception:  # the mapping is a convenience; the instance itself is clean
            return mine, None
        self._remember(before, after)
        return mine, None

    def _remember(self, before: Dataset, after: Dataset) -> None:
        """Pseudonym -> real value pairs of what the engine just rewrote."""
        pairs = []
        if PATIENT_ID in before and PATIENT_ID in after:
            real, pseudo = str(before.PatientID).strip(), str(after.PatientID).strip()
            if real and pseudo and real != pseudo:
                pairs.append(("patient-id", pseudo, real))
        for tag in UID_KEYS:
            if tag in before and tag in after:
                real, pseudo = str(before[tag].value).strip(), str(after[tag].value).strip()
                if real and pseudo and real != pseudo:
                    pairs.append(("uid", pseudo, real))
        self.mapping.remember(pairs)
