"""Every element at every depth (file meta, sequences, private tags) checked for identifiers.

Rules, per element holding text:
- known values of the source (names in any form, IDs, addresses, dates, UIDs);
- identifier shapes (names, NIR, INS, phones, e-mails, addresses, postcodes, written dates);
- person-name (PN) values that are not pseudonyms;
- dates (DA, DT) equal to a known source date: not shifted;
- free text in an attribute outside the allow-list (or private, unless safe private kept).
Binary private or unknown (UN) values are read for printable text and checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_has_tag, dictionary_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacsguard.core.names import name_candidates
from pacsguard.core.shapes import Hit, find_identifiers
from pacsguard.deid.grammar import Node
from pacsguard.verify.findings import IDENTIFIER, REVIEW, Finding
from pacsguard.verify.header import META_ENCODINGS, RawHeader, element
from pacsguard.verify.known import KnownValues
from pacsguard.verify.matching import known_in_text
from pacsguard.verify.policy import Policy, is_pseudonym

FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
PATTERN_VRS = FREE_TEXT_VRS | {"PN", "CS", "AE", "UR"}
BINARY_VRS = frozenset({"OB", "OW", "UN", "OF", "OD", "OL", "OV"})
NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV", "US or SS"})
MAX_BINARY = 1 << 20  # larger binary values (pixels, waveforms) are not text
PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\x80-\xff]{6,}")
# UTF-16 text (what Windows software writes in a private blob): a NUL beside each character
UTF16_RUNS = (
    (re.compile(rb"(?:[\x20-\x7e\xa0-\xff]\x00){6,}"), "utf-16-le"),
    (re.compile(rb"(?:\x00[\x20-\x7e\xa0-\xff]){6,}"), "utf-16-be"),
)
SKIP_BINARY = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
# Standard binary elements that hold a document (a CDA's XML, a PDF's text): read as the
# private ones are, since a report carries the patient's identity as plain text.
DOCUMENT_TAGS = frozenset({0x00420011})
# The patient's own attributes, checked by keyword whatever VR the file gives them (a name
# written as LO or UN is still the patient's name).
PATIENT_NAME_KEYWORDS = frozenset(
    {"PatientName", "PatientBirthName", "PatientMotherBirthName", "OtherPatientNames"}
)
PATIENT_ID_KEYWORDS = frozenset({"PatientID", "OtherPatientIDs"})
# An address in these is an organisation's (a coding scheme's registrar, a manufacturer),
# not a person's: reviewed, not failed.
ORGANISATION_RE = re.compile(r"Organization|Institution|Manufacturer|CodingScheme|Registry")


@lru_cache(maxsize=1 << 14)
def _keyword(tag: int) -> str:
    return str(dictionary_keyword(tag)) if dictionary_has_tag(tag) else ""


def keyword_of(elem: DataElement) -> str:
    """``elem.keyword``, looked up once per tag (it is asked several times an element)."""
    return _keyword(int(elem.tag))


def location_of(elem: DataElement, path: str) -> str:
    return location_for(int(elem.tag), path)


def location_for(tag: int, path: str) -> str:
    group = tag >> 16
    name = _keyword(tag) or ("private" if group & 1 else "unknown")
    here = f"({group:04X},{tag & 0xFFFF:04X}) {name}"
    return f"{path} > {here}" if path else here


Walked = tuple[DataElement, str, tuple[str, ...]]


def walk(ds: Dataset, path: str = "", within: tuple[str, ...] = ()) -> Iterator[Walked]:
    """(element, location, keywords of the enclosing sequences) for every element, depth first."""
    for elem in ds:
        yield elem, location_of(elem, path), within
        if elem.VR == "SQ" and elem.value is not None:
            inner = (*within, keyword_of(elem))
            for index, item in enumerate(elem.value):
                yield from walk(item, f"{location_of(elem, path)}[{index}]", inner)


def _strings(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


def _binary_text(elem: DataElement) -> list[str]:
    value = elem.value
    if not isinstance(value, bytes) or len(value) > MAX_BINARY or int(elem.tag) in SKIP_BINARY:
        return []
    texts = [_decode(run).strip() for run in PRINTABLE_RUN.findall(value)]
    if b"\x00" in value:
        for pattern, codec in UTF16_RUNS:
            texts += [
                t for t in (r.decode(codec).strip() for r in pattern.findall(value)) if _wordy(t)
            ]
    return texts


def _wordy(text: str) -> bool:
    """Text rather than 16-bit numbers that happen to be printable: words, digits and
    spaces, with few other signs (numbers from 32 to 126 are one sign in three)."""
    letters = sum(c.isalpha() for c in text)
    plain = letters + sum(c.isdigit() or c == " " for c in text)
    return letters >= 4 and plain >= 0.85 * len(text)


def _decode(run: bytes) -> str:
    """Bytes of unknown character set: UTF-8 when they are, else Latin-1 (never fails)."""
    try:
        return run.decode("utf-8")
    except UnicodeDecodeError:
        return run.decode("latin-1")


MOJIBAKE = re.compile("[ÃÂ][\x80-\xbf]")


def repaired(text: str) -> str | None:
    """UTF-8 text read as Latin-1 ("HÃ©lÃ¨ne": a damaged file's declared character set),
    read again as UTF-8; None when ``text`` shows no such damage."""
    if not MOJIBAKE.search(text):
        return None
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


# UIDs that name a kind of thing (a SOP class, a transfer syntax, a coding scheme), not an
# instance: never pseudonymised.
TYPE_UID_KEYWORDS = frozenset(
    {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID"}
    | {"ImplementationClassUID", "AffectedSOPClassUID", "RequestedSOPClassUID"}
    | {"ReferencedSOPClassUIDInFile", "CodingSchemeUID", "MappingResourceUID"}
    | {"ContextGroupExtensionCreatorUID", "PrivateInformationCreatorUID"}
    | {"ReferencedTransferSyntaxUIDInFile", "SOPClassesInStudy", "RelatedGeneralSOPClassUID"}
    | {"OriginalSpecializedSOPClassUID", "ReferencedColorPaletteInstanceUID"}
)


def not_replaced(elem: DataElement, text: str) -> bool:
    uid = text.strip(" \x00")
    if not uid or uid.startswith("2.25.") or keyword_of(elem) in TYPE_UID_KEYWORDS:
        return False
    return not (elem.tag.is_private or uid in UID_dictionary)


# Values repeat across the files of a tree (descriptions, device names, codes): the detectors
# are pure functions of the text, so their answers are kept per exact text.
@lru_cache(maxsize=1 << 16)
def shapes_of(text: str, dates: bool, ner: bool) -> tuple[Hit, ...]:
    return tuple(find_identifiers(text, dates=dates, ner=ner))


@lru_cache(maxsize=1 << 16)
def has_lexicon_name(text: str) -> bool:
    return bool(name_candidates(text))


def is_dummy_date(text: str) -> bool:
    """A placeholder the profile writes for dates it must keep (D): year 1900 or before."""
    year = text.strip()[:4]
    return year.isdigit() and int(year) <= 1900


def _is_private_creator(elem: DataElement) -> bool:
    return bool(elem.tag.is_private and 0x0010 <= elem.tag.element <= 0x00FF)


# What one element gave, without its location: (kind, detail, value, class, reason) each.
Verdict = tuple[tuple[str, str, str, str, str], ...]
VerdictKey = tuple[int, str, tuple[str, ...], str, bytes, tuple[str, ...]]
MEMO_VALUE = 4096  # longer values are checked each time (the memo stays small)
MEMO_ENTRIES = 1 << 16
MEMO_BYTES = 16 << 20  # value bytes held by the memo, at most


class VerdictMemo:
    """Verdicts per exact element context and bytes, across the files of one run.

    An element's findings are a pure function of its tag (keyword, private or not), its VR,
    the keywords of its enclosing sequences, the file's dates marker, the exact bytes of its
    value and the character set they are read in, under the run's known values, options and
    ``ner``: the key is all of these but the run's own, so one memo serves one run.
    Values repeat across the files of a tree (descriptions, code meanings, devices): those
    are decoded and checked once. Bounded (entries and value bytes): emptied when full."""

    def __init__(self, entries: int = MEMO_ENTRIES, size: int = MEMO_BYTES) -> None:
        self.entries, self.size = entries, size
        self.verdicts: dict[VerdictKey, Verdict] = {}
        self.held = 0  # value bytes in the keys
        self.hits = 0
        self.misses = 0

    def get(self, key: VerdictKey) -> Verdict | None:
        found = self.verdicts.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: VerdictKey, verdict: Verdict) -> None:
        if len(self.verdicts) >= self.entries or self.held + len(key[4]) > self.size:
            self.verdicts.clear()
            self.held = 0
        self.verdicts[key] = verdict
        self.held += len(key[4])


PATIENT_KEYWORDS = PATIENT_NAME_KEYWORDS | PATIENT_ID_KEYWORDS


class ElementChecker:
    def __init__(
        self, known: KnownValues | None, policy: Policy, prefix: str, *, ner: bool = True
    ) -> None:
        self.ner = ner
        self.known = known
        self.policy = policy
        self.prefix = prefix
        self.findings: list[Finding] = []
        self.seen: set[tuple[str, str]] = set()
        self.dates_marker = ""

    def add(
        self, location: str, kind: str, detail: str, value: str, klass: str = "", reason: str = ""
    ) -> None:
        where = f"{self.prefix}{location}"
        if (where, kind) in self.seen:
            return  # one finding per kind and place: the first detector's detail
        self.seen.add((where, kind))
        self.findings.append(Finding("", where, kind, detail, value, klass, reason))

    def check(self, ds: Dataset) -> list[Finding]:
        marker = ds.get("LongitudinalTemporalInformationModified", "")
        self.dates_marker = str(marker or "").strip().upper()
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            for walked in walk(meta):
                self.element(*walked)
        for walked in walk(ds):
            self.element(*walked)
        return self.findings

    def check_raw(self, header: RawHeader, memo: VerdictMemo) -> list[Finding]:
        """As :meth:`check`, over the bytes of ``header``: the same findings, in the same
        order (pydicom's Dataset and this walk agree on every file ``read_raw`` accepts)."""
        self.dates_marker = header.text(0x00280303).upper()
        self.raw_nodes(header.buf, header.meta, META_ENCODINGS, memo)
        self.raw_nodes(header.buf, header.elements, header.encodings, memo)
        return self.findings

    def raw_nodes(
        self,
        buf: bytes,
        nodes: list[Node],
        encodings: tuple[str, ...],
        memo: VerdictMemo,
        path: str = "",
        within: tuple[str, ...] = (),
    ) -> None:
        for node in nodes:
            tag, vr = node.tag, node.vr
            if node.items is not None:
                location = location_for(tag, path)
                inner = (*within, _keyword(tag))
                for index, item in enumerate(node.items):
                    self.raw_nodes(buf, item, encodings, memo, f"{location}[{index}]", inner)
                continue
            unread = vr in BINARY_VRS and not (tag >> 16) & 1 and tag not in DOCUMENT_TAGS
            if (vr in NUMERIC_VRS or unread) and _keyword(tag) not in PATIENT_KEYWORDS:
                continue  # as element(): no text in it, nothing to find
            raw = buf[node.value : node.end]
            if len(raw) > MEMO_VALUE:
                self.element(element(buf, node, encodings), location_for(tag, path), within)
                continue
            key = (tag, vr, within, self.dates_marker, raw, encodings)
            verdict = memo.get(key)
            if verdict is None:
                before = len(self.findings)
                self.element(element(buf, node, encodings), location_for(tag, path), within)
                verdict = tuple(
                    (f.kind, f.detail, f.value, f.klass, f.reason) for f in self.findings[before:]
                )
                memo.put(key, verdict)
            elif verdict:
                location = location_for(tag, path)
                for kind, detail, value, klass, reason in verdict:
                    self.add(location, kind, detail, value, klass, reason)

    def element(self, elem: DataElement, location: str, within: tuple[str, ...]) -> None:
        vr = str(elem.VR)
        if vr == "SQ":
            return
        by_option = self.policy.by_option
        keyword = keyword_of(elem)
        optional = keyword in by_option or any(k in by_option for k in within)
        retained = keyword in self.policy.retained
        if vr != "PN" and keyword in PATIENT_KEYWORDS:
            self.patient_attribute(elem, location, vr)
        if vr in BINARY_VRS:  # never str() a binary value: a frame of pixels is megabytes
            read = elem.tag.is_private or vr == "UN" or int(elem.tag) in DOCUMENT_TAGS
            texts = _binary_text(elem) if read else []
            vr = "UN"
        elif vr in NUMERIC_VRS:
            return
        else:
            texts = _strings(elem)
        for text in texts:
            fixed = repaired(text)
            for one in (text,) if fixed is None else (fixed, text):
                self.text(
                    elem, location, one, vr=vr, optional=optional, retained=retained, within=within
                )

    def text(
        self,
        elem: DataElement,
        location: str,
        text: str,
        *,
        vr: str,
        optional: bool = False,
        retained: bool = False,
        within: tuple[str, ...] = (),
    ) -> None:
        before = len(self.findings)
        known, policy = self.known, self.policy
        if vr == "UI":
            if known is not None:
                for kind in known_in_text(text, known, policy, uid=True):
                    self.add(location, "known-value", kind, text)
            if not policy.uids_retained and not_replaced(elem, text):
                reason = "not a pseudonymous UID (2.25.…) nor a well-known one"
                self.add(location, "uid-not-replaced", "", text, REVIEW, reason)
            return
        keyword = keyword_of(elem)
        if vr in ("DA", "DT") or keyword == "PatientBirthDate":
            self.date(elem, location, text)
            return
        if vr in ("TM", "DS", "IS", "AS", "US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"):
            return
        if known is not None:
            for kind in known_in_text(text, known, policy):
                self.add(location, "known-value", kind, text)
        if (vr in PATTERN_VRS or vr == "UN") and not retained:
            dates = keyword not in policy.allowed
            organisation = any(ORGANISATION_RE.search(k) for k in (keyword, *within))
            free = vr in FREE_TEXT_VRS or vr == "UN"
            for hit in shapes_of(text, dates, self.ner and free):
                if not free and hit.detail in ("given and family name", "named entity"):
                    continue  # codes ("SMALL PARTS"), AE titles, URIs: no names by lexicon
                klass, reason = "", ""
                if organisation and hit.kind in ("postcode-town", "street-address"):
                    klass, reason = REVIEW, "an address in an organisation's attribute"
                self.add(location, hit.kind, hit.detail, hit.text, klass, reason)
        if vr == "PN" and not is_pseudonym(text):
            self.add(location, "person-name", "person name attribute", text, IDENTIFIER)
        if len(self.findings) > before or is_pseudonym(text):
            return
        free = vr in FREE_TEXT_VRS or vr == "UN"
        lexicon_name = free and not retained and has_lexicon_name(text)
        if not optional and self.not_allowed(elem, text, vr):
            reason = "free text outside the allow-list" + (
                ", holding a word of the name lexicons" if lexicon_name else ""
            )
            self.add(location, "text-not-allowed", "", text, REVIEW, reason)
        elif optional and lexicon_name:  # a description kept by an option
            reason = "a word of the name lexicons, no other evidence of a person"
            self.add(location, "person-name", "lexicon name only", text, REVIEW, reason)

    def date(self, elem: DataElement, location: str, text: str) -> None:
        """Dates not shifted: a known source date, a birth date (the profile empties it), or
        any date in an output not marked as shifted (Longitudinal Temporal Information
        Modified), unless full dates were retained on purpose."""
        if not text.strip(" \x00") or is_dummy_date(text):
            return
        if keyword_of(elem) == "PatientBirthDate":
            self.add(location, "unshifted-date", "birth date present", text)
            return
        if self.policy.dates_retained:
            return
        day = text.strip()[:8]
        known = self.known
        if known is not None and day in known.birth_dates:
            self.add(location, "unshifted-date", "birth date", text)
        elif known is not None and day in known.dates:
            self.add(location, "unshifted-date", "source date", text)
        elif self.dates_marker != "MODIFIED":
            reason = "the output does not say its dates were shifted (0028,0303)"
            self.add(
                location, "unshifted-date", "dates not marked as shifted", text, REVIEW, reason
            )

    def patient_attribute(self, elem: DataElement, location: str, vr: str) -> None:
        """A patient's name or ID under a VR not its own: any value but a pseudonym leaks."""
        values = _binary_text(elem) if vr in BINARY_VRS else _strings(elem)
        for text in values:
            if text.strip(" \x00") and not is_pseudonym(text):
                keyword = keyword_of(elem)
                kind = "person-name" if keyword in PATIENT_NAME_KEYWORDS else "patient-id"
                reason = f"{keyword} written with VR {vr}, not a pseudonym"
                self.add(location, kind, "patient attribute, wrong VR", text, IDENTIFIER, reason)

    def not_allowed(self, elem: DataElement, text: str, vr: str) -> bool:
        if vr not in FREE_TEXT_VRS and vr != "UN":
            return False
        if not text.strip(" \x00") or is_pseudonym(text):
            return False
        if elem.tag.is_private:
            return not (_is_private_creator(elem) or self.policy.private_text_allowed)
        return keyword_of(elem) not in self.policy.allowed


def check_elements(
    ds: Dataset, known: KnownValues | None, policy: Policy, prefix: str = "", *, ner: bool = True
) -> list[Finding]:
    """Findings in the header of ``ds`` (file meta included), locations prefixed by ``prefix``.

    ``ner``: let spaCy's model settle the texts the cheaper name rules leave in doubt."""
    return ElementChecker(known, policy, prefix, ner=ner).check(ds)
