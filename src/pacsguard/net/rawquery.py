"""A query identifier (C-FIND request or response) read and changed as bytes.

A C-FIND identifier is a flat data set at every query level: the guard needs only its
top-level tags (the keys used, for the policy and the audit), the Query/Retrieve Level,
and, in a response, Retrieve AE Title replaced by its own. ``Identifier`` walks the
top-level elements of an Implicit or Explicit VR Little Endian data set; anything it does
not walk exactly (another transfer syntax, an undefined length, unsorted or truncated
elements, a group length, an unknown or UN explicit VR) makes it decline (``None``), and the
caller takes pydicom's decoded path, which stays the reference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import dictionary_has_tag, dictionary_keyword
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.dsutils import encode

UNDEFINED = 0xFFFFFFFF
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
     b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)  # fmt: skip
_TAG_LEN = struct.Struct("<HHI")
_EXPLICIT = struct.Struct("<HH2sH")
_UINT = struct.Struct("<I")
SYNTAXES = {str(ImplicitVRLittleEndian): True, str(ExplicitVRLittleEndian): False}


@dataclass(frozen=True, slots=True)
class Element:
    tag: int
    start: int  # where its tag begins
    value: int  # where its value begins
    end: int  # where the next element begins


class Identifier:
    """The top-level elements of an encoded identifier (``walk``; None where it declines)."""

    def __init__(self, data: bytes, implicit: bool, elements: list[Element]) -> None:
        self.data, self.implicit, self.elements = data, implicit, elements

    @classmethod
    def walk(cls, data: bytes, syntax: str) -> Identifier | None:
        implicit = SYNTAXES.get(str(syntax))
        if implicit is None:
            return None
        elements = _walk(data, implicit)
        return None if elements is None else cls(data, implicit, elements)

    def find(self, tag: int) -> Element | None:
        for element in self.elements:
            if element.tag == tag:
                return element
            if element.tag > tag:
                return None
        return None

    def text(self, tag: int) -> str | None:
        """A single-valued text element's value as it came ('' if absent); None where it
        holds anything but printable ASCII (a null, a control character) or several values:
        the decoded path then decides what it means."""
        element = self.find(tag)
        if element is None:
            return ""
        raw = self.data[element.value : element.end]
        if b"\\" in raw or not all(0x20 <= byte < 0x7F for byte in raw):
            return None
        return raw.decode("ascii")

    def tags(self) -> list[int]:
        return [e.tag for e in self.elements]

    def replaced(self, tag: int, encoded: bytes) -> bytes:
        """The identifier with the element ``tag`` (if present) replaced by ``encoded``
        (a whole element: tag, VR, length, value, in this identifier's syntax)."""
        element = self.find(tag)
        if element is None:
            return self.data
        return self.data[: element.start] + encoded + self.data[element.end :]


def _walk(data: bytes, implicit: bool) -> list[Element] | None:
    elements: list[Element] = []
    pos, end, last = 0, len(data), -1
    while pos < end:
        if pos + 8 > end:
            return None
        if implicit:
            group, number, length = _TAG_LEN.unpack_from(data, pos)
            value = pos + 8
        else:
            group, number, vr, length = _EXPLICIT.unpack_from(data, pos)
            value = pos + 8
            if vr in LONG_VRS:
                if pos + 12 > end:
                    return None
                (length,) = _UINT.unpack_from(data, pos + 8)
                value = pos + 12
            elif vr not in SHORT_VRS:
                return None
            if vr == b"UN":  # pydicom's reading replaces it by a known VR: decoded path
                return None
        tag = (group << 16) | number
        if tag <= last or number == 0 or group in (0x0002, 0xFFFE) or group < 0x0008:
            return None  # unsorted, a group length, meta, an item, or a command element
        if length == UNDEFINED or value + length > end:
            return None
        elements.append(Element(tag, pos, value, value + length))
        pos, last = value + length, tag
    return elements


def key_name(tag: int) -> str:
    """The keyword of a key (its tag for a private or unknown one), as pydicom's
    ``DataElement.keyword`` gives it: never its value."""
    if dictionary_has_tag(tag):
        keyword = dictionary_keyword(tag)
        if keyword:
            return keyword
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@lru_cache(maxsize=64)
def encoded_element(keyword: str, value: str, syntax: str) -> bytes:
    """One element as pydicom encodes it in ``syntax`` (so that a value rewritten as bytes
    is the one the decoded path would write)."""
    ds = Dataset()
    setattr(ds, keyword, value)
    implicit = SYNTAXES[str(syntax)]
    data = encode(ds, implicit, True, False)
    if data is None:
        raise ValueError(f"{keyword} cannot be encoded")
    return data


@dataclass(frozen=True, slots=True)
class Encoded:
    """A data set as it came (or is to go) on the wire: its bytes and transfer syntax."""

    data: bytes
    syntax: str

    def dataset(self) -> Dataset:
        """pydicom's reading of it (the decoded path)."""
        from io import BytesIO

        from pydicom.uid import UID
        from pynetdicom.dsutils import decode

        uid = UID(self.syntax)
        return decode(BytesIO(self.data), uid.is_implicit_VR, uid.is_little_endian,
                      uid.is_deflated)  # fmt: skip


def encoded(ds: Dataset, syntax: str) -> bytes | None:
    """``ds`` encoded in ``syntax`` by pydicom (None where it cannot be)."""
    from pydicom.uid import UID

    uid = UID(syntax)
    return encode(ds, uid.is_implicit_VR, uid.is_little_endian, uid.is_deflated)
