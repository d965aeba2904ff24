"""A byte-level header rewriter: the engine's output, without building a pydicom Dataset.

``rewrite`` parses an Explicit VR Little Endian header (preamble, File Meta, dataset up to
Pixel Data), asks the engine's own ``decide`` / ``decide_private`` what to do with each
element, and re-encodes only the elements that change; the rest are copied as bytes. Its
output is byte-identical to ``Transformer.transform`` followed by ``fastpath.write_header``.
Anything it does not fully reproduce (other syntaxes and character sets, policies, strict
mode, overlays, a sweep hit, values pydicom would re-encode differently, …) is declined:
``rewrite`` returns None and the caller takes the reference path.
"""

from __future__ import annotations

import bisect
import functools
import io
import operator
import struct
from dataclasses import dataclass, field
from typing import cast

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from pacsguard.deid import actions
from pacsguard.deid.acts import (
    ActOn,
    NotText,
    Replacements,
    Uncleanable,
    mapping_rows,
    replace_uids,
    swept,
)
from pacsguard.deid.engine import (
    BINARY_VRS,
    BULK_TAGS,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    MARKER_TAGS,
    SWEPT_TEXT_VRS,
    Transformer,
    may_hit,
    patient_key,
)
from pacsguard.deid.grammar import Header, Node
from pacsguard.deid.options import PIXEL_OPTIONS
from pacsguard.deid.plan import Act, Decision, Mode, decide, decide_private, references_only
from pacsguard.deid.text import (
    KnownValues,
    identity_tags,
    sweep_text,
)

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
DEFAULT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
MULTI_TEXT_VRS = frozenset({"LO", "SH", "UC"})
# Kept values the final sweep may rewrite here rather than decline (PN, UIs, binary: never).
AT_COPY_VRS = frozenset({"LO", "SH", "UC", "LT", "ST", "UT", "CS", "DA", "DT", "AE"})
SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
# Written by pydicom's write_string: default encoding, whatever the character set.
STRING_VRS = frozenset({"AS", "CS", "DA", "DT", "TM", "UR"})
NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}
BYTES_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV"})
KNOWN_VRS = (
    MULTI_TEXT_VRS
    | SINGLE_TEXT_VRS
    | STRING_VRS
    | BYTES_VRS
    | NUMBER_FORMATS.keys()
    | {"AE", "AT", "DS", "IS", "PN", "SQ", "UI", "UN"}
)
CHARSETS = {b"": "latin-1", b"ISO_IR 100": "latin-1", b"ISO_IR 192": "utf-8"}
MAPPING_TAGS = (0x00080050, 0x00100010, 0x00100020, 0x00100030, 0x00080005)
# Attributes the reference decodes while it reads (pixel checks, names, keys): pydicom then
# re-encodes them, so copying their bytes is right only when that round trip is exact.
DECODED_ON_READ = frozenset(
    {0x00080016, 0x00080018, 0x00280002, 0x00280008, 0x00280010, 0x00280011, 0x00280100}
)
NAMING_TAGS = {0x00100020: 0, 0x0020000D: 1, 0x0020000E: 2, 0x00080018: 3, 0x00080016: 4}
_HEAD = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xI")
_TAG_LEN = struct.Struct("<HHI")
_UINT = struct.Struct("<I")
_VR_INFO = {vr.encode(): (vr, vr in LONG_VRS) for vr in KNOWN_VRS}
PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"


# The acts this layer rewrites, per VR (others are declined: the reference does them). Which
# values they produce is acts.ActOn.values, shared with the engine.
COMMON_ACTS = frozenset({Act.EMPTY, Act.DUMMY, Act.PATIENT_ID, Act.PATIENT_NAME, Act.ACCESSION})
REWRITTEN: dict[str, frozenset[Act]] = {
    "UI": COMMON_ACTS | {Act.UID},
    "DA": COMMON_ACTS | {Act.SHIFT},
    "DT": COMMON_ACTS | {Act.SHIFT},
    "PN": COMMON_ACTS | {Act.CLEAN},
    **{vr: COMMON_ACTS | {Act.CLEAN} for vr in MULTI_TEXT_VRS | SINGLE_TEXT_VRS},
}
DECODED_FOR = frozenset({Act.UID, Act.SHIFT, Act.CLEAN, Act.ACCESSION})  # PN: never decoded


_first = operator.itemgetter(0)  # sort (tag, bytes) pairs by tag, stable


class Declined(Exception):
    """The file needs the reference path; the reason is a short fixed phrase."""


@dataclass(frozen=True)
class RawResult:
    header: bytes
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    mapping: list[tuple[str, str, str]]


@dataclass(slots=True)
class _Element:
    tag: int
    vr: str
    start: int
    value: int
    end: int
    undefined: bool = False
    # A sequence's items; those of a defined-length sequence are parsed on first use
    # (``_Parser.items_of``): a memoised sequence is never walked again.
    parsed: list[_Item] | None = None
    ambiguous: bool = False  # implicit VR: the dictionary gives several VRs


@dataclass(slots=True)
class _Item:
    undefined: bool
    elements: list[_Element]


@dataclass(frozen=True)
class _Patient:
    """What the reference derives from the identifying attributes, cached per raw bytes."""

    known: KnownValues
    key: str
    name: str
    accession: str | None
    birth: str | None


