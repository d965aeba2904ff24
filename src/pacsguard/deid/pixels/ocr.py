"""Find text in one image: RapidOCR by default, Tesseract on request or as the fallback.

The engine was chosen by measuring detection recall (bench/ocr_recall.py): both read every
burned-in string of the sample corpus, but on small, coloured or grey text drawn over
speckle RapidOCR found 88% of the strings and Tesseract 42%, in a tenth of the time per image.
``PACSGUARD_OCR_ENGINE=tesseract`` selects Tesseract (Debian's tesseract-ocr, eng + fra).
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
from numpy.typing import NDArray

from pacsguard.deid.pixels import ocr_rapid, ocr_tesseract
from pacsguard.deid.pixels.ocr_types import OcrBox, to_gray8, to_rgb8

__all__ = ["OcrBox", "engine_name", "engine_version", "find_text", "to_gray8", "to_rgb8"]


@cache
def engine_name() -> str:
    """``rapidocr`` or ``tesseract``: the environment's choice, else RapidOCR when importable."""
    wanted = os.environ.get("PACSGUARD_OCR_ENGINE", "").strip().lower()
    if wanted in ("rapidocr", "tesseract"):
        return wanted
    return "rapidocr" if ocr_rapid.available() else "tesseract"


@cache
def engine_version() -> str:
    if engine_name() == "rapidocr":
        return ocr_rapid.engine_version()
    return ocr_tesseract.engine_version()


def find_text(image: NDArray[np.generic], *, min_conf: float = 0.0) -> list[OcrBox]:
    """Text found in ``image`` (rows x columns, or rows x columns x 3), in its pixel coordinates.

    ``min_conf`` (0-100) drops readings the engine is less sure of; 0 keeps every detection.
    """
    if engine_name() == "rapidocr":
        return ocr_rapid.find_text(image, min_conf=min_conf)
    return ocr_tesseract.find_text(image, min_conf=min_conf)
