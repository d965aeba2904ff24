"""Image instances: CT, MR (with an overlay), US (RGB and multiframe) and Secondary Capture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset
from pydicom.uid import (
    CTImageStorage,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from pacsguard.sample.burn import Box, draw_lines, overlay_bits
from pacsguard.sample.headers import base_dataset
from pacsguard.sample.identities import french_date, strip_accents
from pacsguard.sample.plan import SeriesPlan

CT_SIZE = 64
MR_SIZE = 128
US_SIZE = (384, 512)  # rows, columns
SC_SIZE = (480, 640)
US_FRAMES = 4
CT_SPACING = 5.0
CT_THICKNESS = 2.5


@dataclass(frozen=True)
class Burned:
    """A text drawn into pixels (``location`` "pixels") or into an overlay plane."""

    location: str
    kind: str
    text: str
    boxes: tuple[tuple[int, Box], ...]


@dataclass(frozen=True)
class Instance:
    ds: Dataset
    burned: tuple[Burned, ...] = ()


def ct_pixels(rows: int, cols: int, z: float, gen: np.random.Generator) -> NDArray[np.uint16]:
    """A chest-like phantom in stored values (HU + 1024): body, two lungs, a spine."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows / 2, cols / 2
    hu = np.full((rows, cols), -1000.0, dtype=np.float32)
    body = ((yy - cy) / (0.38 * rows)) ** 2 + ((xx - cx) / (0.45 * cols)) ** 2 <= 1
    hu[body] = 40
    lung_scale = 1 + 0.02 * np.sin(z / 10)
    for side in (-1, 1):
        lung = ((yy - cy) / (0.25 * rows * lung_scale)) ** 2 + (
            (xx - cx - side * 0.2 * cols) / (0.14 * cols)
        ) ** 2 <= 1
        hu[lung] = -820
    spine = (yy - cy - 0.27 * rows) ** 2 + (xx - cx) ** 2 <= (0.06 * rows) ** 2
    hu[spine] = 700
    hu += gen.normal(0, 12, size=(rows, cols)).astype(np.float32)
    return np.clip(hu + 1024, 0, 4095).astype(np.uint16)


