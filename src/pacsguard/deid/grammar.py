"""The strict grammar gate: a file the DICOM grammar does not allow is not trusted.

Every input is walked here, over its raw bytes, before either engine sees it. The walk is
the project's one strict reading of PS3.5: element headers, lengths that tile their
dataset, item and delimiter structure, ascending tags without repeats, VRs that agree with
the data dictionary, values whose bytes the VR allows, nothing but padding after Pixel Data.
Two kinds of trouble come out of it:

- a :class:`GrammarError`: the structure itself is broken (a length that runs past its
  item, a sequence without its delimiter, a truncated header). Nothing inside can be told
  from what follows, so the file goes to quarantine, always;
- :class:`Anomaly` records: one element the grammar does not allow (an unknown tag in a
  standard group, a VR the dictionary contradicts, control bytes or an embedded element
  header inside a text value, a duplicate or out-of-order tag, a second Pixel Data,
  elements after Pixel Data). The file goes to quarantine with the first reason, unless
  the run asked for ``--repair``: then these elements are dropped, never kept.

Reasons name the tag and the rule, never a value.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from pydicom.datadict import dictionary_VR

from pacsguard.core.errors import PacsguardError

if TYPE_CHECKING:
    from pacsguard.deid.walkmemo import WalkMemo

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
PIXEL_DATA = 0x7FE00010
AFTER_PIXELS_ALLOWED = frozenset({0xFFFAFFFA, 0xFFFCFFFC})  # signatures, trailing padding
MAX_DEPTH = 32
VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB",
                 "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM",
                 "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"})  # fmt: skip
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT"})  # fmt: skip
UNIT = {"AT": 4, "FD": 8, "FL": 4, "OD": 8, "OF": 4, "OL": 4, "OV": 8, "OW": 2, "SL": 4,
        "SS": 2, "SV": 8, "UL": 4, "US": 2, "UV": 8}  # fmt: skip
# Bytes a text value may never hold: C0 controls but TAB, LF, FF, CR and ESC (ISO 2022).
# An element header swallowed by a wrong length always brings some (tags, lengths).
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
# The formatted VRs: the characters each may hold (PS3.5 6.2), values split on backslash.
_FORMATS = {
    "AS": re.compile(rb"[0-9]{3}[DWMY]?|"),
    "DA": re.compile(rb"[0-9.\- ]*"),
    "DS": re.compile(rb"[0-9+\-.eE ]*"),
    "DT": re.compile(rb"[0-9.+\- ]*"),
    "IS": re.compile(rb"[0-9+\- ]*"),
    "TM": re.compile(rb"[0-9.:\- ]*"),
    "UI": re.compile(rb"[0-9.]*"),
    "CS": re.compile(rb"[\x20-\x5b\x5d-\x7e]*"),  # printable ASCII but backslash
    "AE": re.compile(rb"[\x20-\x5b\x5d-\x7e]*"),
}


class GrammarError(PacsguardError):
    """The file's structure is broken: it cannot be read element by element."""


class NeedMore(Exception):
    """The prefix given to ``parse`` ends before the header does."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One element the grammar does not allow; ``path`` leads to it from the top level as
    (sequence tag, item index) pairs, then the element's own tag."""

    path: tuple[tuple[int, int], ...]
    tag: int
    reason: str


@dataclass(slots=True)
class Node:
    """One element as encoded: where its value lies in ``Header.buf``, and its items."""

    tag: int
    vr: str
    value: int
    end: int
    items: list[list[Node]] | None = None


@dataclass(frozen=True, slots=True)
class Recall:
    """Where a header stands in a walk memo (``walkmemo``): the ``shape`` it has, its
    ``version`` there (0 for the header walked, one more for each header recalled), and
    the leaves whose values differ from those of the version before it."""

    shape: object
    version: int
    changed: tuple[Node, ...]


