"""Clean Pixel Data end to end: OCR finds the burned-in text, it is blanked on every frame,
nothing else changes, and compressed data stays lossless (or becomes uncompressed)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from pacsguard.deid.pixels import PixelCleaningError, clean_pixels
from pacsguard.deid.pixels.ocr import find_text
from pacsguard.sample import AnswerKey
from pacsguard.verify.known import fold_compact
from test_pixels_support import (
    LINES,
    Box,
    covered,
    grey_image,
    jpeg_baseline,
    multiframe,
    outside_mask,
    rgb_image,
)


def frames_of(ds: Dataset) -> np.ndarray:
    array = np.asarray(ds.pixel_array)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return array if frames > 1 else array[np.newaxis]


def assert_text_gone(frames: np.ndarray, planted: list[Box], texts: tuple[str, ...]) -> None:
    """OCR (every detection, any confidence) reads none of the planted strings."""
    wanted = {fold_compact(t) for t in texts}
    for frame in frames:
        for word in find_text(frame, min_conf=0.0):
            read = fold_compact(word.text)
            assert not any(read and (read in w or w in read) for w in wanted if len(read) >= 3)
            assert not any(covered(word.box, [p]) for p in planted)


def check_clean(ds: Dataset, planted: list[Box], frames_planted: int = 1) -> np.ndarray:
    before = frames_of(copy.deepcopy(ds))
    uid = ds.SOPInstanceUID
    result = clean_pixels(ds)
    after = frames_of(ds)
    assert ds.BurnedInAnnotation == "NO" and ds.SOPInstanceUID == uid
    assert result.clean_pixel_data_applied and result.frames == before.shape[0]
    assert after.shape == before.shape
    for index in range(result.frames):
        boxes = result.boxes[index]
        for box in planted:
            assert covered(box, boxes), f"planted box {box} not blanked in frame {index}"
        keep = outside_mask(before.shape[1:3], boxes)
        assert np.array_equal(before[index][keep], after[index][keep])
    assert_text_gone(after, planted, LINES)
    return after


def test_greyscale_12_bit() -> None:
    ds, boxes = grey_image(bits=12)
    check_clean(ds, boxes)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.BitsStored == 12


def test_rgb_ultrasound() -> None:
    ds, boxes = rgb_image()
    check_clean(ds, boxes)
    assert ds.PhotometricInterpretation == "RGB"


def test_multiframe_every_frame() -> None:
    ds, boxes = multiframe(frames=3)
    check_clean(ds, boxes)
    assert ds.NumberOfFrames == 3


def test_rle_stays_rle() -> None:
    ds, boxes = grey_image()
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    result = check_clean(ds, boxes)
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    assert result.dtype == np.uint8


def test_jpeg2000_lossless_stays_lossless() -> None:
    ds, boxes = grey_image()
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    check_clean(ds, boxes)
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless


def test_lossy_jpeg_is_written_uncompressed_never_recompressed() -> None:
    ds, boxes = rgb_image()
    jpeg_baseline(ds)
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    result = clean_pixels(ds)
    assert result.transfer_syntax_changed
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PhotometricInterpretation == "RGB" and ds.LossyImageCompression == "01"
    for box in boxes:
        assert covered(box, result.boxes[0])
    assert_text_gone(frames_of(ds), boxes, LINES)


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, "1.2.840.10008.1.2.4.100"])
def test_undecodable_pixels_raise_without_phi(syntax: str) -> None:
    ds, _ = grey_image()
    ds.PatientName = "DUPONT^JEAN"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8 not a jpeg"])
    with pytest.raises(PixelCleaningError) as error:
        clean_pixels(ds)
    assert "DUPONT" not in str(error.value) and "decode" in str(error.value)
    assert ds.BurnedInAnnotation == "YES"


def test_sample_corpus_burned_in_text_is_gone(sample_corpus: tuple[Path, AnswerKey]) -> None:
    root, answer = sample_corpus
    burned = [b for b in answer.burned_in if b.location == "pixels"]
    first_patient = sorted({b.file for b in burned})[:3]
    assert first_patient
    for file in first_patient:
        ds = pydicom.dcmread(root.parent / file, force=True)
        entries = [b for b in burned if b.file == file]
        result = clean_pixels(ds)
        frames = frames_of(ds)
        for entry in entries:
            for item in entry.boxes:
                assert covered(item.box, result.boxes[item.frame])
        texts = tuple(e.text for e in entries)
        planted = [item.box for e in entries for item in e.boxes]
        assert_text_gone(frames[:1], planted, texts)
