"""Reading a DICOM file for de-identification, and writing the result.

The fast path reads the header only, checks that the element where reading stopped is a
top-level Pixel Data (7FE0,0010) that ends exactly at the end of the file, writes the new
header, then lets the kernel copy the Pixel Data element's bytes (``os.copy_file_range``,
falling back to ``sendfile`` and plain copies). The byte-level path's writer
(``pipeline.Worker``) copies them through one reused buffer instead (``copy_hashed``), to hash
them on the way. Deflated transfer syntaxes, big endian, trailing elements after Pixel Data,
zip members and files whose pixels must be cleaned take the full path (whole dataset in
memory).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pacsguard.core.errors import PacsguardError
from pacsguard.deid.structure import is_complete

PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
ITEM_LE = b"\xfe\xff\x00\xe0"
SEQ_DELIM_LE = b"\xfe\xff\xdd\xe0"
UNDEFINED = 0xFFFFFFFF
COPY_CHUNK = 1 << 30
TRUNCATED = "truncated or corrupt file: an element runs past the end of the data"


class UnreadableError(PacsguardError):
    """The input is not a DICOM file pacsguard can read; the reason names no value inside it."""


@dataclass
class PixelSpan:
    """Where the Pixel Data element lies in the source file."""

    offset: int
    length: int  # the whole element: tag, VR, length and value


@dataclass
class Source:
    """A parsed input: the dataset (header only on the fast path) and how to get the pixels."""

    dataset: Dataset
    file_meta: FileMetaDataset
    path: Path | None
    pixels: PixelSpan | None  # set: fast path, pixels still in the file
    implicit: bool


def _syntax(ds: Dataset) -> tuple[FileMetaDataset, bool]:
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    syntax = meta.get("TransferSyntaxUID")
    implicit = bool(getattr(ds, "is_implicit_VR", False) or ds.original_encoding[0])
    if syntax is None:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return meta, implicit


def _read(handle: BinaryIO, stop_before_pixels: bool) -> Dataset:
    start = handle.tell()
    try:
        return pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        handle.seek(start)
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels, force=True)
    except Exception as exc:  # pydicom raises many types on garbage
        raise UnreadableError(f"not a DICOM file ({type(exc).__name__})") from None
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        raise UnreadableError("not a DICOM file (no DICOM header, no SOP Instance UID)")
    return ds


def element_end(handle: BinaryIO, offset: int, implicit: bool, size: int) -> int | None:
    """End offset of the Pixel Data element starting at ``offset``; None if malformed."""
    handle.seek(offset)
    head = handle.read(12)
    if len(head) < 8 or head[:4] != PIXEL_TAG_LE:
        return None
    if implicit:
        length, cursor = int(struct.unpack("<I", head[4:8])[0]), offset + 8
    else:
        if head[4:6] not in (b"OB", b"OW") or len(head) < 12:
            return None
        length, cursor = int(struct.unpack("<I", head[8:12])[0]), offset + 12
    if length != UNDEFINED:
        return cursor + length
    while cursor + 8 <= size:  # encapsulated: walk the items to the sequence delimiter
        handle.seek(cursor)
        item = handle.read(8)
        item_len = int(struct.unpack("<I", item[4:8])[0])
        if item[:4] == SEQ_DELIM_LE:
            return cursor + 8
        if item[:4] != ITEM_LE or item_len == UNDEFINED:
            return None
        cursor += 8 + item_len
    return size + 1  # ran off the end: truncated


def _expected_native_length(ds: Dataset) -> int | None:
    """The bytes native Pixel Data needs, as pydicom reckons them (YBR_FULL_422 holds two
    samples a pixel, not three; single-bit frames are packed); None when undeclared."""
    try:
        length = get_expected_length(ds, "bytes")
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return length if isinstance(length, int) else None


def open_fast(path: Path) -> Source | None:
    """Parse the header of ``path``; None when the file must take the full path."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        ds = _read(handle, stop_before_pixels=True)
        offset = handle.tell()
        meta, implicit = _syntax(ds)
        syntax = meta.TransferSyntaxUID
        if syntax in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
            return None
        if not ds.original_encoding[1]:  # big endian without a file meta
            return None
        handle.seek(0)
        if not is_complete(handle.read(offset), implicit):
            raise UnreadableError(TRUNCATED)
        if offset >= size:
            if "Rows" in ds:
                raise UnreadableError("truncated file: an image without Pixel Data")
            return Source(ds, meta, path, None, implicit)
        end = element_end(handle, offset, implicit, size)
    if end is None or end < size:
        return None  # not a plain trailing Pixel Data: let the full reader judge
    if end > size:
        raise UnreadableError("truncated file: Pixel Data runs past the end of the file")
    if syntax.is_compressed is False:
        expected = _expected_native_length(ds)
        header = 8 if implicit else 12
        if expected is not None and end - offset - header < expected:
            raise UnreadableError("truncated file: less Pixel Data than the image needs")
    return Source(ds, meta, path, PixelSpan(offset, end - offset), implicit)