@dataclass
class Header:
    """A file's structure up to its top-level Pixel Data, checked against the grammar."""

    syntax: str
    implicit: bool
    little: bool
    buf: bytes  # the bytes the nodes point into (inflated for a deflated file)
    elements: list[Node]
    anomalies: list[Anomaly] = field(default_factory=list)
    pixel_offset: int | None = None  # where top-level Pixel Data starts in ``buf``
    recall: Recall | None = None  # its place in a walk memo, when it has one

    @property
    def clean(self) -> bool:
        return not self.anomalies


def tag_text(tag: int) -> str:
    """A tag as reasons name it; "(text where a tag was expected)" when its four bytes are
    all printable and the dictionary does not know it: the hex of "ZQXW" is a piece of the
    file's text, not a tag, and a reason must not carry the file's text. (A real tag
    holds a byte below 0x20: a group such as 0x0008, a private element block such as 0x10.)"""
    if all(0x20 <= b <= 0x7E for b in tag.to_bytes(4, "little")) and dictionary_vrs(tag) is None:
        return "(text where a tag was expected)"
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@functools.lru_cache(maxsize=1 << 16)  # tags: bounded even on garbage
def dictionary_vrs(tag: int) -> frozenset[str] | None:
    """The VRs the data dictionary allows for a standard tag; None when it is unknown."""
    if tag & 0xFFFF == 0:
        return frozenset({"UL"})  # group length
    try:
        return frozenset(v.strip() for v in str(dictionary_VR(tag)).split(" or "))
    except KeyError:
        return None