_PATIENTS: dict[tuple[bool, bool, bytes], _Patient] = {}
# (bytes or None, raw bytes to sweep, new values to sweep, UIDs mapped), see _memoised
_Effects = tuple[
    bytes | None,
    tuple[tuple[str, bytes], ...],
    tuple[tuple[str, list[str]], ...],
    tuple[tuple[str, str], ...],
]
MEMO_SCOPES = 16  # patients x SOP Classes remembered
MEMO_ENTRIES = 4096  # elements remembered per scope
_MARKERS: dict[tuple[frozenset[str], bool], list[tuple[int, bytes]]] = {}


def rewrite(
    header: bytes,
    transformer: Transformer,
    layout: Layout | None = None,
    known: KnownValues | None = None,
) -> RawResult | None:
    """The reference's header bytes and mapping for ``header``; None when declined.
    ``layout``, from ``layout()`` on the same bytes, spares a second parse; ``known`` adds
    identifying values gathered beyond the top level (``identity.gather``), as the
    reference is given them."""
    try:
        return attempt(header, transformer, layout, known)
    except Declined:
        return None


def attempt(
    header: bytes,
    transformer: Transformer,
    layout: Layout | None = None,
    known: KnownValues | None = None,
) -> RawResult:
    """As ``rewrite``, but raises :class:`Declined` with the reason."""
    _check_rules(transformer)
    if layout is not None and layout.pixel_offset == len(header):
        syntax, elements = layout.syntax, list(layout.elements)
    else:
        syntax, start = file_meta(header)
        parser = _parser(header, is_implicit(syntax))
        elements, end = parser.dataset(start, len(header), in_item=False)
        if end != len(header):
            raise Declined("trailing bytes")
    top = {e.tag: e for e in elements}
    charset = _charset(header, top)
    rewrite = _Rewrite(header, transformer, charset, top, is_implicit(syntax), extra=known)
    return rewrite.run(elements, syntax)


def _check_rules(transformer: Transformer) -> None:
    rules = transformer.rules
    if rules.policy.rules:
        raise Declined("policy")
    if rules.strict:
        raise Declined("strict")
    if any(o in PIXEL_OPTIONS for o in rules.options):
        raise Declined("pixel option")


