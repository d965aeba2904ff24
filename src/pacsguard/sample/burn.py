"""Text burned into pixels, as devices and screen captures do."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
)

Box = tuple[int, int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=8)
def font(size: int) -> Font:
    for candidate in FONT_CANDIDATES:
        if candidate.is_file():
            return ImageFont.truetype(str(candidate), size)
    return ImageFont.load_default(size=size)


def draw_lines(
    image: Image.Image,
    lines: list[tuple[str, tuple[int, int]]],
    size: int,
    fill: int | tuple[int, ...],
) -> list[Box]:
    """Draw each text at its (x, y) and return its tight box (x0, y0, x1, y1), x1/y1 exclusive."""
    draw = ImageDraw.Draw(image)
    face = font(size)
    boxes: list[Box] = []
    for text, origin in lines:
        draw.text(origin, text, font=face, fill=fill)
        x0, y0, x1, y1 = draw.textbbox(origin, text, font=face)
        boxes.append(
            (
                max(0, int(x0)),
                max(0, int(y0)),
                min(image.width, int(x1) + 1),
                min(image.height, int(y1) + 1),
            )
        )
    return boxes


def overlay_bits(rows: int, cols: int, text: str, size: int) -> tuple[bytes, Box]:
    """An overlay plane (1 bit per pixel, packed little-endian as DICOM wants) with text drawn."""
    plane = Image.new("L", (cols, rows), 0)
    (box,) = draw_lines(plane, [(text, (2, 2))], size, 255)
    bits: NDArray[np.uint8] = (np.asarray(plane) > 127).astype(np.uint8).ravel()
    packed = np.packbits(bits, bitorder="little").tobytes()
    if len(packed) % 2:
        packed += b"\x00"
    return packed, box