class _Walk:
    inline = True  # element headers of Explicit VR Little Endian read in the loop (tests: off)

    def __init__(self, buf: bytes, implicit: bool, little: bool, prefix: bool = False) -> None:
        self.buf, self.implicit, self.prefix, self.little = buf, implicit, prefix, little
        order = "<" if little else ">"
        self.tag_s = struct.Struct(order + "HH")
        self.u16, self.u32 = struct.Struct(order + "H"), struct.Struct(order + "I")
        self.anomalies: list[Anomaly] = []

    def flag(self, path: tuple[tuple[int, int], ...], tag: int, reason: str) -> None:
        self.anomalies.append(Anomaly(path, tag, reason))

    def past(self, end: int, message: str) -> GrammarError | NeedMore:
        """An overrun: only the end of a prefix, or a real break in the structure."""
        if self.prefix and end >= len(self.buf):
            return NeedMore()
        return GrammarError(message)

    def header(self, pos: int, end: int, implicit: bool) -> tuple[int, str, int, int]:
        """(tag, VR as encoded or "", value length, value start) at ``pos``."""
        buf = self.buf
        if pos + 8 > end:
            raise self.past(end, f"truncated: an element header runs past its dataset at {pos}")
        group, number = self.tag_s.unpack_from(buf, pos)
        tag = (group << 16) | number
        if implicit or group == 0xFFFE:
            return tag, "", self.u32.unpack_from(buf, pos + 4)[0], pos + 8
        vr = buf[pos + 4 : pos + 6].decode("latin-1")
        if vr not in VRS:
            raise GrammarError(f"{tag_text(tag)} has no valid VR: the header cannot be read on")
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise self.past(end, f"truncated: the header of {tag_text(tag)} is cut")
            return tag, vr, self.u32.unpack_from(buf, pos + 8)[0], pos + 12
        return tag, vr, self.u16.unpack_from(buf, pos + 6)[0], pos + 8

    def dataset(
        self,
        pos: int,
        end: int,
        path: tuple[tuple[int, int], ...],
        *,
        implicit: bool,
        in_item: bool,
        stop_at_pixels: bool = False,
    ) -> tuple[list[Node], int]:
        """Nodes of the dataset from ``pos``; the position after it (past the item
        delimiter, for an undefined-length item)."""
        if len(path) > MAX_DEPTH:
            raise GrammarError(f"sequences nested deeper than {MAX_DEPTH} levels")
        nodes: list[Node] = []
        last = -1
        buf = self.buf
        fast = self.inline and not implicit and self.little
        while pos < end:
            known = None
            if fast and pos + 12 <= end:
                group, number, raw_vr, length = _EXPLICIT_LE.unpack_from(buf, pos)
                if group != 0xFFFE:
                    known = _VR_BYTES.get(raw_vr)
            if known is not None:
                tag, (vr, long) = (group << 16) | number, known
                if long:
                    length, start = _U32_LE.unpack_from(buf, pos + 8)[0], pos + 12
                else:
                    start = pos + 8
            else:
                try:
                    tag, vr, length, start = self.header(pos, end, implicit)
                except GrammarError as exc:
                    if not nodes:
                        raise
                    previous = tag_text(nodes[-1].tag)
                    raise GrammarError(
                        f"no valid element follows {previous}: its length is probably corrupt "
                        f"({exc})"
                    ) from None
                if tag == ITEM_END:
                    if not in_item or length != 0:
                        raise GrammarError(f"a stray item delimiter at {pos}")
                    return nodes, start
                if tag >> 16 == 0xFFFE:
                    raise GrammarError(f"an item tag {tag_text(tag)} outside a sequence at {pos}")
            if not path and stop_at_pixels and tag in PIXEL_TAGS:
                self.check_order(path, tag, last)
                return nodes, pos
            vr = vr or implicit_vr(tag)
            if length == UNDEFINED:
                if tag in PIXEL_TAGS:
                    after = self.fragments(start, end, tag)
                    node = Node(tag, vr, start, after)
                elif vr in ("SQ", "UN"):
                    # UN of undefined length holds an Implicit VR Little Endian sequence.
                    items, after = self.items(start, None, end, path, tag, implicit or vr == "UN")
                    node = Node(tag, "SQ", start, after, items)
                else:
                    raise GrammarError(f"{tag_text(tag)} ({vr}) has an undefined length")
            else:
                if start + length > end:
                    raise self.past(end, f"the length of {tag_text(tag)} runs past its dataset")
                after = start + length
                node = Node(tag, vr, start, after)
                if vr == "SQ" or (vr == "UN" and dictionary_vrs(tag) == frozenset({"SQ"})):
                    node.items, _ = self.items(
                        start, after, after, path, tag, implicit or vr == "UN"
                    )
                    node.vr = "SQ"
            if tag <= last:
                self.check_order(path, tag, last)
            else:
                last = tag
            rule = _element_rule(tag, node.vr, node.items is not None)
            if rule is not None:
                self.check_value(path, node, rule)
            nodes.append(node)
            pos = after
        if in_item:
            raise self.past(end, "truncated: an item has no delimiter before its data ends")
        return nodes, pos

    def items(
        self,
        pos: int,
        stop: int | None,
        end: int,
        path: tuple[tuple[int, int], ...],
        tag: int,
        implicit: bool,
    ) -> tuple[list[list[Node]], int]:
        """Items of a sequence from ``pos``: up to ``stop`` (a defined length) or to its
        delimiter (``stop`` None), within ``end``."""
        items: list[list[Node]] = []
        limit = end if stop is None else stop
        while pos < limit:
            item_tag, _, length, start = self.header(pos, limit, True)
            if item_tag == SEQ_END:
                if stop is not None or length != 0:
                    raise GrammarError(f"{tag_text(tag)}: a misplaced sequence delimiter")
                return items, start
            if item_tag != ITEM:
                raise GrammarError(f"{tag_text(tag)} holds {tag_text(item_tag)}, not an item")
            where = (*path, (tag, len(items)))
            if length == UNDEFINED:
                nodes, pos = self.dataset(start, limit, where, implicit=implicit, in_item=True)
            else:
                if start + length > limit:
                    raise self.past(limit, f"an item of {tag_text(tag)} runs past its sequence")
                nodes, _ = self.dataset(
                    start, start + length, where, implicit=implicit, in_item=False
                )
                pos = start + length
            items.append(nodes)
        if stop is None:
            raise self.past(limit, f"truncated: {tag_text(tag)} has no sequence delimiter")
        return items, pos

    def fragments(self, pos: int, end: int, tag: int) -> int:
        """Skip the items of encapsulated pixel data (opaque fragments) to the delimiter."""
        while pos + 8 <= end:
            item_tag, _, length, start = self.header(pos, end, True)
            if item_tag == SEQ_END:
                return start
            if item_tag != ITEM or length == UNDEFINED or start + length > end:
                raise self.past(end, f"{tag_text(tag)}: broken encapsulated fragments")
            pos = start + length
        raise self.past(end, f"truncated: {tag_text(tag)} has no sequence delimiter")

    def check_order(self, path: tuple[tuple[int, int], ...], tag: int, last: int) -> None:
        if tag == last:
            self.flag(path, tag, f"{tag_text(tag)} appears twice in one dataset")
        elif tag < last:
            self.flag(path, tag, f"{tag_text(tag)} is out of order (tags must ascend)")

    def check_value(
        self, path: tuple[tuple[int, int], ...], node: Node, rule: tuple[str | None, str]
    ) -> None:
        """Flag what ``_element_rule`` found, or a value its VR does not allow."""
        reason, vr = rule
        if reason is not None:
            self.flag(path, node.tag, reason)
            return
        unit = UNIT.get(vr)
        if unit is not None:
            problem = (
                f"a length not a multiple of {unit}" if (node.end - node.value) % unit else None
            )
        elif vr in TEXT_VRS and node.end > node.value:
            problem = value_problem(self.buf[node.value : node.end], vr)
        else:
            return
        if problem:
            self.flag(path, node.tag, f"{tag_text(node.tag)} ({vr}): {problem}")


