"""A file's header read as bytes, by the strict grammar walk, for the files pydicom need not parse.

Most outputs are read without building a pydicom Dataset: the grammar gate's walk
(``deid/grammar.py``) gives each element's tag, VR and value bytes, and a value is converted
only when its verdict is not already known (``elements.ElementChecker.check_raw``), by
pydicom's own converter, with the character set a Dataset would use: a value reads exactly as
pydicom reads it. A file this reading would not reproduce exactly is declined (``Declined``,
or any error) and read whole by pydicom, as before: other syntaxes (implicit VR, big endian,
deflated), an element the grammar does not allow, a UN element (pydicom may give it another
VR), a character set inside an item, anything after Pixel Data, Pixel Data neither OB nor OW,
a File Meta without a transfer syntax, no SOP Instance UID.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from pacsguard.core.io import InputItem
from pacsguard.deid.grammar import (
    LONG_VRS,
    PIXEL_DATA,
    UNDEFINED,
    VRS,
    GrammarError,
    Header,
    Node,
    parse,
    pixel_end,
    read_header,
)
from pacsguard.deid.walkmemo import WalkMemo
from pacsguard.verify.risk import OVERLAY_DATA, RISK_TAGS

CHARSET = 0x00080005
SOP_INSTANCE_UID = 0x00080018
TRANSFER_SYNTAX = 0x00020010
META_ENCODINGS = (default_encoding,)  # pydicom reads File Meta with the default encoding


class Declined(Exception):
    """The file is left to pydicom's reading (never an error: the reason is for tests)."""


@dataclass(frozen=True)
class RawHeader:
    """File Meta and dataset (up to Pixel Data) as nodes over ``buf``; text encodings."""

    buf: bytes
    meta: list[Node]
    elements: list[Node]
    encodings: tuple[str, ...]
    pixels: Node | None  # the top-level Pixel Data element, its value not read

    def top(self, tag: int) -> Node | None:
        for node in self.elements:
            if node.tag == tag:
                return node
            if node.tag > tag:
                return None
        return None

    def value(self, tag: int) -> Any:
        """The top-level value of ``tag`` as pydicom gives it (``None`` when absent)."""
        node = self.top(tag)
        return None if node is None else element(self.buf, node, self.encodings).value

    def text(self, tag: int) -> str:
        """``str(value(tag) or "").strip()``, remembered by the value's exact bytes: the
        patient, study and series of a tree repeat from file to file."""
        node = self.top(tag)
        if node is None:
            return ""
        return _text(node.tag, node.vr, self.buf[node.value : node.end], self.encodings)

    def risk_key(self) -> tuple[object, ...] | None:
        """What the decision to read the pixels rests on: the bytes of the attributes it
        reads (``risk.RISK_KEYWORDS``); None when an overlay is present (always read)."""
        if any(n.tag in OVERLAY_DATA for n in self.elements):
            return None
        buf = self.buf
        read = tuple(
            (n.tag, n.vr, buf[n.value : n.end]) for n in self.elements if n.tag in RISK_TAGS
        )
        return read, self.pixels is not None, self.encodings

    def risk_view(self) -> Dataset:
        """Those attributes as a Dataset of raw elements (converted on access, as ``dcmread``
        leaves them), Pixel Data's value not read."""
        raw: dict[BaseTag, DataElement | RawDataElement] = {
            BaseTag(n.tag): raw_element(self.buf, n) for n in self.elements if n.tag in RISK_TAGS
        }
        if self.pixels is not None:
            pixels = self.pixels
            raw[BaseTag(pixels.tag)] = RawDataElement(
                BaseTag(pixels.tag), pixels.vr, pixels.end - pixels.value, None,  # not read
                pixels.value, False, True, True, False,
            )  # fmt: skip
        ds = Dataset(raw)
        ds.set_original_encoding(False, True, list(self.encodings))
        return ds


def raw_element(buf: bytes, node: Node) -> RawDataElement:
    length = node.end - node.value
    return RawDataElement(
        BaseTag(node.tag), node.vr, length, buf[node.value : node.end], node.value,
        False, True, True, False,
    )  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _text(tag: int, vr: str, raw: bytes, encodings: tuple[str, ...]) -> str:
    node = Node(tag, vr, 0, len(raw))
    return str(element(raw, node, encodings).value or "").strip()


def element(buf: bytes, node: Node, encodings: tuple[str, ...]) -> DataElement:
    """The element as a pydicom Dataset of the same file gives it (not for sequences)."""
    return convert_raw_data_element(raw_element(buf, node), encoding=list(encodings))