def file_meta(buf: bytes) -> tuple[str, int]:
    """The transfer syntax and the offset of the dataset."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise Declined("no preamble")
    pos, syntax = 132, None
    while pos + 8 <= len(buf) and buf[pos : pos + 2] == b"\x02\x00":
        _, number, vr, length = _HEAD.unpack_from(buf, pos)
        value = pos + 8
        if vr.decode("latin-1") in LONG_VRS:
            length, value = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        if number == 0x0010:
            syntax = buf[value : value + length].decode("latin-1").rstrip("\x00 ")
        pos = value + length
    if syntax is None or _header_encoding(syntax) is None:
        raise Declined("transfer syntax")
    return syntax, pos


@functools.cache
def _compressed(syntax: str) -> bool:
    return bool(UID(syntax).is_compressed)


@functools.cache
def _header_encoding(syntax: str) -> str | None:
    """How the header of a file in ``syntax`` is encoded: "explicit" (Explicit VR Little
    Endian, native or encapsulated alike), "implicit" (Implicit VR Little Endian), or None
    for the syntaxes left to the engine (deflated, big endian)."""
    uid = UID(syntax)
    if not uid.is_transfer_syntax or uid.is_deflated or not uid.is_little_endian:
        return None
    return "implicit" if uid.is_implicit_VR else "explicit"


@functools.lru_cache(maxsize=1 << 16)  # tags: bounded even on garbage
def _in_dictionary(tag: int) -> bool:
    try:
        dictionary_VR(tag)
    except KeyError:
        return False
    return True


def is_implicit(syntax: str) -> bool:
    return _header_encoding(syntax) == "implicit"


@functools.lru_cache(maxsize=1 << 16)  # tags: bounded even on garbage
def _implicit_vr(tag: int) -> tuple[str, bool]:
    """The VR the reference gives an element of an Implicit VR dataset before decoding it
    (``engine.raw_vr``), and whether the dictionary leaves it ambiguous ("US or SS").
    Private creators are LO, as pydicom decodes them; other private elements are UN."""
    if (tag >> 16) & 1:
        return ("LO", False) if 0x0010 <= tag & 0xFFFF <= 0x00FF else ("UN", False)
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "UN", False
    first = vr.split(" or ")[0]
    return first, first != vr


def _charset(buf: bytes, top: dict[int, _Element]) -> str:
    element = top.get(0x00080005)
    raw = b"" if element is None else buf[element.value : element.end].rstrip(b" \x00")
    if raw not in CHARSETS:
        raise Declined("character set")
    return CHARSETS[raw]


class _Parser:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def element(self, pos: int, end: int) -> _Element:
        buf = self.buf
        if pos + 8 > end:
            raise Declined("truncated")
        group, number, raw_vr, length = _HEAD.unpack_from(buf, pos)
        known = _VR_INFO.get(raw_vr)
        if known is None:
            raise Declined("VR")
        vr, long = known
        value = pos + 8
        if long:
            if pos + 12 > end:
                raise Declined("truncated")
            length, value = _UINT.unpack_from(buf, pos + 8)[0], pos + 12
        tag = (group << 16) | number
        if length == UNDEFINED:
            if vr != "SQ":
                raise Declined("undefined length")
            items, after = self.items(value, end, None)
            return _Element(tag, vr, pos, value, after, True, items)
        if value + length > end:
            raise Declined("truncated")
        return _Element(tag, vr, pos, value, value + length)

    def items_of(self, element: _Element) -> list[_Item]:
        if element.parsed is None:
            element.parsed = self.items(element.value, element.end, element.end)[0]
        return element.parsed

    def dataset(self, pos: int, end: int, in_item: bool) -> tuple[list[_Element], int]:
        elements: list[_Element] = []
        last = -1
        while pos < end:
            if in_item and _TAG_LEN.unpack_from(self.buf, pos)[:2] == (0xFFFE, 0xE00D):
                return elements, pos + 8
            element = self.element(pos, end)
            if element.tag <= last:
                raise Declined("unsorted")
            if element.tag >> 16 < 0x0008:
                raise Declined("group below 0008")
            last = element.tag
            elements.append(element)
            pos = element.end
        if in_item:
            raise Declined("truncated")
        return elements, pos

    def items(self, pos: int, end: int, stop: int | None) -> tuple[list[_Item], int]:
        """Items from ``pos``: up to ``stop`` (defined length) or the delimiter."""
        items: list[_Item] = []
        while stop is None or pos < stop:
            if pos + 8 > end:
                raise Declined("truncated")
            group, number, length = _TAG_LEN.unpack_from(self.buf, pos)
            tag = (group << 16) | number
            if tag == SEQ_END and stop is None:
                return items, pos + 8
            if tag != ITEM:
                raise Declined("item")
            if length == UNDEFINED:
                elements, pos = self.dataset(pos + 8, end, in_item=True)
                items.append(_Item(True, elements))
                continue
            if pos + 8 + length > end:
                raise Declined("truncated")
            elements, after = self.dataset(pos + 8, pos + 8 + length, in_item=False)
            items.append(_Item(False, elements))
            pos = after
        if pos != stop:
            raise Declined("item")
        return items, pos


class _ImplicitParser(_Parser):
    """Implicit VR Little Endian: tag and length only; the VR comes from the dictionary,
    and an undefined length is a sequence as pydicom reads it (dictionary SQ, or an
    unknown tag whose value starts with an Item)."""

    def element(self, pos: int, end: int) -> _Element:
        buf = self.buf
        if pos + 8 > end:
            raise Declined("truncated")
        group, number, length = _TAG_LEN.unpack_from(buf, pos)
        tag = (group << 16) | number
        vr, ambiguous = _implicit_vr(tag)
        value = pos + 8
        if length == UNDEFINED:
            unknown = bool(group & 1) or not _in_dictionary(tag)
            starts_item = buf[value : value + 4] == b"\xfe\xff\x00\xe0"
            if not (vr == "SQ" or (unknown and starts_item)):
                raise Declined("undefined length")
            items, after = self.items(value, end, None)
            return _Element(tag, "SQ", pos, value, after, True, items)
        if value + length > end:
            raise Declined("truncated")
        return _Element(tag, vr, pos, value, value + length, ambiguous=ambiguous)


def _parser(buf: bytes, implicit: bool) -> _Parser:
    return _ImplicitParser(buf) if implicit else _Parser(buf)


def _head_implicit(tag: int, vr: str, length: int) -> bytes:
    return _TAG_LEN.pack(tag >> 16, tag & 0xFFFF, length)


def _head(tag: int, vr: str, length: int) -> bytes:
    if vr in LONG_VRS:
        return _LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)
    if length > 0xFFFF:
        raise Declined("long value")
    return _HEAD.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2:
        return value + (b"\x00" if vr == "UI" else b" ")
    return value


@dataclass
class _Codec:
    """pydicom's decoding and encoding of values, for the VRs handled here."""

    charset: str

    def decode(self, raw: bytes, vr: str) -> list[str]:
        """``actions.values_of`` of the element as pydicom decodes it."""
        try:
            if vr in MULTI_TEXT_VRS:
                values = [v.rstrip("\x00 ") for v in raw.decode(self.charset).split("\\")]
            elif vr in SINGLE_TEXT_VRS:
                values = [raw.decode(self.charset).rstrip("\x00 ")]
            elif vr == "AE":
                values = [v.strip() for v in raw.decode("latin-1").split("\\")]
            elif vr in STRING_VRS or vr == "UI":
                values = raw.decode("latin-1").rstrip(" \x00").split("\\")
            else:
                raise Declined(f"decode {vr}")
        except UnicodeDecodeError:
            raise Declined("undecodable") from None
        return [] if values == [""] else values

    def encode(self, values: list[str], vr: str) -> bytes:
        if not values:
            return b""
        if vr in MULTI_TEXT_VRS or vr in SINGLE_TEXT_VRS or vr == "PN":
            try:
                return _pad(b"\\".join(v.encode(self.charset) for v in values), vr)
            except UnicodeEncodeError:
                raise Declined("unencodable") from None
        if vr in STRING_VRS or vr in ("AE", "UI", "DS", "IS"):
            return _pad("\\".join(values).encode("latin-1"), vr)
        raise Declined(f"encode {vr}")

    def canonical(self, raw: bytes, vr: str) -> bool:
        """True when pydicom would write the decoded value back as exactly ``raw``."""
        if vr in NUMBER_FORMATS:
            return len(raw) % struct.calcsize(NUMBER_FORMATS[vr]) == 0
        if vr in BYTES_VRS:
            return len(raw) % 2 == 0
        if vr in ("DS", "IS"):
            return raw == _pad(raw.rstrip(b" "), vr) and b" " not in raw.rstrip(b" ")
        if vr == "PN":
            return b"=" not in raw and raw == _pad(raw.rstrip(b"\x00 "), vr)
        try:
            return self.encode(self.decode(raw, vr), vr) == raw
        except Declined:
            return False


