"""Decode pixel data to frames and write it back without ever losing information.

- Native (uncompressed) data is written back in the same transfer syntax (big endian
  becomes Explicit VR Little Endian: pydicom no longer writes big endian).
- RLE Lossless and JPEG 2000 Lossless are re-encoded losslessly (pydicom's RLE encoder,
  pylibjpeg-openjpeg); any other compressed data (JPEG Lossless, JPEG-LS, and every lossy
  syntax) is written uncompressed in Explicit VR Little Endian. Lossy data is never
  re-encoded lossily: decoding once is the only loss, and Lossy Image Compression says so.
- YCbCr colour is decoded to RGB for reading. Where the source is lossless, YBR_FULL is kept
  as stored (``decode(ds, stored=True)``): the conversion to RGB rounds, and would lose
  information that the file did not lose. The Photometric Interpretation written is chosen from the
  transfer syntax written, never carried over from the input: RGB when uncompressed or RLE,
  YBR_RCT (the reversible colour transform, applied by the encoder) for JPEG 2000 Lossless.
  YBR_RCT is what PS3.5 8.2.4 and every IOD that constrains colour (US, VL, multi-frame true
  colour SC, WSI: "YBR_RCT for reversible JPEG 2000") expect; RGB in a JPEG 2000 stream is
  an Error for an ultrasound image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from pacsguard.deid.pixels import gdcm_fallback
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
# What pydicom hands back decoded: YCbCr (YBR_FULL, YBR_FULL_422) is converted to RGB, and
# the JPEG 2000 decoders undo YBR_ICT / YBR_RCT. Any other colour model (the retired
# YBR_PARTIAL_422, video's YBR_PARTIAL_420) would come back unconverted: refused, not guessed.
DECODED_PHOTOMETRIC = {
    "MONOCHROME1": "MONOCHROME1",
    "MONOCHROME2": "MONOCHROME2",
    "PALETTE COLOR": "PALETTE COLOR",
    "RGB": "RGB",
    "YBR_FULL": "RGB",
    "YBR_FULL_422": "RGB",
    "YBR_ICT": "RGB",
    "YBR_RCT": "RGB",
}
# Codestreams that end with an end marker (JPEG and JPEG-LS EOI, JPEG 2000 EOC: FFD9). Some
# decoders (libjpeg) fill a truncated stream in silently; a frame without it is refused.
END_MARKED = frozenset(
    UID(uid) for uid in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes)
)
END_MARKER = b"\xff\xd9"
# Standard terms (PS3.3 C.7.6.3.1.2, retired ones included) that a message may name.
OTHER_PHOTOMETRIC = frozenset({"YBR_PARTIAL_422", "YBR_PARTIAL_420", "HSV", "ARGB", "CMYK", "XYB"})

gdcm_fallback.register()


# Sources whose YBR_FULL samples reach us untouched by any codec colour transform (native,
# RLE, JPEG 2000 without MCT): they are kept as YBR_FULL when ``stored`` is asked for.
KEEPS_YBR_FULL = frozenset({*NATIVE, ExplicitVRBigEndian, RLELossless, JPEG2000Lossless})


@dataclass
class Frames:
    """All frames as one array: (frames, rows, columns[, samples]), stored values, in the
    colour model ``photometric``; ``readable(i)`` is frame ``i`` as OCR reads it (RGB)."""

    array: NDArray[np.generic]
    transfer_syntax: UID
    photometric: str

    @property
    def count(self) -> int:
        return int(self.array.shape[0])

    def readable(self, index: int) -> NDArray[np.generic]:
        frame: NDArray[np.generic] = self.array[index]
        if self.photometric == "YBR_FULL":
            return np.asarray(convert_color_space(frame, "YBR_FULL", "RGB"))
        return frame


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid) if uid else ImplicitVRLittleEndian


def decode(ds: Dataset, *, stored: bool = False) -> Frames:
    """Every frame of ``ds``, colour as RGB (or, with ``stored``, lossless YBR_FULL as it is
    stored); ``PixelCleaningError`` (a reason a person can act on) when it cannot be decoded."""
    if "PixelData" not in ds:
        raise PixelCleaningError("no Pixel Data to clean (float or absent pixel data)")
    tsyntax = transfer_syntax(ds)
    source = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    photometric = DECODED_PHOTOMETRIC.get(source)
    if photometric is None:
        raise PixelCleaningError(
            f"Photometric Interpretation {_named(source)} is not supported for pixel cleaning"
        )
    keep = stored and source == "YBR_FULL" and tsyntax in KEEPS_YBR_FULL
    if keep:
        photometric = source
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if tsyntax in END_MARKED:
        check_complete(ds, tsyntax, frames)
    try:
        array = np.asarray(pixel_array(ds, as_rgb=not keep))
    except Exception as exc:  # decoders raise many types; their messages may quote the file
        raise PixelCleaningError(undecodable(tsyntax, exc)) from None
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if frames == 1 and array.ndim == (3 if samples > 1 else 2):
        array = array[np.newaxis]
    return Frames(np.ascontiguousarray(array), tsyntax, photometric)


def check_complete(ds: Dataset, tsyntax: UID, frames: int) -> None:
    """Every frame's codestream is whole: it ends with its end marker (then only padding)."""
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)  # as pydicom does
    try:
        streams = list(
            generate_frames(ds.PixelData, number_of_frames=frames, extended_offsets=offsets)
        )
    except Exception:  # pydicom raises several types on a broken item structure
        streams = []
    if len(streams) != frames:
        raise PixelCleaningError(
            f"the {tsyntax.name} pixel data cannot be decoded: it does not hold the {frames} "
            "frame(s) its header announces; the image needs pixel cleaning, so it is quarantined"
        )
    for index, stream in enumerate(streams, start=1):
        if not _ends_with_marker(bytes(stream)):
            raise PixelCleaningError(
                f"frame {index} of the {tsyntax.name} pixel data cannot be decoded: it is "
                "truncated (no end-of-image marker); the image needs pixel cleaning, so it is "
                "quarantined"
            )


