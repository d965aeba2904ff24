"""A network data set and a Part 10 file (PS3.10 7.1), both ways, without decoding it.

A C-STORE carries the data set alone, in the transfer syntax of its presentation context;
a file adds the preamble, ``DICM`` and the File Meta group. ``file_prefix`` builds what a
received data set needs in front of it (the File Meta that pynetdicom's
``Event.file_meta`` would build), ``dataset_offset`` finds where a file's data set begins.
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

# Explicit VR Little Endian VRs with a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})  # fmt: skip


def _short(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii", "replace")[:64]  # a UID is at most 64 characters
    return raw + b"\x00" if len(raw) % 2 else raw


def file_prefix(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Preamble, prefix and File Meta for a data set received in ``transfer_syntax``: the
    elements of pynetdicom's ``Event.file_meta``, encoded here (pydicom's Dataset and
    writer cost more than the rest of a reception's bookkeeping)."""
    version = PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii")
    body = b"".join(
        [
            struct.pack("<HH2s2xI", 0x0002, 0x0001, b"OB", 2) + b"\x00\x01",
            _short(0x0002, b"UI", _ui(sop_class)),
            _short(0x0003, b"UI", _ui(sop_instance)),
            _short(0x0010, b"UI", _ui(transfer_syntax)),
            _short(0x0012, b"UI", _ui(PYNETDICOM_IMPLEMENTATION_UID)),
            _short(0x0013, b"SH", version + b" " if len(version) % 2 else version),
        ]
    )
    length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return b"\x00" * 128 + b"DICM" + length + body


def dataset_offset(data: bytes | memoryview) -> int | None:
    """Where the data set of a Part 10 file begins: after the File Meta group, walked
    element by element (Explicit VR Little Endian, PS3.10 7.1), so a missing or wrong group
    length cannot misplace it. None when ``data`` does not begin as a Part 10 file."""
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        return None
    pos = 132
    while pos + 8 <= len(data) and bytes(data[pos : pos + 2]) == b"\x02\x00":
        vr = bytes(data[pos + 4 : pos + 6])
        if not vr.isalpha() or not vr.isupper():
            return None
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                return None
            (length,) = struct.unpack_from("<I", data, pos + 8)
            pos += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            pos += 8 + length
    return pos if pos <= len(data) else None