def _dummy(raw: bytes, vr: str) -> list[str] | bytes:
    if vr in NUMBER_FORMATS:
        return struct.pack("<" + NUMBER_FORMATS[vr], 0)
    if vr == "AT":
        return b"\x00\x00\x00\x00"
    if vr in BYTES_VRS:
        return b"\x00" * (len(raw) + (len(raw) & 1))
    if vr not in actions.DUMMY_BY_VR or vr == "UN":
        raise Declined(f"dummy {vr}")
    return [str(actions.DUMMY_BY_VR[vr])]


@dataclass
class _Rewrite:
    buf: bytes
    transformer: Transformer
    charset: str
    top: dict[int, _Element]
    implicit: bool = False
    extra: KnownValues | None = None
    uids: dict[str, str] = field(default_factory=dict)
    raw_swept: list[tuple[str, bytes]] = field(default_factory=list)
    new_swept: list[tuple[str, list[str]]] = field(default_factory=list)
    naming: list[str] = field(default_factory=lambda: ["", "", "", "", ""])
    # Top-level attributes the reference may decode: copied only if the round trip is exact.
    exact_tags: set[int] = field(default_factory=lambda: set(DECODED_ON_READ))

    def __post_init__(self) -> None:
        self.parser = _parser(self.buf, self.implicit)
        self.head = _head_implicit if self.implicit else _head
        self.codec = _Codec(self.charset)
        options = self.transformer.rules.options
        self.patient = self._patient("retain-institution-identity" not in options)
        self.known = self.patient.known.merged(self.extra) if self.extra else self.patient.known
        self.hits = _hits_for(self.known)
        self.replacements = Replacements.of(self.transformer, self.patient.key)
        pseudo = self.transformer.pseudonymizer
        self.act_on = ActOn(pseudo, self.replacements, self.known, uids=self.uids)
        sop_class = self._top_value(0x00080016)
        self.sop_class = sop_class[0] if sop_class else None
        self.types = self.transformer.rules.iod_types(self.sop_class)
        memos = self.transformer.raw_memo
        institution = "retain-institution-identity" in options
        # Every input of a memoised decision is in its key: the exact bytes of the patient's
        # attributes, the identity gathered from the whole file, SOP Class and encoding.
        scope = (self.patient_raw, self.known, institution, self.sop_class, self.implicit)
        memo = memos.get(scope)
        if memo is None:
            if len(memos) >= MEMO_SCOPES:
                memos.clear()
            memo = memos[scope] = {}
        self.memo = cast(dict[bytes, _Effects], memo)

    def _top_value(self, tag: int) -> list[str]:
        element = self.top.get(tag)
        if element is None:
            return []
        return self.codec.decode(self.buf[element.value : element.end], element.vr)

    def _patient(self, institution: bool) -> _Patient:
        found = [self.top[t] for t in _patient_tags() if t in self.top]
        raw = self.patient_raw = b"".join(self.buf[e.start : e.end] for e in found)
        cached = _PATIENTS.get((institution, self.implicit, raw))
        if cached is None:
            if len(_PATIENTS) >= 4096:
                _PATIENTS.clear()
            patient = _build_patient(raw, institution, self.implicit)
            cached = _PATIENTS[(institution, self.implicit, raw)] = patient
        self.exact_tags |= {e.tag for e in found}
        return cached

    def _exact(self, element: _Element) -> bool:
        return self.codec.canonical(self.buf[element.value : element.end], element.vr)

    # --- the walk ------------------------------------------------------------------
    def run(self, elements: list[_Element], syntax: str) -> RawResult:
        tags = list(self.top)  # sorted
        first_overlay = bisect.bisect_left(tags, 0x60000000)
        if first_overlay < len(tags) and tags[first_overlay] <= 0x60FFFFFF:
            raise Declined("overlay")
        if not MARKER_TAGS.isdisjoint(tags):
            raise Declined("markers present")
        body = self.level(elements, 0, Mode.NORMAL, top=True)
        self._sweep()
        body.extend(_markers(self.transformer, self.implicit))
        body.sort(key=_first)
        sop_uid, sop_class = self.naming[3], self.naming[4]
        if not sop_uid or "\\" in sop_uid + sop_class:
            raise Declined("SOP Instance UID")
        if not sop_class and 0x00080016 in self.top:
            raise Declined("SOP Class UID")
        meta = _meta(sop_class or DEFAULT_SOP_CLASS, sop_uid, syntax)
        header = b"\x00" * 128 + b"DICM" + meta + b"".join(part for _, part in body)
        pid, study, series = self.naming[:3]
        return RawResult(header, pid, study, series, sop_uid, self._mapping())

    def _mapping(self) -> list[tuple[str, str, str]]:
        patient = self.patient
        return mapping_rows(
            self.transformer,
            self.replacements,
            name=patient.name,
            accession=patient.accession,
            birth=patient.birth,
            uids=self.uids,
        )

    def level(
        self, elements: list[_Element], depth: int, mode: Mode, top: bool = False
    ) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        kept_blocks: set[tuple[int, int]] = set()
        creators: dict[tuple[int, int], _Element] = {}
        by_tag = self.top if top else None  # the top level's elements by tag, or built below
        memo, buf, uids = self.memo, self.buf, self.uids
        for element in elements:
            tag = element.tag
            group, number = tag >> 16, tag & 0xFFFF
            if group & 1:
                if 0x0010 <= number <= 0x00FF:
                    creators[(group, number)] = element
                    continue
                if number < 0x0010:
                    continue
                if by_tag is None:
                    by_tag = {e.tag: e for e in elements}
                decision = self._private(element, by_tag.get((group << 16) | (number >> 8)), mode)
                if decision.act is not Act.REMOVE:
                    if self.implicit:  # its VR depends on pydicom's private dictionary
                        raise Declined("private attribute kept in implicit VR")
                    kept_blocks.add((group, number >> 8))
            elif top and tag not in NAMING_TAGS:
                effects = memo.get(buf[element.start : element.end])
                if effects is None:
                    encoded = self._memoised(element)
                else:  # _memoised's hit, inline: most of a series' header
                    encoded, raw_swept, new_swept, touched = effects
                    if raw_swept:
                        self.raw_swept.extend(raw_swept)
                    if new_swept:
                        self.new_swept.extend(new_swept)
                    for original, new in touched:
                        if original not in uids:
                            uids[original] = new
                if encoded is not None:
                    out.append((tag, encoded))
                continue
            else:
                decision = self._decide(element, depth, mode)
            if decision.act is Act.REMOVE:
                continue
            encoded = self.encode(element, decision, depth, top)
            if encoded is not None:
                out.append((tag, encoded))
        for (group, block), creator in creators.items():
            if (group, block) in kept_blocks:
                out.append((creator.tag, self._copy(creator, depth, exact=True)))
        out.sort(key=_first)
        return out

    def _memoised(self, element: _Element) -> bytes | None:
        """``encode`` of a top-level element, remembered with its side effects (what the
        sweep must look at, the UIDs it maps) for the next file of the same patient and
        SOP Class: the slices of a series repeat most of their header byte for byte."""
        raw = self.buf[element.start : element.end]
        effects = self.memo.get(raw)
        if effects is None:
            effects = self._effects(element)
            if len(self.memo) >= MEMO_ENTRIES:
                self.memo.clear()
            self.memo[raw] = effects
        encoded, raw_swept, new_swept, uids = effects
        self.raw_swept.extend(raw_swept)
        self.new_swept.extend(new_swept)
        for original, new in uids:
            if original not in self.uids:
                self.uids[original] = new
        return encoded

    def _effects(self, element: _Element) -> _Effects:
        decision = self._decide(element, 0, Mode.NORMAL)
        if decision.act is Act.REMOVE:
            return None, (), (), ()
        raw_from, new_from = len(self.raw_swept), len(self.new_swept)
        self.act_on.touched = []
        try:
            encoded = self.encode(element, decision, 0, top=True)
            touched = tuple(self.act_on.touched)
        finally:
            self.act_on.touched = None
        return encoded, tuple(self.raw_swept[raw_from:]), tuple(self.new_swept[new_from:]), touched

    def _decide(self, element: _Element, depth: int, mode: Mode) -> Decision:
        if element.vr == "UN" and not (
            _in_dictionary(element.tag) and _implicit_vr(element.tag)[0] == "UN"
        ):  # the engine decodes it as its dictionary VR, or removes it: no dictionary knows it
            raise Declined("a standard attribute sent as UN")
        rules, types = self.transformer.rules, self.types
        key = (element.tag, element.vr, depth > 0, mode, id(types))
        cache = self.transformer.decision_cache
        found = cache.get(key)
        if found is None:
            found = decide(rules, element.tag, element.vr, depth=depth, mode=mode, types=types)
            cache[key] = found
        if found.references and references_only(self._item_tags(element)):
            return Decision(Act.KEEP, source=found.source)
        return found

    def _item_tags(self, element: _Element) -> list[set[int]]:
        """The tags of each item of a sequence, nested items' tags folded in."""
        out: list[set[int]] = []
        for item in self.parser.items_of(element):
            tags: set[int] = set()
            for inner in item.elements:
                tags.add(inner.tag)
                if inner.vr == "SQ":
                    for nested in self._item_tags(inner):
                        tags |= nested
            out.append(tags)
        return out

    def _private(self, element: _Element, creator_el: _Element | None, mode: Mode) -> Decision:
        creator = None
        if creator_el is not None:
            raw = self.buf[creator_el.value : creator_el.end]
            values = self.codec.decode(raw, creator_el.vr) if creator_el.vr == "LO" else None
            if values is None or len(values) > 1:
                raise Declined("private creator")
            creator = values[0] if values else ""
        key = (element.tag, element.vr, creator, mode)
        cache = self.transformer.private_decision_cache
        found = cache.get(key)
        if found is None:
            found = decide_private(self.transformer.rules, element.tag, element.vr, creator, mode)
            cache[key] = found
        return found

    def _copy(self, element: _Element, depth: int, exact: bool = False) -> bytes:
        """The element's own bytes (``exact``: the reference decoded it on the way)."""
        tag = element.tag
        if (exact or (depth == 0 and tag in self.exact_tags)) and not self._exact(element):
            raise Declined("non-canonical value decoded by the reference")
        swept = element.vr in SWEPT_TEXT_VRS or element.vr in BINARY_VRS or element.vr == "UI"
        if swept and tag not in BULK_TAGS and tag not in MARKER_TAGS:
            raw = self.buf[element.value : element.end]
            if element.vr in AT_COPY_VRS and self._known_hit(raw):
                if depth == 0 and tag in NAMING_TAGS:
                    raise Declined("sweep on a naming attribute")
                return self._swept(element, raw)
            self.raw_swept.append((element.vr, raw))
        if depth == 0 and tag in NAMING_TAGS:
            self.naming[NAMING_TAGS[tag]] = "\\".join(self._top_value(tag))
        return self.buf[element.start : element.end]

    def _swept(self, element: _Element, raw: bytes) -> bytes:
        """A kept text element that holds an identifying value, as the reference's final
        sweep leaves it: the value replaced by its placeholder, a formatted value dropped."""
        vr = element.vr
        if not self.codec.canonical(raw, vr):
            raise Declined("sweep on a non-canonical value")
        values = self.codec.decode(raw, vr)
        try:  # UIDs are not all mapped yet: those are checked at the end (new_swept)
            out = swept(vr, values, self.known, {})
        except Uncleanable:
            raise Declined("uncleanable") from None  # the reference quarantines it, with a reason
        out = values if out is None else out
        self.new_swept.append((vr, out))  # UIDs mapped later are checked at the end
        encoded = self.codec.encode(out, vr)
        return self.head(element.tag, vr, len(encoded)) + encoded

    def encode(self, element: _Element, decision: Decision, depth: int, top: bool) -> bytes | None:
        """The element's bytes after the decision; None when it is deleted."""
        act, vr = decision.act, element.vr
        if vr == "SQ":
            return self._sequence(element, decision, depth)
        if act is Act.KEEP:
            return self._copy(element, depth)
        if vr == "UN" or element.ambiguous:
            raise Declined("UN or ambiguous value changed")
        values = self._values(element, decision)
        if values is None:
            return None
        if isinstance(values, bytes):
            encoded = values
        else:
            encoded = self.codec.encode(values, vr)
            if vr in SWEPT_TEXT_VRS or vr == "UI":
                self.new_swept.append((vr, values))
        if top and element.tag in NAMING_TAGS and not isinstance(values, bytes):
            self.naming[NAMING_TAGS[element.tag]] = "\\".join(values)
        return self.head(element.tag, vr, len(encoded)) + encoded

    def _values(self, element: _Element, decision: Decision) -> list[str] | bytes | None:
        """New values (or encoded bytes) of a non-sequence element, by the acts' meaning."""
        act, vr, raw = decision.act, element.vr, self.buf[element.value : element.end]
        if act not in REWRITTEN.get(vr, COMMON_ACTS):
            raise Declined(f"act {act.value} on {vr}")
        if act is Act.EMPTY:
            return b""
        values = self.codec.decode(raw, vr) if act in DECODED_FOR and vr != "PN" else []
        try:
            new = self.act_on.values(act, vr, values, tag=element.tag, replacement=decision.value)
        except NotText:
            return _dummy(raw, vr)
        if new is None:
            raise Declined(f"act {act.value} on {vr}")  # unchanged: never met, by REWRITTEN
        return new

    def _sequence(self, element: _Element, decision: Decision, depth: int) -> bytes | None:
        act = decision.act
        if act is Act.REPLACE:
            return None
        parts: list[bytes] = []
        if act is not Act.EMPTY:
            for item in self.parser.items_of(element):
                body = b"".join(p for _, p in self.level(item.elements, depth + 1, decision.mode))
                if item.undefined:  # pydicom keeps an item's undefined length and delimiter
                    parts.append(_TAG_LEN.pack(0xFFFE, 0xE000, UNDEFINED) + body)
                    parts.append(_TAG_LEN.pack(0xFFFE, 0xE00D, 0))
                else:
                    parts.append(_TAG_LEN.pack(0xFFFE, 0xE000, len(body)) + body)
        content = b"".join(parts)
        if element.undefined:
            end = _TAG_LEN.pack(0xFFFE, 0xE0DD, 0)
            return self.head(element.tag, "SQ", UNDEFINED) + content + end
        return self.head(element.tag, "SQ", len(content)) + content

    # --- the sweep -------------------------------------------------------------------
    def _sweep(self) -> None:
        """Decline when the reference's final sweep could change or decode anything.

        Element by element, as the reference's own per-element pre-check, with the
        known-value part cached per patient (slices of a series repeat their values)."""
        for vr, raw in self.raw_swept:
            if self._uid_hit(raw.decode("latin-1")) or self._known_hit(raw):
                self._sweep_raw(vr, raw)  # the reference decodes it, then sweeps it
        for vr, values in self.new_swept:
            self._sweep_values(vr, values)

    def _known_hit(self, raw: bytes) -> bool:
        hits = self.hits
        hit = hits.get(raw)
        if hit is None:
            if len(hits) >= 4096:
                hits.clear()
            hit = hits[raw] = may_hit(raw, self.known, {})
        return hit

    def _uid_hit(self, text: str) -> bool:
        return "." in text and any(uid in text for uid in self.uids)

    def _sweep_raw(self, vr: str, raw: bytes) -> None:
        if vr in BINARY_VRS or vr == "PN" or not self.codec.canonical(raw, vr):
            raise Declined("sweep")
        self._sweep_values(vr, self.codec.decode(raw, vr))

    def _sweep_values(self, vr: str, values: list[str]) -> None:
        known, uids = self.known, self.uids
        for value in values:
            if vr == "UI":
                if value in uids:
                    raise Declined("sweep")
                continue
            if not self._uid_hit(value) and not self._known_hit(value.encode()):
                continue
            if replace_uids(sweep_text(value, known), uids) != value:
                raise Declined("sweep")


