"""Clean Pixel Data: burned-in identifiers found by OCR (Tesseract), masks as data, redaction.

- ``needs_pixel_cleaning(ds)``: the header says the pixels may carry identity.
- ``clean_pixels(ds, masks=None)``: blanks what OCR and the mask rules find on every frame,
  keeps only the ultrasound regions where declared, re-encodes losslessly (or writes
  uncompressed), sets Burned In Annotation to NO. Raises ``PixelCleaningError`` when it cannot:
  the caller quarantines the file.

The names are loaded on first use: a run that meets no image at risk of burned-in text
(``risk``) never imports the codecs and the OCR (Pillow, and pydicom's pixel plugins, which
``codec`` sets up), and ``pacsguard deid`` reaches its first file sooner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pacsguard.deid.pixels.clean import PixelCleanResult, clean_pixels
    from pacsguard.deid.pixels.errors import PixelCleaningError
    from pacsguard.deid.pixels.masks import MaskRule, default_masks, load_masks
    from pacsguard.deid.pixels.risk import needs_pixel_cleaning, risk_reason

_WHERE = {
    "MaskRule": "masks",
    "PixelCleanResult": "clean",
    "PixelCleaningError": "errors",
    "clean_pixels": "clean",
    "default_masks": "masks",
    "load_masks": "masks",
    "needs_pixel_cleaning": "risk",
    "risk_reason": "risk",
}

__all__ = [
    "MaskRule",
    "PixelCleanResult",
    "PixelCleaningError",
    "clean_pixels",
    "default_masks",
    "load_masks",
    "needs_pixel_cleaning",
    "risk_reason",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value