_EXPLICIT_LE = struct.Struct("<HH2sH")
_U32_LE = struct.Struct("<I")
_VR_BYTES = {vr.encode(): (vr, vr in LONG_VRS) for vr in VRS}


@functools.lru_cache(maxsize=1 << 16)  # (tag, VR, sequence): bounded even on garbage
def _element_rule(tag: int, vr: str, sequence: bool) -> tuple[str | None, str] | None:
    """What the grammar says of an element from its tag and VR alone: (the anomaly's
    reason, "") when it is not allowed there; (None, the VR its bytes must suit) when its
    value is to be checked; None when there is nothing more to check (a sequence)."""
    group, number = tag >> 16, tag & 0xFFFF
    if group == 0x0002:
        return f"File Meta attribute {tag_text(tag)} inside the dataset", ""
    if group & 1:
        if group in (0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF):
            return f"{tag_text(tag)} is in a group no private data may use", ""
        if number == 0:
            allowed: frozenset[str] | None = frozenset({"UL"})
        elif number < 0x0010 or 0x0100 <= number < 0x1000:
            return f"{tag_text(tag)} is not a valid private tag", ""
        elif number <= 0x00FF:
            allowed = frozenset({"LO"})
        else:
            allowed = None  # a private data element: any VR
    else:
        allowed = dictionary_vrs(tag)
        if allowed is None:
            return f"{tag_text(tag)} is not in the DICOM dictionary", ""
    if vr == "UN" and not sequence and allowed is not None:
        vr = sorted(allowed)[0]  # UN keeps the dictionary's rules for its bytes
    elif allowed is not None and vr not in allowed and not (vr == "SQ" and "UN" in allowed):
        expected = " or ".join(sorted(allowed))
        return f"VR {vr} on {tag_text(tag)}, expected {expected}", ""
    if sequence:
        return None
    return None, vr


@functools.lru_cache(maxsize=1 << 15)  # pure in its bytes: series repeat their values
def value_problem(raw: bytes, vr: str) -> str | None:
    """Why the bytes of a value cannot be of ``vr``; None when they can."""
    unit = UNIT.get(vr)
    if unit is not None:
        return f"a length not a multiple of {unit}" if len(raw) % unit else None
    if vr not in TEXT_VRS or not raw:
        return None
    body = raw.rstrip(b"\x00 ") if vr == "UI" else raw.rstrip(b" ").rstrip(b"\x00")
    if _CONTROL.search(body):
        return "control bytes inside a text value (an embedded element or a NUL)"
    pattern = _FORMATS.get(vr)
    if pattern is not None:
        for value in body.split(b"\\"):
            if not pattern.fullmatch(value.strip(b" ")):
                return "characters its VR does not allow"
    return None


