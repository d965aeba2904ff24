"""A structural check of the encoded dataset: every element's declared length must fit.

pydicom reads a file cut in the middle of a sequence without complaint; this walk over the
raw header bytes (tags, VRs and lengths only, no values decoded) catches it, so truncated
files go to quarantine instead of the output.
"""

from __future__ import annotations

import struct

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


class _Walker:
    def __init__(self, buf: bytes, implicit: bool, little: bool) -> None:
        self.buf, self.implicit = buf, implicit
        self.h = "<H" if little else ">H"
        self.i = "<I" if little else ">I"

    def header(self, pos: int, end: int) -> tuple[int, int, int, bytes] | None:
        """(tag, value length, value start, VR or b"") of the element at ``pos``."""
        if pos + 8 > end:
            return None
        group = struct.unpack(self.h, self.buf[pos : pos + 2])[0]
        element = struct.unpack(self.h, self.buf[pos + 2 : pos + 4])[0]
        tag = (group << 16) | element
        if self.implicit or group == 0xFFFE:
            return tag, struct.unpack(self.i, self.buf[pos + 4 : pos + 8])[0], pos + 8, b""
        vr = self.buf[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > end:
                return None
            return tag, struct.unpack(self.i, self.buf[pos + 8 : pos + 12])[0], pos + 12, vr
        return tag, struct.unpack(self.h, self.buf[pos + 6 : pos + 8])[0], pos + 8, vr

    def dataset(self, pos: int, end: int, in_item: bool) -> int | None:
        """Walk elements from ``pos``; the position after the dataset, or None if broken."""
        while pos < end:
            head = self.header(pos, end)
            if head is None:
                return None
            tag, length, start, vr = head
            if tag == ITEM_END:
                return start if in_item else None
            if length == UNDEFINED:
                # a UN of undefined length holds its items in Implicit VR Little Endian
                # (PS3.5 6.2.2, CP-246), whatever the file's syntax
                walker = _Walker(self.buf, True, True) if vr == b"UN" else self
                after = walker.items(start, end)
                if after is None:
                    return None
                pos = after
            elif start + length > end:
                return None
            else:
                pos = start + length
        return None if in_item else pos

    def items(self, pos: int, end: int) -> int | None:
        """Walk the items of an undefined-length sequence (or encapsulated pixel data)."""
        while pos < end:
            head = self.header(pos, end)
            if head is None:
                return None
            tag, length, start, _ = head
            if tag == SEQ_END:
                return start
            if tag != ITEM:
                return None
            if length == UNDEFINED:
                after = self.dataset(start, end, in_item=True)
                if after is None:
                    return None
                pos = after
            elif start + length > end:
                return None
            else:
                pos = start + length
        return None


def dataset_start(buf: bytes) -> int:
    """Offset of the first dataset element: after the preamble and the File Meta group."""
    pos = 132 if len(buf) >= 132 and buf[128:132] == b"DICM" else 0
    while pos + 8 <= len(buf) and buf[pos : pos + 2] == b"\x02\x00":
        vr = buf[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            pos += 12 + struct.unpack("<I", buf[pos + 8 : pos + 12])[0]
        else:
            pos += 8 + struct.unpack("<H", buf[pos + 6 : pos + 8])[0]
    return pos


def is_complete(buf: bytes, implicit: bool, little: bool = True) -> bool:
    """True when the dataset in ``buf`` (a whole file, or its header) is structurally whole."""
    walker = _Walker(buf, implicit, little)
    return walker.dataset(dataset_start(buf), len(buf), in_item=False) == len(buf)