_HITS: dict[KnownValues, dict[bytes, bool]] = {}


def _hits_for(known: KnownValues) -> dict[bytes, bool]:
    """Pre-check answers, remembered per set of known values (pure in both keys)."""
    hits = _HITS.get(known)
    if hits is None:
        if len(_HITS) >= 256:
            _HITS.clear()
        hits = _HITS[known] = {}
    return hits


@functools.cache
def _patient_tags() -> tuple[int, ...]:
    return tuple(sorted({*identity_tags(), *MAPPING_TAGS}))


def _build_patient(raw: bytes, institution: bool, implicit: bool) -> _Patient:
    """Decode the identifying attributes with pydicom, as the reference does."""
    ds = read_dataset(io.BytesIO(raw), is_implicit_VR=implicit, is_little_endian=True)
    known = KnownValues.from_dataset(ds, institution=institution)
    accession = str(ds.AccessionNumber) if ds.get("AccessionNumber") else None
    birth = str(ds.PatientBirthDate) if ds.get("PatientBirthDate") else None
    return _Patient(known, patient_key(ds), str(ds.get("PatientName", "")), accession, birth)


def _markers(transformer: Transformer, implicit: bool) -> list[tuple[int, bytes]]:
    """The four conformance markers, encoded as the reference writes them (per options).

    Encoded here, not by pydicom's writer: its string writer asks numpy whether each value
    is an array, which would import numpy for a file whose pixels nothing reads."""
    options = transformer.rules.options
    cached = _MARKERS.get((options, implicit))
    if cached is None:
        ds = Dataset()
        transformer.mark(ds)
        cached = [(tag, _encode_marker(ds[tag], implicit)) for tag in sorted(MARKER_TAGS)]
        _MARKERS[(options, implicit)] = cached
    return cached