@functools.lru_cache(maxsize=1 << 16)
def implicit_vr(tag: int) -> str:
    """The VR of an element in an Implicit VR dataset, from the dictionary."""
    if (tag >> 16) & 1:
        number = tag & 0xFFFF
        return "LO" if 0x0010 <= number <= 0x00FF else ("UL" if number == 0 else "UN")
    allowed = dictionary_vrs(tag)
    if not allowed:
        return "UN"
    for choice in ("OW", "US", "SQ"):  # as pydicom reads ambiguous ones before context
        if choice in allowed:
            return choice
    return sorted(allowed)[0]


@dataclass(frozen=True)
class Meta:
    syntax: str
    start: int  # where the dataset begins


def read_meta(buf: bytes) -> Meta:
    """The transfer syntax and where the dataset begins (after preamble and File Meta).

    A file with neither keeps pydicom's guesses: Explicit VR when the first element
    shows a VR, little endian unless the group reads as big endian."""
    pos = 132 if len(buf) >= 132 and buf[128:132] == b"DICM" else 0
    syntax: str | None = None
    while pos + 8 <= len(buf) and buf[pos : pos + 2] == b"\x02\x00":
        number = struct.unpack_from("<H", buf, pos + 2)[0]
        vr = buf[pos + 4 : pos + 6].decode("latin-1")
        if vr not in VRS:
            raise GrammarError("the File Meta group is not in Explicit VR Little Endian")
        if vr in LONG_VRS:
            if pos + 12 > len(buf):
                raise GrammarError("truncated: the File Meta group runs past the data")
            length, value = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        else:
            length, value = struct.unpack_from("<H", buf, pos + 6)[0], pos + 8
        if value + length > len(buf):
            raise GrammarError("truncated: the File Meta group runs past the data")
        if number == 0x0010:
            syntax = buf[value : value + length].decode("latin-1").rstrip("\x00 ")
        pos = value + length
    if syntax is None:
        if pos + 6 > len(buf):
            raise GrammarError("not a DICOM file: too short")
        explicit = buf[pos + 4 : pos + 6].decode("latin-1") in VRS
        big = buf[pos] == 0 and buf[pos + 1] != 0
        if big:
            syntax = "1.2.840.10008.1.2.2"
        else:
            syntax = "1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2"
    return Meta(syntax, pos)


def encoding_of(syntax: str) -> tuple[bool, bool, bool]:
    """(implicit, little endian, deflated) for a transfer syntax UID."""
    if syntax == "1.2.840.10008.1.2":
        return True, True, False
    if syntax == "1.2.840.10008.1.2.2":
        return False, False, False
    if syntax in ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"):
        return False, True, True
    return False, True, False  # every other syntax: Explicit VR Little Endian headers


def parse(buf: bytes, *, whole: bool, memo: WalkMemo | None = None) -> Header:
    """Check the dataset in ``buf``: a whole file (``whole``), or a prefix of one that
    must reach the top-level Pixel Data. Raises :class:`GrammarError`, or
    :class:`NeedMore` when a prefix is too short to decide. ``memo``: the last clean
    walk of a header like this one, recalled when the bytes allow (``walkmemo``)."""
    meta = read_meta(buf)
    implicit, little, deflated = encoding_of(meta.syntax)
    if deflated:
        if not whole:
            raise NeedMore
        try:
            body = zlib.decompress(buf[meta.start :], -zlib.MAX_WBITS)
        except zlib.error:
            raise GrammarError("the deflated dataset cannot be inflated") from None
        data, start = body, 0
    else:
        data, start = buf, meta.start
    if (
        not implicit
        and len(data) >= start + 6
        and data[start + 4 : start + 6].decode("latin-1") not in VRS
    ):
        implicit = True  # a dataset written implicit under an explicit syntax: read as pydicom does
    known = None if memo is None or deflated else memo.recall(data, start, implicit, little)
    if known is not None:
        nodes, pixel_offset, recall = known
        return Header(meta.syntax, implicit, little, data, nodes, [], pixel_offset, recall)
    walk = _Walk(data, implicit, little, prefix=not whole)
    nodes, pos = walk.dataset(
        start, len(data), (), implicit=implicit, in_item=False, stop_at_pixels=True
    )
    header = Header(meta.syntax, implicit, little, data, nodes, walk.anomalies)
    if memo is not None and not deflated and not walk.anomalies and pos < len(data):
        header.recall = memo.remember(data, start, implicit, little, nodes, pos)
    if pos < len(data):
        header.pixel_offset = pos
    elif not whole:
        raise NeedMore
    return header


