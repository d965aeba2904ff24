"""Text left in the pixels of instances at risk, read by the same OCR as Clean Pixel Data.

Cleaning blanks every detection (any confidence); the verifier reports what OCR reads with
some confidence and at least three letters or digits, so a blanked output passes while a
readable name, date or number does not. Overlay planes (60xx,3000) are read as images too.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from pacsguard.core.errors import PacsguardError
from pacsguard.core.shapes import find_identifiers
from pacsguard.deid.pixels import codec, ocr
from pacsguard.deid.pixels.clean import frames_to_read
from pacsguard.verify.findings import IDENTIFIER, REVIEW, Finding
from pacsguard.verify.known import KnownValues, fold_compact
from pacsguard.verify.matching import known_in_text
from pacsguard.verify.policy import Policy
from pacsguard.verify.risk import at_risk, overlay_groups
from pacsguard.verify.thumbnail import thumbnail

__all__ = ["at_risk", "check_pixels", "overlay_groups"]

VERIFY_MIN_CONF = 60.0
MIN_ALNUM = 3


def overlay_plane(ds: Dataset, group: int) -> NDArray[np.uint8] | None:
    try:
        rows = int(ds[group << 16 | 0x0010].value)
        cols = int(ds[group << 16 | 0x0011].value)
        data = ds[group << 16 | 0x3000].value
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(data, bytes) or rows * cols == 0 or len(data) * 8 < rows * cols:
        return None
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return (bits[: rows * cols].reshape(rows, cols) * 255).astype(np.uint8)


# Kinds of text that make burned-in text an identifier; the rest (a laterality marker, a
# scale, a date: never shifted in pixels, but only a date) is for review.
IDENTIFYING_SHAPES = frozenset(
    {"person-name", "patient-id", "nir", "ins", "phone", "email", "street-address"}
    | {"postcode-town"}
)


# OCR drops the spaces between words: "DUPONTJean", "tel0612345678"; put them back at the
# changes of case and between letters and digits before the shapes are looked for.
_GLUED = (
    (re.compile(r"([A-Z]{2,})([A-Z][a-z])"), r"\1 \2"),
    (re.compile(r"([a-z])([A-Z])"), r"\1 \2"),
    (re.compile(r"([A-Za-z])(\d)"), r"\1 \2"),
)


def unglued(text: str) -> str:
    for pattern, spaced in _GLUED:
        text = pattern.sub(spaced, text)
    return text


def _describe(text: str, known: KnownValues | None, policy: Policy) -> str:
    spaced = unglued(text)
    kinds = known_in_text(text, known, policy) if known is not None else []
    if known is not None and spaced != text:
        kinds += known_in_text(spaced, known, policy)
    if known is not None and not kinds:  # OCR often drops spaces: "DUPONTJEAN"
        compact = fold_compact(text)
        if any(len(p) >= 4 and p in compact for p in known.name_parts):
            kinds.append("name-part")
    kinds += sorted({hit.kind for t in {text, spaced} for hit in find_identifiers(t)})
    return ", ".join(dict.fromkeys(kinds)) or "text"


def _burned(location: str, word: ocr.OcrBox, known: KnownValues | None, policy: Policy) -> Finding:
    detail = _describe(word.text, known, policy)
    kinds = set(detail.split(", "))
    from_known = known is not None and bool(kinds - IDENTIFYING_SHAPES - {"text", "date-in-text"})
    if from_known or kinds & IDENTIFYING_SHAPES:
        klass, reason = IDENTIFIER, f"OCR reads text of an identifier's kind ({detail})"
    else:
        klass, reason = REVIEW, f"OCR reads text ({detail}), no identifier's shape in it"
    return Finding("", location, "burned-in-text", detail, word.text, klass, reason)


def _read(image: NDArray[np.generic]) -> list[ocr.OcrBox]:
    words = ocr.find_text(image, min_conf=VERIFY_MIN_CONF)
    return [w for w in words if w.alnum >= MIN_ALNUM]


def check_pixels(
    ds: Dataset,
    known: KnownValues | None,
    policy: Policy,
    prefix: str = "",
    thumbnails: dict[int, bytes] | None = None,
) -> list[Finding]:
    """Findings for text read in the pixels (and overlays) of ``ds``; fail closed on errors.

    ``thumbnails``, when given, receives a picture of each frame where text was read."""
    findings: list[Finding] = []
    if "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        try:
            array = codec.decode(ds).array
            for index in frames_to_read(array):
                words = _read(array[index])
                for word in words:
                    where = f"{prefix}pixels frame {index} box {word.box}"
                    findings.append(_burned(where, word, known, policy))
                if words and thumbnails is not None:
                    boxes = [(w.x, w.y, w.w, w.h) for w in words]
                    thumbnails[index] = thumbnail(array[index], boxes)
        except PacsguardError as exc:
            findings.append(Finding("", f"{prefix}pixels", "unreadable", str(exc)))
    elif "Rows" in ds and "Columns" in ds:  # a header read without its pixels: not proven clean
        findings.append(Finding("", f"{prefix}pixels", "unreadable", "pixel data not loaded"))
    for group in overlay_groups(ds):
        plane = overlay_plane(ds, group)
        location = f"{prefix}overlay ({group:04X},3000)"
        if plane is None:
            findings.append(Finding("", location, "unreadable", "malformed overlay plane"))
            continue
        try:
            words = _read(plane)
        except PacsguardError as exc:
            findings.append(Finding("", location, "unreadable", str(exc)))
            continue
        for word in words:
            findings.append(_burned(f"{location} box {word.box}", word, known, policy))
    return findings