@functools.cache
def _explicit_little(syntax: str) -> bool:
    uid = UID(syntax)
    return bool(
        uid.is_transfer_syntax
        and not uid.is_implicit_VR
        and uid.is_little_endian
        and not uid.is_deflated
    )


# The last clean header walked in this process: the next slice of a series is recalled,
# not walked (``deid.walkmemo``, the walk's own verdicts). Every state it keeps is a header
# it checked whole, so threads may share it.
_SHAPES = WalkMemo()


def read_raw(item: InputItem, data: bytes | None = None) -> RawHeader:
    """The header of ``item`` (``data``: its bytes, when already read); raises
    :class:`Declined` (or a grammar error) when pydicom must read the file instead."""
    if data is None and item.member is None and item.remote is None:
        with item.path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header, buf = read_header(handle, size, _SHAPES)
            fd = handle.fileno()
            return _accept(header, buf, size, lambda at, count: os.pread(fd, count, at))
    if data is None:
        data = item.read_bytes()
    return _accept(parse(data, whole=True), data, len(data), lambda at, n: data[at : at + n])


def _accept(header: Header, buf: bytes, size: int, read: Callable[[int, int], bytes]) -> RawHeader:
    if buf[128:132] != b"DICM":
        raise Declined("no preamble")
    if header.anomalies or header.implicit or not _explicit_little(header.syntax):
        raise Declined("not a clean Explicit VR Little Endian header")
    if header.buf is not buf:
        raise Declined("inflated")
    pixels = None
    if header.pixel_offset is not None:
        pixels = _pixel_node(header, buf, size, read)
    meta = meta_nodes(buf)
    if not any(n.tag == TRANSFER_SYNTAX for n in meta):
        raise Declined("no transfer syntax in the File Meta")  # pydicom guesses its own way
    for node, in_item in _nodes(header.elements, False):
        if node.vr == "UN" or (node.vr == "SQ" and buf[node.value - 8 : node.value - 6] != b"SQ"):
            raise Declined("UN element")
        if in_item and node.tag == CHARSET:
            raise Declined("character set inside an item")
    charset = next((n for n in header.elements if n.tag == CHARSET), None)
    encodings: tuple[str, ...] = (default_encoding,)
    if charset is not None:
        encodings = tuple(convert_encodings(element(buf, charset, META_ENCODINGS).value))
    raw = RawHeader(buf, meta, header.elements, encodings, pixels)
    if not raw.text(SOP_INSTANCE_UID):
        raise Declined("no SOP Instance UID")
    return raw


def _pixel_node(header: Header, buf: bytes, size: int, read: Callable[[int, int], bytes]) -> Node:
    offset = header.pixel_offset
    assert offset is not None
    head = read(offset, 12)
    if (
        len(head) < 12
        or int.from_bytes(head[:2], "little") << 16 | int.from_bytes(head[2:4], "little")
        != PIXEL_DATA
    ):
        raise Declined("not Pixel Data where the header ends")
    end = pixel_end(read, offset, header, size)
    if end != size:
        raise Declined("elements after Pixel Data, or Pixel Data cut")
    vr = head[4:6].decode("latin-1")
    if vr not in ("OB", "OW"):
        raise Declined("Pixel Data neither OB nor OW")
    return Node(PIXEL_DATA, vr, offset + 12, end)


def meta_nodes(buf: bytes) -> list[Node]:
    """The File Meta elements (group 0002, Explicit VR Little Endian), ascending."""
    pos, nodes = 132, list[Node]()
    while pos + 8 <= len(buf) and buf[pos : pos + 2] == b"\x02\x00":
        number = int.from_bytes(buf[pos + 2 : pos + 4], "little")
        vr = buf[pos + 4 : pos + 6].decode("latin-1")
        if vr not in VRS or vr in ("SQ", "UN"):
            raise Declined("File Meta VR")
        if vr in LONG_VRS:
            length, value = int.from_bytes(buf[pos + 8 : pos + 12], "little"), pos + 12
        else:
            length, value = int.from_bytes(buf[pos + 6 : pos + 8], "little"), pos + 8
        if length == UNDEFINED or value + length > len(buf):
            raise GrammarError("truncated: the File Meta group runs past the data")
        tag = 0x00020000 | number
        if nodes and tag <= nodes[-1].tag:
            raise Declined("File Meta out of order")
        nodes.append(Node(tag, vr, value, value + length))
        pos = value + length
    return nodes


def _nodes(nodes: list[Node], in_item: bool) -> Iterator[tuple[Node, bool]]:
    for node in nodes:
        yield node, in_item
        for item in node.items or ():
            yield from _nodes(item, True)