def check_tail(header: Header, tail: bytes) -> None:
    """Elements after the top-level Pixel Data (``tail``, from file offset ``base``):
    only trailing padding, digital signatures and private elements, ascending."""
    if not tail:
        return
    walk = _Walk(tail, header.implicit, header.little)
    nodes, _ = walk.dataset(0, len(tail), (), implicit=header.implicit, in_item=False)
    header.anomalies.extend(walk.anomalies)
    last = PIXEL_DATA
    for node in nodes:
        if node.tag <= last:
            what = "a second Pixel Data" if node.tag in PIXEL_TAGS else tag_text(node.tag)
            header.anomalies.append(Anomaly((), node.tag, f"{what} after Pixel Data, out of order"))
        elif not (node.tag >> 16) & 1 and node.tag not in AFTER_PIXELS_ALLOWED:
            reason = f"{tag_text(node.tag)} after Pixel Data"
            header.anomalies.append(Anomaly((), node.tag, reason))
        last = max(last, node.tag)


def pixel_end(read: Callable[[int, int], bytes], offset: int, header: Header, size: int) -> int:
    """Where the top-level Pixel Data element at ``offset`` ends (past ``size`` when cut);
    ``read(at, count)`` reads the file (or the inflated dataset)."""
    order = "<" if header.little else ">"
    head = read(offset, 12)
    if len(head) < 8:
        return size + 1
    if header.implicit:
        length, cursor = struct.unpack_from(order + "I", head, 4)[0], offset + 8
    elif head[4:6].decode("latin-1") in LONG_VRS and len(head) == 12:
        length, cursor = struct.unpack_from(order + "I", head, 8)[0], offset + 12
    else:
        raise GrammarError("Pixel Data has a VR it cannot have")
    if length != UNDEFINED:
        return int(cursor + length)
    while cursor + 8 <= size:  # encapsulated: walk the fragments to the delimiter
        item = read(cursor, 8)
        tag = (struct.unpack_from(order + "H", item, 0)[0] << 16) | struct.unpack_from(
            order + "H", item, 2
        )[0]
        item_len = struct.unpack_from(order + "I", item, 4)[0]
        if tag == SEQ_END:
            return cursor + 8
        if tag != ITEM or item_len == UNDEFINED:
            raise GrammarError("encapsulated Pixel Data holds something other than fragments")
        cursor += 8 + item_len
    return size + 1


FIRST_READ = 1 << 16
PIXEL_HEAD = 12  # the longest element header: the walk reads it to stop at Pixel Data


def read_header(
    handle: BinaryIO, size: int, memo: WalkMemo | None = None, *, first: int | None = None
) -> tuple[Header, bytes]:
    """Parse a file's header from ``handle``, reading no more than it needs (the pixels
    stay on disk); also the bytes read, which hold the header whole. ``first``: the bytes
    to read first (``FIRST_READ`` unless the caller knows better); more as the walk needs."""
    buf = handle.read(min(size, first or FIRST_READ))
    while True:
        try:
            return parse(buf, whole=len(buf) >= size, memo=memo), buf
        except NeedMore:
            if len(buf) >= size:
                raise GrammarError("truncated: the header runs past the end of the file") from None
            buf += handle.read(min(size - len(buf), max(len(buf), FIRST_READ)))
