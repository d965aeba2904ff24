"""Child process of ``gdcm_fallback``: one 12-bit greyscale JPEG frame on stdin, its samples
(16-bit little endian) on stdout: ``python gdcm_child.py ROWS COLUMNS``.

Run apart because GDCM may abort the process on a damaged stream; exits 1 when it cannot
decode. Run as a script, it imports nothing of pacsguard: a child starts fast.
"""

from __future__ import annotations

import sys
from typing import Any

import gdcm

JPEG_EXTENDED_12 = "1.2.840.10008.1.2.4.51"


def decode(stream: bytes, rows: int, columns: int) -> bytes:
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(stream)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image: Any = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((columns, rows, 1))
    image.SetDataElement(element)
    kind = gdcm.PhotometricInterpretation.GetPIType("MONOCHROME2")
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(kind))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(JPEG_EXTENDED_12)))
    # Bits Allocated 12 makes GDCM pick its 12-bit IJG decoder at once (with 16 it first tries
    # the 16-bit one, which fails); the samples still come back in 16 bits.
    image.SetPixelFormat(gdcm.PixelFormat(1, 12, 12, 11, 0))
    buffer = image.GetBuffer()  # a str (bytes smuggled as surrogates), None on failure
    return buffer.encode("utf-8", "surrogateescape") if buffer is not None else b""


def main() -> int:
    rows, columns = int(sys.argv[1]), int(sys.argv[2])
    samples = decode(sys.stdin.buffer.read(), rows, columns)
    if len(samples) != rows * columns * 2:
        return 1
    sys.stdout.buffer.write(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
