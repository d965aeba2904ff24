"""Helpers of the pixel and verify tests: small DICOM images with text burned in by PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
Box = tuple[int, int, int, int]
LINES = ("DUPONT JEAN", "12/03/1956")


def burn(
    image: Image.Image, lines: tuple[str, ...], fill: int | tuple[int, ...], size: int = 18
) -> list[Box]:
    """Draw ``lines`` top-left; returns their tight boxes (x1, y1 exclusive)."""
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(FONT, size) if Path(FONT).is_file() else ImageFont.load_default(size)
    boxes = []
    for i, text in enumerate(lines):
        origin = (10, 8 + i * (size + 12))
        draw.text(origin, text, font=face, fill=fill)
        x0, y0, x1, y1 = draw.textbbox(origin, text, font=face)
        boxes.append((int(x0), int(y0), int(x1) + 1, int(y1) + 1))
    return boxes


def backdrop(rows: int, cols: int, seed: int = 0) -> NDArray[np.uint8]:
    """A dark field with a noisy disc in the lower right: anatomy that OCR must leave alone."""
    gen = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    disc = (yy - rows * 0.65) ** 2 + (xx - cols * 0.65) ** 2 < (rows * 0.25) ** 2
    noise = gen.gamma(2.0, 25.0, size=(rows, cols))
    return np.where(disc, np.clip(noise, 0, 180), 0).astype(np.uint8)


def base(sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientID = "PGABCDEFGHIJKLMNOP"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.BurnedInAnnotation = "YES"
    return ds


def grey_image(rows: int = 160, cols: int = 256, bits: int = 8) -> tuple[Dataset, list[Box]]:
    """MONOCHROME2 secondary capture, 8 or 12 bits stored, text at the maximum value."""
    image = Image.fromarray(backdrop(rows, cols), "L")
    boxes = burn(image, LINES, 255)
    ds = base(SecondaryCaptureImageStorage, "OT")
    array = np.asarray(image)
    if bits > 8:
        array = array.astype(np.uint16) * 16
    ds.set_pixel_data(array, "MONOCHROME2", bits, generate_instance_uid=False)
    return ds, boxes


def rgb_image(rows: int = 160, cols: int = 256) -> tuple[Dataset, list[Box]]:
    grey = backdrop(rows, cols, seed=1)
    image = Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    boxes = burn(image, LINES, (255, 255, 0))
    ds = base(UltrasoundImageStorage, "US")
    ds.set_pixel_data(np.asarray(image), "RGB", 8, generate_instance_uid=False)
    return ds, boxes


def multiframe(frames: int = 3, rows: int = 160, cols: int = 256) -> tuple[Dataset, list[Box]]:
    """Greyscale cine whose text moves by 2 pixels a frame; boxes of every frame."""
    arrays, boxes = [], []
    for f in range(frames):
        image = Image.fromarray(backdrop(rows, cols, seed=10 + f), "L")
        draw_at = Image.new("L", (cols, rows))
        for box in burn(draw_at, LINES, 255):
            boxes.append((box[0] + 2 * f, box[1] + 2 * f, box[2] + 2 * f, box[3] + 2 * f))
        shifted = np.roll(np.asarray(draw_at), (2 * f, 2 * f), axis=(0, 1))
        arrays.append(np.maximum(np.asarray(image), shifted))
    ds = base(UltrasoundMultiFrameImageStorage, "US")
    ds.set_pixel_data(np.stack(arrays), "MONOCHROME2", 8, generate_instance_uid=False)
    return ds, boxes


def jpeg_baseline(ds: Dataset) -> Dataset:
    """Re-encode an 8-bit greyscale or RGB dataset as JPEG Baseline (lossy), with PIL."""
    array = ds.pixel_array
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds


def outside_mask(shape: tuple[int, int], boxes: list[Box]) -> NDArray[np.bool_]:
    mask = np.ones(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = False
    return mask


def covered(target: Box, boxes: list[Box]) -> bool:
    """Every pixel of ``target`` lies in one of ``boxes``."""
    x0, y0, x1, y1 = target
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for bx0, by0, bx1, by1 in boxes:
        ax0, ay0, ax1, ay1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
        if ax0 < ax1 and ay0 < ay1:
            mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = True
    return bool(mask.all())