def _encode_marker(elem: DataElement, implicit: bool) -> bytes:
    """``write_data_element``'s bytes for a marker: text values of the default character
    repertoire, and a sequence of items of such values (defined lengths, as pydicom gives a
    sequence it did not read)."""
    head = _head_implicit if implicit else _head
    if elem.VR == "SQ":
        items = []
        for item in elem.value:
            body = b"".join(_encode_marker(e, implicit) for e in item)
            items.append(_TAG_LEN.pack(0xFFFE, 0xE000, len(body)) + body)
        value = b"".join(items)
        return head(elem.tag, "SQ", len(value)) + value
    if elem.VR not in {"CS", "LO", "SH"}:
        raise Declined(f"a conformance marker of VR {elem.VR}")
    values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
    try:
        value = _pad("\\".join(str(v) for v in values).encode("ascii"), elem.VR)
    except UnicodeEncodeError:
        raise Declined("a conformance marker outside the default repertoire") from None
    return head(elem.tag, elem.VR, len(value)) + value


def _ui(tag: int, uid: str) -> bytes:
    value = _pad(uid.encode("latin-1"), "UI")
    return _head(tag, "UI", len(value)) + value


def _meta(sop_class: str, sop_uid: str, syntax: str) -> bytes:
    """The File Meta group as ``write_file_meta_info(enforce_standard=True)`` writes it."""
    version = _pad(IMPLEMENTATION_VERSION.encode("latin-1"), "SH")
    body = b"".join(
        [
            _head(0x00020001, "OB", 2) + b"\x00\x01",
            _ui(0x00020002, sop_class),
            _ui(0x00020003, sop_uid),
            _ui(0x00020010, syntax),
            _ui(0x00020012, IMPLEMENTATION_CLASS_UID),
            _head(0x00020013, "SH", len(version)) + version,
        ]
    )
    return _head(0x00020000, "UL", 4) + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class Layout:
    """Where Pixel Data starts in a file, and what its native length must at least be."""

    pixel_offset: int  # the file's size when there is no Pixel Data
    compressed: bool
    has_rows: bool
    expected_native: int | None
    syntax: str
    elements: tuple[_Element, ...]  # the parsed top-level elements before Pixel Data


