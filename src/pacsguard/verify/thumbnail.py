"""A small picture of a frame with the boxes of the text read in it, for the HTML report.

The boxes are filled, not outlined: the picture shows where the text is, never the text
itself (a report holds no identifying value unless asked).
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

MAX_SIDE = 320


def _to_uint8(frame: NDArray[np.generic]) -> NDArray[np.uint8]:
    data = np.asarray(frame, dtype=np.float64)
    low, high = np.percentile(data, (1, 99)) if data.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    return (np.clip((data - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def thumbnail(frame: NDArray[np.generic], boxes: list[tuple[int, int, int, int]]) -> bytes:
    """PNG bytes: ``frame`` windowed, at most ``MAX_SIDE`` pixels a side, each (x, y, w, h)
    box filled in red."""
    pixels = _to_uint8(frame)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")
    else:
        image = Image.fromarray(np.ascontiguousarray(pixels.reshape(pixels.shape[:2])), "L")
        image = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(image.width, image.height, 1))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        corners = (x * scale, y * scale, (x + w) * scale, (y + h) * scale)
        draw.rectangle(corners, fill=(220, 30, 30), outline=(255, 230, 0), width=1)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
