"""Decode pixel data to frames and write it back without ever losing information.

- Native (uncompressed) data is written back in the same transfer syntax (big endian
  becomes Explicit VR Little Endian: pydicom no longer writes big endian).
- RLE Lossless and JPEG 2000 Lossless are re-encoded losslessly (pydicom's RLE encoder,
  pylibjpeg-openjpeg); any other compressed data (JPEG Lossless, JPEG-LS, and every lossy
  syntax) is written uncompressed in Explicit VR Little Endian. Lossy data is never
  re-encoded lossily: decoding once is the only loss, and Lossy Image Compression says so.
- YCbCr colour is decoded to RGB, and Photometric Interpretation follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from pacsguard.deid.pixels.errors import PixelCleaningError

NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian})
REENCODE = {RLELossless: "pydicom", JPEG2000Lossless: "pylibjpeg"}
LOSSLESS = frozenset(
    {
        *NATIVE,
        ExplicitVRBigEndian,
        RLELossless,
        JPEG2000Lossless,
        UID("1.2.840.10008.1.2.4.57"),  # JPEG Lossless, Non-Hierarchical (Process 14)
        UID("1.2.840.10008.1.2.4.70"),  # JPEG Lossless, First-Order Prediction
        UID("1.2.840.10008.1.2.4.80"),  # JPEG-LS Lossless
        UID("1.2.840.10008.1.2.4.201"),  # HTJ2K Lossless
        UID("1.2.840.10008.1.2.4.202"),  # HTJ2K Lossless RPCL
    }
)


@dataclass
class Frames:
    """All frames as one array: (frames, rows, columns[, samples]), stored values."""

    array: NDArray[np.generic]
    transfer_syntax: UID
    photometric: str

    @property
    def count(self) -> int:
        return int(self.array.shape[0])


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian


def decode(ds: Dataset) -> Frames:
    """Every frame of ``ds``; ``PixelCleaningError`` when the data cannot be decoded."""
    if "PixelData" not in ds:
        raise PixelCleaningError("no Pixel Data to clean (float or absent pixel data)")
    tsyntax = transfer_syntax(ds)
    try:
        array = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoders raise many types; the message may name the syntax
        raise PixelCleaningError(
            f"cannot decode pixel data in transfer syntax {tsyntax} ({exc.__class__.__name__})"
        ) from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if frames == 1 and array.ndim == (3 if samples > 1 else 2):
        array = array[np.newaxis]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom converts YCbCr to RGB when decoding
    return Frames(np.ascontiguousarray(array), tsyntax, photometric)


def encode(ds: Dataset, frames: Frames) -> UID:
    """Store ``frames`` into ``ds`` losslessly; returns the transfer syntax now in force."""
    source = frames.transfer_syntax
    array = frames.array if frames.count > 1 else frames.array[0]
    bits_stored = int(getattr(ds, "BitsStored", 8 * array.dtype.itemsize))
    if source not in LOSSLESS and str(getattr(ds, "LossyImageCompression", "")) != "01":
        ds.LossyImageCompression = "01"
    ds.set_pixel_data(array, frames.photometric, bits_stored, generate_instance_uid=False)
    target = source if source in NATIVE else ExplicitVRLittleEndian
    if source in REENCODE:
        try:
            ds.compress(
                source, array, encoding_plugin=REENCODE[source], generate_instance_uid=False
            )
            target = source
        except Exception:  # no encoder for this data: stay uncompressed, still lossless
            ds.set_pixel_data(array, frames.photometric, bits_stored, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = target
    return target
