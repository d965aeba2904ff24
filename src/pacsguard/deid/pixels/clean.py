"""Clean Pixel Data: find burned-in text by OCR, blank it (and masked regions) on every frame."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from pacsguard.deid.pixels import codec, ocr
from pacsguard.deid.pixels.masks import MaskRule, default_masks, mask_boxes, ultrasound_regions
from pacsguard.deid.pixels.redact import PAD, Box, background, fill, merge, outside, pad

MAX_OCR_FRAMES = 8  # frames read by OCR in a long cine; their boxes are blanked on every frame
OCR_PASSES = 1  # a second read found only speckle on our sets; deid --verify reads again
CLEAN_MIN_CONF = 20.0  # low: blanking a false positive costs little, missing a name costs all


@dataclass
class PixelCleanResult:
    """What ``clean_pixels`` did. ``boxes`` maps frame index to the boxes blanked in it."""

    engine: str
    frames: int
    boxes: dict[int, list[Box]] = field(default_factory=dict)
    words_found: int = 0
    mask_rules: list[str] = field(default_factory=list)
    ultrasound_regions_kept: int = 0
    transfer_syntax: str = ""
    transfer_syntax_changed: bool = False
    # The lead's engine adds CID 7050 "Clean Pixel Data Option" (113101) when this is True.
    clean_pixel_data_applied: bool = True

    @property
    def redacted(self) -> bool:
        return any(self.boxes.values()) or self.ultrasound_regions_kept > 0


def frames_to_read(array: NDArray[np.generic], limit: int = MAX_OCR_FRAMES) -> list[int]:
    """Distinct frames to OCR: all when few, else ``limit`` spread over the cine."""
    count = int(array.shape[0])
    picks = range(count) if count <= limit else np.linspace(0, count - 1, limit).round().astype(int)
    seen: set[bytes] = set()
    out: list[int] = []
    for index in picks:
        digest = hashlib.blake2b(array[int(index)].tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            out.append(int(index))
    return out


def _ocr_boxes(frames: codec.Frames, index: int, rows: int, cols: int) -> tuple[list[Box], int]:
    words = ocr.find_text(frames.readable(index), min_conf=CLEAN_MIN_CONF)
    boxes = [pad((w.x, w.y, w.x + w.w, w.y + w.h), PAD, rows, cols) for w in words]
    return [b for b in boxes if b is not None], len(words)


def clean_pixels(ds: Dataset, *, masks: tuple[MaskRule, ...] | None = None) -> PixelCleanResult:
    """Blank burned-in text (OCR), mask-rule regions and, for ultrasound, everything outside
    the Sequence of Ultrasound Regions, on every frame; re-encode losslessly; set Burned In
    Annotation to NO. Raises ``PixelCleaningError`` when the pixels cannot be cleaned."""
    frames = codec.decode(ds, stored=True)  # blanked in the stored colour model: no loss
    array = frames.array
    rows, cols = int(array.shape[1]), int(array.shape[2])
    rules = default_masks() if masks is None else masks
    fixed = merge(mask_boxes(ds, rules, rows, cols))
    keep = ultrasound_regions(ds, rows, cols)
    grounds = [background(array[i]) for i in range(frames.count)]

    def blank(index: int, boxes: list[Box]) -> None:
        fill(array[index], boxes, grounds[index])
        if keep:
            outside(array[index], keep, grounds[index])

    for index in range(frames.count):
        blank(index, fixed)
    found: list[Box] = []
    words = 0
    to_read = frames_to_read(array)
    for _ in range(OCR_PASSES):
        new: list[Box] = []
        for index in to_read:
            boxes, count = _ocr_boxes(frames, index, rows, cols)
            new += boxes
            words += count
        if not new:
            break
        found = merge([*found, *new])
        for index in range(frames.count):
            blank(index, found)
    all_boxes = merge([*fixed, *found])
    result = PixelCleanResult(
        engine=ocr.engine_version(),
        frames=frames.count,
        boxes={i: list(all_boxes) for i in range(frames.count)} if all_boxes else {},
        words_found=words,
        mask_rules=[rule.name for rule in rules if rule.matches(ds)],
        ultrasound_regions_kept=len(keep),
    )
    target = codec.encode(ds, frames)
    result.transfer_syntax = str(target)
    result.transfer_syntax_changed = target != frames.transfer_syntax
    ds.BurnedInAnnotation = "NO"
    return result
