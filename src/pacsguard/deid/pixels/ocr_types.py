"""What every OCR engine returns, and the single-channel rendering they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class OcrBox:
    """Text found by OCR: its box (x, y, width, height) in image pixels and a 0-100 confidence.

    The recognised text stays here (never logged); the verifier reports it only on request.
    """

    x: int
    y: int
    w: int
    h: int
    conf: float
    text: str = field(repr=False, compare=False)

    @property
    def alnum(self) -> int:
        return sum(c.isalnum() for c in self.text)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1 and y1 exclusive."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)


def to_gray8(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    """One 8-bit channel: the brightest colour channel, stretched over 0..255."""
    data = np.asarray(image)
    if data.ndim == 3:
        data = data.max(axis=2)
    data = data.astype(np.float32)
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return np.zeros(data.shape, dtype=np.uint8)
    return ((data - low) * (255.0 / (high - low))).astype(np.uint8)


def to_rgb8(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    """Three 8-bit channels: colour images of 8 bits as they are, anything else stretched."""
    data = np.asarray(image)
    if data.ndim == 3 and data.shape[2] == 3 and data.dtype == np.uint8:
        return np.ascontiguousarray(data)
    gray = to_gray8(data)
    return np.ascontiguousarray(np.stack([gray, gray, gray], axis=-1))
