"""Write a dataset in one of the encodings real archives hold."""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)


class Encoding(enum.Enum):
    EXPLICIT_LE = "explicit-le"
    IMPLICIT_LE = "implicit-le"
    DEFLATED = "deflated"
    RLE = "rle"
    BIG_ENDIAN = "big-endian"
    RAW = "raw"  # no preamble, no File Meta: a bare implicit little endian dataset


def write(ds: Dataset, path: Path, encoding: Encoding) -> str:
    """Write ``ds`` to ``path``; returns the transfer syntax UID the file is encoded in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = ds.file_meta
    if encoding is Encoding.RAW:
        del ds.file_meta
        ds.preamble = None
        ds.save_as(path, implicit_vr=True, little_endian=True)
        ds.file_meta = meta
        return ImplicitVRLittleEndian
    if encoding is Encoding.RLE:
        # The pure-Python encoder keeps output identical wherever plugins differ.
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    elif encoding is Encoding.BIG_ENDIAN:
        _swap_pixel_words(ds)
        meta.TransferSyntaxUID = ExplicitVRBigEndian
    else:
        meta.TransferSyntaxUID = {
            Encoding.EXPLICIT_LE: ExplicitVRLittleEndian,
            Encoding.IMPLICIT_LE: ImplicitVRLittleEndian,
            Encoding.DEFLATED: DeflatedExplicitVRLittleEndian,
        }[encoding]
    ds.save_as(path, enforce_file_format=True)
    return str(meta.TransferSyntaxUID)


def _swap_pixel_words(ds: Dataset) -> None:
    """Big endian files store 16-bit pixels byte-swapped; pydicom writes OW bytes as given."""
    if "PixelData" in ds and ds.BitsAllocated == 16:
        words = np.frombuffer(ds.PixelData, dtype="<u2")
        ds.PixelData = words.astype(">u2").tobytes()
    if 0x60003000 in ds:
        raise ValueError("big endian output of overlay data is not supported here")