def _ends_with_marker(stream: bytes) -> bool:
    """FFD9, then at most padding (00, or FF fill bytes that some encoders add)."""
    end = stream.rfind(END_MARKER)
    return end >= 0 and not stream[end + 2 :].strip(b"\x00\xff")


def undecodable(tsyntax: UID, exc: Exception) -> str:
    """Why the pixels could not be decoded and what to do, in words (no value from the file)."""
    what = f"{tsyntax.name} ({tsyntax})" if tsyntax.is_transfer_syntax else "an unknown syntax"
    if not tsyntax.is_transfer_syntax or not tsyntax.is_compressed:
        tried = ""
    else:
        try:
            plugins = get_decoder(tsyntax).available_plugins
        except NotImplementedError:
            plugins = ()
        if not plugins:
            return (
                f"pixel data in {what} cannot be decoded: no decoder for it is installed; the "
                "image needs pixel cleaning, so it is quarantined (decompress it, e.g. with "
                "DCMTK or gdcmconv --raw, and run again)"
            )
        tried = f" by any installed decoder ({', '.join(plugins)})"
    return (
        f"pixel data in {what} cannot be decoded{tried}: the data is damaged or does not match "
        f"its header ({type(exc).__name__}); the image needs pixel cleaning, so it is "
        "quarantined (decompress it, e.g. with DCMTK or gdcmconv --raw, and run again)"
    )


def _named(photometric: str) -> str:
    """A Photometric Interpretation for a message: only a standard term, never file text."""
    return photometric if photometric in OTHER_PHOTOMETRIC else "(a non-standard value)"


def output_photometric(target: UID, frames: Frames) -> str:
    """The Photometric Interpretation for ``frames`` stored in ``target`` (PS3.5 8.2)."""
    if frames.photometric == "RGB" and target == JPEG2000Lossless:
        return "YBR_RCT"  # pydicom's encoder applies the reversible colour transform for it
    return frames.photometric


def _set_native(ds: Dataset, array: NDArray[np.generic], photometric: str) -> None:
    """``array`` (frames, rows, columns[, samples]) as native little endian Pixel Data, its
    samples interleaved; the image's other attributes (bits, rows, frames) are unchanged."""
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    del ds.PixelData  # a new element: the encapsulated one had an undefined length
    ds.add_new(0x7FE00010, "OW", data)
    ds.PhotometricInterpretation = photometric
    if int(getattr(ds, "SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0


def encode(ds: Dataset, frames: Frames) -> UID:
    """Store ``frames`` into ``ds`` losslessly; returns the transfer syntax now in force."""
    source = frames.transfer_syntax
    array = frames.array if frames.count > 1 else frames.array[0]
    bits_stored = int(getattr(ds, "BitsStored", 8 * array.dtype.itemsize))
    if source not in LOSSLESS and str(getattr(ds, "LossyImageCompression", "")) != "01":
        ds.LossyImageCompression = "01"
    if source == ExplicitVRBigEndian:  # pydicom sets pixel data in little endian syntaxes only
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if array.dtype.itemsize > 2:  # 32-bit samples: pydicom's set_pixel_data stops at 16
        _set_native(ds, array, frames.photometric)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        return ExplicitVRLittleEndian
    ds.set_pixel_data(array, frames.photometric, bits_stored, generate_instance_uid=False)
    target = source if source in NATIVE else ExplicitVRLittleEndian
    if source in REENCODE:
        try:
            ds.PhotometricInterpretation = output_photometric(source, frames)
            ds.compress(
                source, array, encoding_plugin=REENCODE[source], generate_instance_uid=False
            )
            target = source
        except Exception:  # no encoder for this data: stay uncompressed, still lossless
            ds.set_pixel_data(array, frames.photometric, bits_stored, generate_instance_uid=False)
    ds.file_meta.TransferSyntaxUID = target
    return target
