"""Clean Pixel Data: burned-in identifiers found by OCR (Tesseract), masks as data, redaction.

- ``needs_pixel_cleaning(ds)``: the header says the pixels may carry identity.
- ``clean_pixels(ds, masks=None)``: blanks what OCR and the mask rules find on every frame,
  keeps only the ultrasound regions where declared, re-encodes losslessly (or writes
  uncompressed), sets Burned In Annotation to NO. Raises ``PixelCleaningError`` when it cannot:
  the caller quarantines the file.
"""

from pacsguard.deid.pixels.clean import PixelCleanResult, clean_pixels
from pacsguard.deid.pixels.errors import PixelCleaningError
from pacsguard.deid.pixels.masks import MaskRule, default_masks, load_masks
from pacsguard.deid.pixels.risk import needs_pixel_cleaning, risk_reason

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
