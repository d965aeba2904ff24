"""GDCM for the one class of images only it decodes here, and never inside our process.

One class needs GDCM: sequential 12-bit JPEG whose SOS header says Se = 0 instead of 63
(pydicom's own ``JPEG-lossy.dcm``; archives hold such files). libjpeg refuses them, and
pydicom's GDCM plugin refuses every 12-bit JPEG Extended stream, so without the plugin here
such an image cannot be cleaned. GDCM's IJG decoder gives the same samples as DCMTK's
``dcmdjpeg``.

GDCM aborts the whole process on some damaged JPEG streams (measured: bit-flipped copies of
pydicom's JPEG files, through pydicom's GDCM plugin and through this one). So:

- pydicom's own GDCM plugin is removed from every decoder (with python-gdcm installed,
  pydicom would try it *first* for JPEG, JPEG-LS and JPEG 2000): the decoders stay those
  pacsguard was built and tested with (pylibjpeg, Pillow);
- this plugin (pydicom's decoder-plugin protocol: ``DECODER_DEPENDENCIES``, ``is_available``,
  a frame function) runs after them, for unsigned greyscale 12-bit JPEG Extended only, and
  decodes each frame in a child process (``gdcm_child``) with a time limit: a crash or a hang
  is a refusal, the file goes to quarantine with its reason, and GDCM's messages stay there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from pydicom.pixels.decoders.base import DecodeRunner, get_decoder
from pydicom.pixels.decoders.gdcm import DECODER_DEPENDENCIES as GDCM_DEPENDENCIES
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import JPEGExtended12Bit

LABEL = "pacsguard-gdcm"
CHILD = Path(__file__).with_name("gdcm_child.py")  # run as a script: no package imports
CHILD_SECONDS = 60  # a 4k x 4k 12-bit frame decodes in well under a second
GDCM_SYNTAXES = tuple(GDCM_DEPENDENCIES)
HAVE_GDCM = importlib.util.find_spec("gdcm") is not None  # imported by the child only
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("python-gdcm>=3.2.6",)}
_registered = False


def is_available(uid: str) -> bool:
    return HAVE_GDCM and uid == JPEGExtended12Bit


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One frame's samples, little endian in 16 bits, as pydicom's plugins return them."""
    precision = int(_get_jpg_parameters(src).get("precision", 0))
    if precision != 12:
        raise ValueError(f"not a 12-bit JPEG stream (precision {precision})")
    if runner.samples_per_pixel != 1 or runner.pixel_representation != 0:
        # colour and signed samples are untested with GDCM here: refuse rather than guess
        raise ValueError("only unsigned greyscale 12-bit JPEG is decoded by this plugin")
    frame = decode_isolated(bytes(src), runner.rows, runner.columns)
    runner.set_option("bits_allocated", 16)
    return frame


def decode_isolated(stream: bytes, rows: int, columns: int) -> bytes:
    """``stream`` decoded by GDCM in a child process; ``ValueError`` on any failure."""
    command = [sys.executable, str(CHILD), str(rows), str(columns)]
    try:
        run = subprocess.run(command, input=stream, capture_output=True, timeout=CHILD_SECONDS)
    except subprocess.TimeoutExpired:
        raise ValueError(f"GDCM took over {CHILD_SECONDS} s on the JPEG stream") from None
    if run.returncode < 0:
        raise ValueError(f"GDCM crashed on the JPEG stream (signal {-run.returncode})")
    if run.returncode != 0 or len(run.stdout) != rows * columns * 2:
        raise ValueError("GDCM could not decode the JPEG stream")
    return run.stdout


def register() -> None:
    """Remove pydicom's in-process GDCM plugin everywhere; add this one (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    for uid in GDCM_SYNTAXES:
        with contextlib.suppress(ValueError):  # not there: nothing to remove
            get_decoder(uid).remove_plugin("gdcm")
    with contextlib.suppress(ValueError):  # known already, as unavailable (no GDCM)
        get_decoder(JPEGExtended12Bit).add_plugin(LABEL, (__name__, "_decode_frame"))