def open_full(data: bytes | Path) -> Source:
    """Read the whole dataset (pixels included) from bytes or a path."""
    raw = data if isinstance(data, bytes) else data.read_bytes()
    ds = _read(io.BytesIO(raw), stop_before_pixels=False)
    meta, implicit = _syntax(ds)
    plain = meta.TransferSyntaxUID != DeflatedExplicitVRLittleEndian
    if plain and not is_complete(raw, implicit, little=bool(ds.original_encoding[1])):
        raise UnreadableError(TRUNCATED)
    if "Rows" in ds and "PixelData" not in ds:
        raise UnreadableError("truncated file: an image without Pixel Data")
    if "PixelData" in ds and not meta.TransferSyntaxUID.is_compressed:
        expected = _expected_native_length(ds)
        if expected is not None and len(ds.PixelData) < expected:
            raise UnreadableError("truncated file: less Pixel Data than the image needs")
    return Source(ds, meta, data if isinstance(data, Path) else None, None, implicit)


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src, dst, min(count - done, COPY_CHUNK), offset + done)
            if n == 0:
                break
            done += n
    except OSError:
        pass
    while done < count:  # fallback: sendfile, then plain reads
        try:
            n = os.sendfile(dst, src, offset + done, min(count - done, COPY_CHUNK))
        except OSError:
            n = len(chunk := os.pread(src, min(count - done, 1 << 20), offset + done))
            os.write(dst, chunk)
        if n == 0:
            raise OSError("source shrank while copying Pixel Data")
        done += n


HASHED_CHUNK = 1 << 20  # bytes per read of ``copy_hashed``: a CT slice in one


def copy_hashed(
    src: int, dst: int, offset: int, count: int, update: Callable[[memoryview], object],
    buffer: bytearray,
) -> None:  # fmt: skip
    """``copy_range``, with every byte copied also given to ``update`` (a digest's): the
    bytes pass once through ``buffer`` (read, hashed, written), so that the output need not
    be read back to be hashed. Measured against the kernel copy and a read back of the
    output for its digest: less CPU a file, one open fewer (bench/README.md)."""
    view = memoryview(buffer)
    done = 0
    while done < count:
        part = view[: min(count - done, len(view))]
        n = (
            os.preadv(src, [part], offset + done)
            if _PREADV
            else _pread_into(src, part, offset + done)
        )
        if n == 0:
            raise OSError("source shrank while copying Pixel Data")
        chunk = part[:n]
        update(chunk)
        while chunk:
            chunk = chunk[os.write(dst, chunk) :]
        done += n


_PREADV = hasattr(os, "preadv")


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def write_header(ds: Dataset, handle: BinaryIO) -> None:
    """``ds.save_as(handle, enforce_file_format=True)``, byte for byte, but faster.

    Elements still undecoded (most of a rewritten header) are copied as their encoded
    bytes; decoded ones go through pydicom's element writer. Deflated and big endian
    syntaxes, and any change of encoding or character set, take pydicom's own path.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    implicit = syntax == ImplicitVRLittleEndian
    same_encoding = ds.original_encoding == (implicit, True)
    same_charset = ds.original_character_set == ds._character_set
    plain = syntax not in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)
    if not (plain and same_encoding and same_charset):
        # dcmwrite converts every element to the syntax written (a cleaned big endian
        # image becomes little endian); save_as refuses to change the endianness.
        pydicom.dcmwrite(handle, ds, enforce_file_format=True)
        return
    fp = DicomFileLike(handle)
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    encoding = ds.get("SpecificCharacterSet", default_encoding)
    buffer = bytearray()
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are never written (PS3.5 7.2)
        element = ds.get_item(tag)
        value = element.value
        if (
            isinstance(element, RawDataElement)
            and isinstance(value, bytes)
            and element.length == len(value)
            and (implicit or element.VR)
        ):
            group, number = tag >> 16, tag & 0xFFFF
            if implicit:
                buffer += struct.pack("<HHI", group, number, len(value))
            elif element.VR in LONG_VRS:
                buffer += struct.pack("<HH2s2xI", group, number, element.VR.encode(), len(value))
            else:
                buffer += struct.pack("<HH2sH", group, number, element.VR.encode(), len(value))
            buffer += value
            continue
        if buffer:
            fp.write(bytes(buffer))
            buffer.clear()
        write_data_element(fp, element, encoding)
    fp.write(bytes(buffer))


def write(source: Source, ds: Dataset, handle: BinaryIO) -> None:
    """Write the de-identified ``ds`` to ``handle``; on the fast path, append the pixels."""
    write_header(ds, handle)
    if source.pixels is None or source.path is None:
        return
    handle.flush()
    copy_pixels(source.path, handle, source.pixels)


def copy_pixels(path: Path, handle: BinaryIO, pixels: PixelSpan) -> None:
    """Append the Pixel Data element's bytes of ``path`` to ``handle``, by the kernel."""
    with path.open("rb") as src:
        copy_range(src.fileno(), handle.fileno(), pixels.offset, pixels.length)
