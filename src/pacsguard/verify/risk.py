"""Which instances the verifier reads the pixels of: those Clean Pixel Data is for, and overlays.

Decided from the header alone (``deid.pixels.risk``), so that the OCR stack is imported only
when some instance needs it.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from pacsguard.deid.pixels.risk import PIXEL_KEYWORDS, needs_pixel_cleaning

OVERLAY_DATA = tuple(g << 16 | 0x3000 for g in range(0x6000, 0x6020, 2))
# The top-level attributes the decision reads (tests/test_verify_speed.py holds
# ``needs_pixel_cleaning`` to them): a header read as bytes gives the decision these only.
RISK_KEYWORDS = (
    "BurnedInAnnotation",
    "Modality",
    "SOPClassUID",
    "ConversionType",
    "ImageType",
    "Rows",
    "Columns",
    *PIXEL_KEYWORDS,
)
RISK_TAGS = frozenset(
    {int(t) for k in RISK_KEYWORDS if (t := tag_for_keyword(k)) is not None} | set(OVERLAY_DATA)
)


def at_risk(ds: Dataset) -> bool:
    """Instances whose pixels the verifier reads: those Clean Pixel Data is for, and overlays."""
    return needs_pixel_cleaning(ds) or bool(overlay_groups(ds))


def overlay_groups(ds: Dataset) -> list[int]:
    return [t >> 16 for t in OVERLAY_DATA if t in ds]
