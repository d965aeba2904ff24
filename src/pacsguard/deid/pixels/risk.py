"""Which instances may carry identifiers burned into their pixels (decided from the header).

Only these pay for OCR. An instance is at risk when it says so (Burned In Annotation YES),
when its modality or SOP class is one whose devices print identity on the image
(ultrasound, secondary and screen captures, angiography, fluoroscopy, endoscopy, photos),
when it is a projection radiograph that does not declare itself free of annotations, or
when it looks like a document or a screen save.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

RISKY_MODALITIES = frozenset({"US", "IVUS", "SC", "XA", "RF", "ES", "XC", "OT", "GM", "DOC", "SM"})
ANNOTATED_MODALITIES = frozenset({"DX", "CR", "MG", "PX", "IO"})  # at risk unless annotation NO
RISKY_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
        "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image
        "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.1.1",  # Video Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4.1",  # Video Photographic Image
    }
)
DOCUMENT_IMAGE_TYPES = ("SCREEN SAVE", "SCREENSHOT", "DOSE", "REPORT", "DOCUMENT")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or (
        hasattr(value, "__iter__") and not isinstance(value, str)
    ):
        return "\\".join(str(v) for v in value).strip().upper()
    return str(value).strip().upper()


def has_pixels(ds: Dataset) -> bool:
    """Pixel data present, or announced by Rows and Columns (a header read without pixels)."""
    return any(keyword in ds for keyword in PIXEL_KEYWORDS) or ("Rows" in ds and "Columns" in ds)


def risk_reason(ds: Dataset) -> str | None:
    """Why ``ds`` needs pixel cleaning (a short phrase, no PHI), or None."""
    if not has_pixels(ds):
        return None
    burned = _text(ds, "BurnedInAnnotation")
    if burned == "YES":
        return "Burned In Annotation is YES"
    modality = _text(ds, "Modality")
    if modality in RISKY_MODALITIES:
        return f"modality {modality}"
    if str(ds.get("SOPClassUID", "")) in RISKY_SOP_CLASSES:
        return "SOP class at risk"
    if modality in ANNOTATED_MODALITIES and burned != "NO":
        return f"modality {modality} without Burned In Annotation NO"
    if "ConversionType" in ds:
        return "converted or scanned image"
    image_type = _text(ds, "ImageType")
    if any(word in image_type for word in DOCUMENT_IMAGE_TYPES):
        return "document-like image type"
    return None


def needs_pixel_cleaning(ds: Dataset) -> bool:
    """Whether ``ds`` may carry burned-in identifiers and must go through ``clean_pixels``."""
    return risk_reason(ds) is not None
