"""The Tesseract engine (Debian's tesseract-ocr, eng + fra), called through ``subprocess``.

Kept as the alternative engine (``PACSGUARD_OCR_ENGINE=tesseract``) and as the fallback
when RapidOCR cannot be imported. It reads documents well but misses much text drawn over
speckle (see bench/ocr_recall.py), so it is not the default. The image is binarised around
its brightest level into dark text on white and upscaled, which is what Tesseract reads best.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from functools import cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pacsguard.deid.pixels.errors import PixelCleaningError
from pacsguard.deid.pixels.ocr_types import OcrBox, to_gray8

LANGUAGES = "eng+fra"
TIMEOUT_S = 120


@cache
def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def engine_version() -> str:
    path = tesseract_path()
    if path is None:
        return "unavailable"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].strip() if first else "tesseract"


def bright_text_mask(gray: NDArray[np.uint8], level: float = 0.8) -> NDArray[np.uint8]:
    """Dark text on white: pixels at or above ``level`` of the brightest become black."""
    threshold = int(255 * level)
    return np.where(gray >= threshold, 0, 255).astype(np.uint8)


def variants(image: NDArray[np.generic]) -> list[NDArray[np.uint8]]:
    """The renderings OCR reads: bright text isolated, and dark text on a light ground."""
    gray = to_gray8(image)
    out = [bright_text_mask(gray)]
    if float(np.median(gray)) > 127:  # a light page (scanned document): dark text as is
        out.append(np.where(gray < 110, 0, 255).astype(np.uint8))
    return out


def upscale_factor(shape: tuple[int, ...]) -> int:
    longest = max(shape[:2])
    if longest <= 640:
        return 3
    if longest <= 1400:
        return 2
    return 1


def _png(gray: NDArray[np.uint8], factor: int) -> bytes:
    picture = Image.fromarray(gray, "L")
    if factor > 1:
        picture = picture.resize(
            (picture.width * factor, picture.height * factor), Image.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def run_tesseract(png: bytes, *, psm: int = 11) -> str:
    path = tesseract_path()
    if path is None:
        raise PixelCleaningError("OCR engine not available: install tesseract-ocr (eng, fra)")
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    cmd = [path, "stdin", "stdout", "-l", LANGUAGES, "--psm", str(psm), "tsv"]
    try:
        done = subprocess.run(
            cmd, input=png, capture_output=True, env=env, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise PixelCleaningError("OCR timed out") from None
    if done.returncode != 0:
        raise PixelCleaningError(f"OCR failed (tesseract exit code {done.returncode})")
    return done.stdout.decode("utf-8", errors="replace")


def parse_tsv(tsv: str, factor: int) -> list[OcrBox]:
    boxes: list[OcrBox] = []
    for line in tsv.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        left, top, width, height = (int(v) for v in cols[6:10])
        boxes.append(
            OcrBox(
                left // factor,
                top // factor,
                -(-width // factor),
                -(-height // factor),
                float(cols[10]),
                cols[11].strip(),
            )
        )
    return boxes


def find_text(
    image: NDArray[np.generic], *, min_conf: float = 30.0, min_alnum: int = 2
) -> list[OcrBox]:
    """Words found in ``image`` (2-D, or rows x columns x samples), in its pixel coordinates."""
    factor = upscale_factor(image.shape)
    found: list[OcrBox] = []
    for rendering in variants(image):
        if not (rendering == 0).any():
            continue  # nothing dark to read
        for box in parse_tsv(run_tesseract(_png(rendering, factor)), factor):
            if box.conf >= min_conf and box.alnum >= 1:
                found.append(box)
    return found