IMAGE_TAGS = {0x00280002: "SamplesPerPixel", 0x00280008: "NumberOfFrames", 0x00280010: "Rows",
              0x00280011: "Columns", 0x00280100: "BitsAllocated"}  # fmt: skip


def layout_reads(node: Node) -> bool:
    """Whether ``layout_of`` reads a leaf's value (the image size it checks the pixels
    against); all else it reads in the dataset is structure (``walkmemo.Derived``)."""
    return node.tag in IMAGE_TAGS


def layout_key(header: Header, size: int) -> tuple[int, str, bool]:
    """What ``layout_of`` reads outside the walked dataset: the file's size, the File Meta's
    transfer syntax and whether the preamble is there (the rest of the File Meta only
    places the dataset, which the shape fixes): ``walkmemo.Derived``'s key."""
    return size, header.syntax, header.buf[128:132] == b"DICM"


def layout(prefix: bytes, size: int) -> Layout | None:
    """Walk the top-level elements of an Explicit VR Little Endian file's first bytes to
    Pixel Data; None when the prefix does not reach it or the file is not of that kind."""
    try:
        syntax, pos = file_meta(prefix)
    except Declined:
        return None
    parser = _parser(prefix, is_implicit(syntax))
    elements: list[_Element] = []
    end, last = len(prefix), -1
    while pos < end:
        if prefix[pos : pos + 4] == PIXEL_DATA_LE:
            break
        try:
            element = parser.element(pos, end)
        except Declined:
            return None
        tag = element.tag
        if tag <= last or tag >> 16 < 0x0008:
            return None  # unsorted, or a File Meta group inside the dataset
        last = tag
        elements.append(element)
        pos = element.end
    else:
        if end < size:
            return None  # the header runs past what was read
        pos = size
    return _layout(prefix, syntax, pos, elements)