def _grey_image(ds: Dataset, rows: int, cols: int, bits: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0


def ct_instance(
    series: SeriesPlan, sop_uid: str, number: int, gen: np.random.Generator
) -> Instance:
    ds = base_dataset(CTImageStorage, sop_uid, series, number)
    z = -100.0 + (number - 1) * CT_THICKNESS
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = series.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [-CT_SIZE * CT_SPACING / 2, -CT_SIZE * CT_SPACING / 2, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [CT_SPACING, CT_SPACING]
    ds.SliceThickness = CT_THICKNESS
    ds.SliceLocation = z
    ds.KVP = 120
    ds.ConvolutionKernel = "B30f"
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.BurnedInAnnotation = "NO"
    _grey_image(ds, CT_SIZE, CT_SIZE, 12)
    ds.PixelData = ct_pixels(CT_SIZE, CT_SIZE, z, gen).tobytes()
    return Instance(ds)


def _overlay(ds: Dataset, text: str, description: str) -> Burned:
    data, box = overlay_bits(ds.Rows, ds.Columns, text, 14)
    ds.add_new(0x60000010, "US", ds.Rows)
    ds.add_new(0x60000011, "US", ds.Columns)
    ds.add_new(0x60000022, "LO", description)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", data)
    return Burned("(6000,3000)", "patient-name", text, ((0, box),))


def mr_instance(
    series: SeriesPlan, sop_uid: str, number: int, gen: np.random.Generator
) -> Instance:
    ds = base_dataset(MRImageStorage, sop_uid, series, number)
    z = -30.0 + (number - 1) * 5
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.FrameOfReferenceUID = series.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [-120, -120, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [240 / MR_SIZE, 240 / MR_SIZE]
    ds.SliceThickness = 5
    ds.SliceLocation = z
    ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "SE", "NONE", "2D"
    ds.RepetitionTime, ds.EchoTime, ds.MagneticFieldStrength = 500, 15, 1.5
    ds.BurnedInAnnotation = "NO"
    _grey_image(ds, MR_SIZE, MR_SIZE, 12)
    yy, xx = np.mgrid[0:MR_SIZE, 0:MR_SIZE]
    head = ((yy - 64) / 52) ** 2 + ((xx - 64) / 44) ** 2 <= 1
    pixels = np.where(head, 900.0, 20.0) + gen.normal(0, 30, size=head.shape)
    ds.PixelData = np.clip(pixels, 0, 4095).astype(np.uint16).tobytes()
    burned: tuple[Burned, ...] = ()
    if number == 1:
        who = series.study.identity
        text = strip_accents(who.person.family.upper())
        burned = (_overlay(ds, text, f"Annotation {who.person.natural}"),)
    return Instance(ds, burned)


def _identifying_lines(series: SeriesPlan) -> list[tuple[str, str]]:
    """(kind, text) pairs a device prints on screen."""
    study = series.study
    who = study.identity
    return [
        ("patient-name", strip_accents(f"{who.person.family.upper()} {who.person.given.upper()}")),
        ("birth-date", french_date(who.birth_date)),
        ("patient-id", who.patient_id),
        ("institution", strip_accents(study.institution[0])),
        ("date", french_date(study.date)),
    ]


def _burn_frame(
    image: Image.Image,
    lines: list[tuple[str, str]],
    size: int,
    shift: int,
    fill: int | tuple[int, ...],
) -> list[Box]:
    placed = [
        (text, (12 + shift, 10 + i * (size + 10) + shift)) for i, (_, text) in enumerate(lines)
    ]
    return draw_lines(image, placed, size, fill)


def _collect(lines: list[tuple[str, str]], per_frame: list[list[Box]]) -> tuple[Burned, ...]:
    return tuple(
        Burned("pixels", kind, text, tuple((f, boxes[i]) for f, boxes in enumerate(per_frame)))
        for i, (kind, text) in enumerate(lines)
    )


def _speckle(rows: int, cols: int, gen: np.random.Generator) -> NDArray[np.uint8]:
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = np.arctan2(xx - cols / 2, yy + 20)
    radius = np.hypot(xx - cols / 2, yy + 20)
    # The fan starts below the text block, as on real scanners, so the text stays legible.
    fan = (np.abs(angle) < 0.6) & (radius < rows * 1.05) & (radius > rows * 0.6)
    noise = gen.gamma(2.0, 30.0, size=(rows, cols))
    return np.where(fan, np.clip(noise, 0, 200), 0).astype(np.uint8)


def us_instance(
    series: SeriesPlan, sop_uid: str, number: int, gen: np.random.Generator
) -> Instance:
    ds = base_dataset(UltrasoundImageStorage, sop_uid, series, number)
    rows, cols = US_SIZE
    grey = _speckle(rows, cols, gen)
    image = Image.fromarray(np.stack([grey, grey, grey], axis=-1), "RGB")
    lines = _identifying_lines(series)
    burned = _collect(lines, [_burn_frame(image, lines, 22, 0, (255, 255, 0))])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    return Instance(ds, burned)


def us_multiframe(
    series: SeriesPlan, sop_uid: str, number: int, gen: np.random.Generator
) -> Instance:
    ds = base_dataset(UltrasoundMultiFrameImageStorage, sop_uid, series, number)
    rows, cols = US_SIZE
    lines = _identifying_lines(series)
    frames, per_frame = [], []
    for frame in range(US_FRAMES):
        image = Image.fromarray(_speckle(rows, cols, gen), "L")
        per_frame.append(_burn_frame(image, lines, 22, 2 * frame, 255))
        frames.append(np.asarray(image, dtype=np.uint8))
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIAC"]
    _grey_image(ds, rows, cols, 8)
    ds.NumberOfFrames = US_FRAMES
    ds.FrameTime = 40.0
    ds.CineRate = 25
    ds.FrameIncrementPointer = 0x00181063
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.stack(frames).tobytes()
    return Instance(ds, _collect(lines, per_frame))


def sc_instance(
    series: SeriesPlan, sop_uid: str, number: int, gen: np.random.Generator
) -> Instance:
    ds = base_dataset(SecondaryCaptureImageStorage, sop_uid, series, number)
    rows, cols = SC_SIZE
    backdrop = (gen.random((rows, cols)) * 40).astype(np.uint8)
    image = Image.fromarray(backdrop, "L")
    lines = _identifying_lines(series)
    burned = _collect(lines, [_burn_frame(image, lines, 26, 20, 230)])
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    _grey_image(ds, rows, cols, 8)
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.asarray(image, dtype=np.uint8).tobytes()
    return Instance(ds, burned)
