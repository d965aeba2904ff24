"""The RapidOCR engine (PP-OCRv4 detection and recognition on ONNX Runtime).

Its models ship inside the ``rapidocr-onnxruntime`` wheel: nothing is downloaded at run
time. Loaded once per process (about a second), on one thread by default so that worker
processes share the cores fairly (``PACSGUARD_OCR_THREADS`` changes it).
"""

from __future__ import annotations

import os
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pacsguard.deid.pixels.errors import PixelCleaningError
from pacsguard.deid.pixels.ocr_types import OcrBox, to_rgb8


def available() -> bool:
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def engine_version() -> str:
    try:
        return f"rapidocr-onnxruntime {metadata.version('rapidocr-onnxruntime')}"
    except metadata.PackageNotFoundError:
        return "rapidocr-onnxruntime"


@cache
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise PixelCleaningError("OCR engine not available: install rapidocr-onnxruntime") from None
    threads = int(os.environ.get("PACSGUARD_OCR_THREADS", "1"))
    # OpenCV's own thread pool (one thread a core, started on first use) would outlive a
    # fork only as locks without threads: a pool worker forked after the parent read a
    # file with OCR hung in cv2.resize. One thread keeps workers fair and forks safe.
    import cv2

    cv2.setNumThreads(1)
    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, print_verbose=False)


def find_text(image: NDArray[np.generic], *, min_conf: float = 0.0) -> list[OcrBox]:
    """Text lines found in ``image`` with their recognition confidence (0-100)."""
    rgb = to_rgb8(image)
    try:
        result, _ = _engine()(rgb, use_cls=False, text_score=min_conf / 100.0)
    except PixelCleaningError:
        raise
    except Exception as exc:  # an engine failure must never pass for "no text"
        raise PixelCleaningError(f"OCR failed ({exc.__class__.__name__})") from None
    boxes: list[OcrBox] = []
    for quad, text, score in result or []:
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        x0, y0 = int(np.floor(min(xs))), int(np.floor(min(ys)))
        x1, y1 = int(np.ceil(max(xs))) + 1, int(np.ceil(max(ys))) + 1
        boxes.append(OcrBox(x0, y0, x1 - x0, y1 - y0, float(score) * 100.0, str(text)))
    return boxes