def layout_of(header: Header, size: int) -> Layout | None:
    """``layout(header.buf, size)``, read from the strict grammar's top-level nodes of
    the same bytes instead of walking them again. Where the two readings could part (an
    anomaly, a dataset not in its syntax's encoding, another pixel tag first, an
    undefined length), it walks the bytes as ``layout`` does."""
    buf = header.buf
    try:
        syntax, pos = file_meta(buf)
    except Declined:
        return None
    implicit = is_implicit(syntax)
    stop = header.pixel_offset
    if (
        header.anomalies
        or header.implicit != implicit
        or not header.little
        or (stop is not None and buf[stop : stop + 4] != PIXEL_DATA_LE)
        or (stop is None and len(buf) != size)
    ):
        return layout(buf, size)
    parser: _Parser | None = None
    elements: list[_Element] = []
    last = -1
    for node in header.elements:
        tag, value, end = node.tag, node.value, node.end
        if tag <= last or tag >> 16 < 0x0008:
            return None  # unsorted, or a File Meta group inside the dataset
        last = tag
        if implicit:
            length = _UINT.unpack_from(buf, pos + 4)[0]
            if value != pos + 8 or end != value + length:  # undefined, or not these bytes
                parser = parser or _parser(buf, implicit)
                element = _walked(parser, pos, len(buf))
            else:
                vr, ambiguous = _implicit_vr(tag)
                element = _Element(tag, vr, pos, value, end, ambiguous=ambiguous)
        else:
            raw_vr, length = _HEAD.unpack_from(buf, pos)[2:]
            vr, long = _VR_INFO.get(raw_vr, ("", False))
            if long:
                length = _UINT.unpack_from(buf, pos + 8)[0]
            if not vr or value != pos + (12 if long else 8) or end != value + length:
                parser = parser or _parser(buf, implicit)  # undefined, or not these bytes
                element = _walked(parser, pos, len(buf))
            else:
                element = _Element(tag, vr, pos, value, end)
        if element is None or element.end != end:
            return layout(buf, size)
        elements.append(element)
        pos = end
    if stop is not None and pos != stop:
        return layout(buf, size)
    return _layout(buf, syntax, size if stop is None else pos, elements)


def _walked(parser: _Parser, pos: int, end: int) -> _Element | None:
    try:
        return parser.element(pos, end)
    except Declined:
        return None


def _layout(buf: bytes, syntax: str, pixel_offset: int, elements: list[_Element]) -> Layout:
    values = {IMAGE_TAGS[e.tag]: _image_value(buf, e) for e in elements if e.tag in IMAGE_TAGS}
    expected = None
    rows, cols, allocated = (values.get(k) for k in ("Rows", "Columns", "BitsAllocated"))
    if rows is not None and cols is not None and allocated is not None:
        frames = values.get("NumberOfFrames") or 1
        samples = values.get("SamplesPerPixel") or 1
        expected = (rows * cols * allocated * samples * frames + 7) // 8
    compressed = _compressed(syntax)
    return Layout(pixel_offset, compressed, "Rows" in values, expected, syntax, tuple(elements))


def _image_value(buf: bytes, element: _Element) -> int | None:
    raw = buf[element.value : element.end]
    try:
        if element.vr == "US" and len(raw) >= 2:
            return int(struct.unpack_from("<H", raw)[0])
        return int(raw.decode("ascii").strip(" \x00") or 0)
    except (ValueError, UnicodeDecodeError):
        return None
