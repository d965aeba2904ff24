"""GDCM as the decoder of last resort, and a pydicom plugin for 12-bit JPEG Extended.

pydicom tries GDCM first for the JPEG, JPEG-LS and JPEG 2000 syntaxes whenever python-gdcm
is installed. pacsguard keeps the order it was built and tested with (pylibjpeg, then
Pillow) and moves GDCM last: it then only decodes what the others refuse (pydicom's GDCM
plugin also has known gaps: JPEG-LS of 6 or 7 bits, and it returns nothing on a failure).

One class needs GDCM: sequential 12-bit JPEG whose SOS header says Se = 0 instead of 63
(pydicom's own ``JPEG-lossy.dcm``; archives hold such files). libjpeg refuses them, and
pydicom's GDCM plugin refuses every 12-bit JPEG Extended stream, so without the plugin here
such an image cannot be cleaned. It follows pydicom's decoder-plugin protocol
(``DECODER_DEPENDENCIES``, ``is_available``, a frame function) and decodes unsigned greyscale
12-bit frames with GDCM's IJG decoder: the same samples as DCMTK's ``dcmdjpeg``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pydicom.pixels.decoders.base import DecodeRunner, get_decoder
from pydicom.pixels.decoders.gdcm import DECODER_DEPENDENCIES as GDCM_DEPENDENCIES
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import JPEGExtended12Bit

try:
    import gdcm

    HAVE_GDCM = True
except ImportError:  # an optional decoder: pixel cleaning then quarantines these files
    HAVE_GDCM = False

LABEL = "pacsguard-gdcm"
GDCM_SYNTAXES = tuple(GDCM_DEPENDENCIES)
_registered = False
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}


def is_available(uid: str) -> bool:
    return HAVE_GDCM and uid == JPEGExtended12Bit


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One frame's samples, as pydicom's GDCM plugin returns them (little endian)."""
    precision = int(_get_jpg_parameters(src).get("precision", 0))
    if precision != 12:
        raise ValueError(f"not a 12-bit JPEG stream (precision {precision})")
    if runner.samples_per_pixel != 1 or runner.pixel_representation != 0:
        # colour and signed samples are untested with GDCM here: refuse rather than guess
        raise ValueError("only unsigned greyscale 12-bit JPEG is decoded by this plugin")
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image: Any = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    kind = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(kind))
    syntax = gdcm.TransferSyntax.GetTSType(str(JPEGExtended12Bit))
    image.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    # Bits Allocated 12 makes GDCM pick its 12-bit IJG decoder at once; with 16 it first
    # tries the 16-bit one, which fails with a message on stderr. Samples come back in 16 bits.
    image.SetPixelFormat(gdcm.PixelFormat(1, 12, precision, precision - 1, 0))
    buffer = image.GetBuffer()  # a str (bytes smuggled as surrogates), None on failure
    frame: bytes = buffer.encode("utf-8", "surrogateescape") if buffer is not None else b""
    if len(frame) != runner.rows * runner.columns * 2:
        raise ValueError("GDCM could not decode the JPEG stream")
    runner.set_option("bits_allocated", 16)
    return frame


def register() -> None:
    """GDCM after pydicom's other plugins for every syntax, then the 12-bit plugin (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    for uid in GDCM_SYNTAXES:
        decoder = get_decoder(uid)
        if "gdcm" in decoder.available_plugins:
            decoder.remove_plugin("gdcm")
            decoder.add_plugin("gdcm", ("pydicom.pixels.decoders.gdcm", "_decode_frame"))
    decoder = get_decoder(JPEGExtended12Bit)
    with contextlib.suppress(ValueError):  # known already, as unavailable (no GDCM)
        decoder.add_plugin(LABEL, (__name__, "_decode_frame"))
