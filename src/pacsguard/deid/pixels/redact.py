"""Boxes in pixel coordinates, and filling them with the image's background value."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

# (x0, y0, x1, y1): columns x0..x1-1, rows y0..y1-1 (x1, y1 exclusive), as in the answer key.
Box = tuple[int, int, int, int]
PAD = 4  # pixels added around each OCR box: anti-aliased edges, accents, descenders


def clip(box: Box, rows: int, cols: int) -> Box | None:
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(cols, box[2]), min(rows, box[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def pad(box: Box, margin: int, rows: int, cols: int) -> Box | None:
    x0, y0, x1, y1 = box
    return clip((x0 - margin, y0 - margin, x1 + margin, y1 + margin), rows, cols)


def merge(boxes: Iterable[Box]) -> list[Box]:
    """Overlapping or touching boxes joined into their bounding boxes (fewer, simpler fills)."""
    pending = sorted(set(boxes))
    merged: list[Box] = []
    while pending:
        current = pending.pop(0)
        changed = True
        while changed:
            changed = False
            for other in list(pending):
                if _touch(current, other):
                    current = _union(current, other)
                    pending.remove(other)
                    changed = True
        merged.append(current)
    return merged


def _touch(a: Box, b: Box) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def background(frame: NDArray[np.generic]) -> NDArray[np.generic]:
    """The most common value (or colour) on the frame's border: what a device paints behind."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]], axis=0).reshape(
        -1, *frame.shape[2:]
    )
    values, counts = np.unique(border, axis=0, return_counts=True)
    return np.asarray(values[int(np.argmax(counts))])


def fill(frame: NDArray[np.generic], boxes: Iterable[Box], value: NDArray[np.generic]) -> None:
    """Paint every box of ``frame`` (in place) with ``value``."""
    for x0, y0, x1, y1 in boxes:
        frame[y0:y1, x0:x1] = value


def outside(frame: NDArray[np.generic], keep: Iterable[Box], value: NDArray[np.generic]) -> None:
    """Paint everything outside the ``keep`` boxes (in place) with ``value``."""
    mask = np.ones(frame.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in keep:
        mask[y0:y1, x0:x1] = False
    frame[mask] = value
