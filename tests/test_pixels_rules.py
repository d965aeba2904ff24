"""Which instances need pixel cleaning, mask rules as data, boxes and fills (no OCR here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from pacsguard.core.errors import InputError
from pacsguard.deid.pixels import default_masks, load_masks, needs_pixel_cleaning, risk_reason
from pacsguard.deid.pixels.masks import mask_boxes, parse_rules, ultrasound_regions
from pacsguard.deid.pixels.redact import background, fill, merge, outside, pad
from test_pixels_support import base, grey_image


def image(modality: str, sop_class: str = "1.2.840.10008.5.1.4.1.1.2", **attrs: str) -> Dataset:
    ds = base(sop_class, modality)
    del ds.BurnedInAnnotation
    ds.PixelData = b"\x00\x00"
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("modality", "attrs", "expected"),
    [
        ("CT", {"BurnedInAnnotation": "NO"}, False),
        ("CT", {}, False),
        ("MR", {"ImageType": ["DERIVED", "SECONDARY", "MPR"]}, False),
        ("CT", {"BurnedInAnnotation": "YES"}, True),
        ("CT", {"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, True),
        ("US", {"BurnedInAnnotation": "NO"}, True),
        ("XA", {}, True),
        ("ES", {}, True),
        ("CR", {}, True),
        ("CR", {"BurnedInAnnotation": "NO"}, False),
        ("MG", {"BurnedInAnnotation": "YES"}, True),
        ("OT", {"ConversionType": "SD"}, True),
    ],
)
def test_risk_is_decided_from_the_header(
    modality: str, attrs: dict[str, object], expected: bool
) -> None:
    ds = image(modality, **attrs)  # type: ignore[arg-type]
    assert needs_pixel_cleaning(ds) is expected
    reason = risk_reason(ds)
    assert (reason is not None) is expected
    assert reason is None or "DUPONT" not in reason


def test_secondary_capture_class_is_at_risk_whatever_the_modality() -> None:
    assert needs_pixel_cleaning(image("CT", "1.2.840.10008.5.1.4.1.1.7"))


def test_no_pixels_nothing_to_clean() -> None:
    ds = image("US")
    del ds.PixelData
    assert not needs_pixel_cleaning(ds)
    ds.Rows, ds.Columns = 480, 640  # a header read without its pixels (the deid fast path)
    assert needs_pixel_cleaning(ds)


def test_shipped_masks_load_and_match_on_the_header() -> None:
    rules = default_masks()
    assert rules and all(rule.name for rule in rules)
    ds = image("CT", Manufacturer="GE MEDICAL SYSTEMS", ManufacturerModelName="LightSpeed VCT")
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    ds.Columns, ds.Rows = 512, 512
    assert mask_boxes(ds, rules, 512, 512) == [(0, 0, 512, 121)]
    ds.ManufacturerModelName = "Revolution"
    assert mask_boxes(ds, rules, 512, 512) == []


def test_site_mask_file(tmp_path: Path) -> None:
    path = tmp_path / "masks.yaml"
    path.write_text(
        "rules:\n"
        "  - name: acme us\n"
        "    match: {Modality: US, Manufacturer: {contains: acme}, Rows: [480, 600]}\n"
        "    regions: [[0, 0, 100, 30], [-50, -20, 100000, 100000]]\n"
        "    bottom: 5\n",
        encoding="utf-8",
    )
    (rule,) = load_masks(path)
    ds = image("US", Manufacturer="Acme Medical")
    ds.Rows, ds.Columns = 480, 640
    assert rule.matches(ds)
    assert rule.boxes(480, 640) == [(0, 0, 100, 30), (590, 460, 640, 480), (0, 475, 640, 480)]
    ds.Rows = 500
    assert not rule.matches(ds)


@pytest.mark.parametrize(
    "text",
    ["rules: 3", "rules:\n  - match: {Modality: {startswith: U}}", "rules:\n  - regions: [[1, 2]]"],
)
def test_malformed_mask_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError):
        load_masks(path)


def test_ultrasound_regions_are_read_inclusive() -> None:
    ds = image("US")
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 10, 20
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 99, 199
    ds.SequenceOfUltrasoundRegions = [region]
    assert ultrasound_regions(ds, 480, 640) == [(10, 20, 100, 200)]
    assert ultrasound_regions(image("US"), 480, 640) == []


def test_boxes_pad_clip_and_merge() -> None:
    assert pad((2, 2, 10, 10), 4, 12, 12) == (0, 0, 12, 12)
    assert merge([(0, 0, 5, 5), (5, 0, 9, 5), (20, 20, 30, 30)]) == [(0, 0, 9, 5), (20, 20, 30, 30)]


def test_fill_uses_the_border_background() -> None:
    frame = np.full((20, 30), 7, dtype=np.uint16)
    frame[5:10, 5:10] = 4095
    value = background(frame)
    fill(frame, [(4, 4, 11, 11)], value)
    assert (frame == 7).all()
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[...] = (1, 2, 3)
    rgb[4, 4] = (255, 255, 0)
    outside(rgb, [(0, 0, 4, 4)], np.array([9, 9, 9], dtype=np.uint8))
    assert (rgb[0, 0] == (1, 2, 3)).all() and (rgb[4, 4] == (9, 9, 9)).all()


def test_parse_rules_needs_a_list() -> None:
    with pytest.raises(InputError):
        parse_rules({"rules": {"a": 1}}, "x")
    assert parse_rules({}, "x") == ()


def test_grey_helper_is_a_valid_image() -> None:
    ds, boxes = grey_image()
    assert ds.pixel_array.shape == (160, 256) and len(boxes) == 2


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_tesseract_engine_reads_a_document() -> None:
    from PIL import Image

    from pacsguard.deid.pixels import ocr_tesseract
    from test_pixels_support import burn

    page = Image.new("L", (320, 90), 240)
    boxes = burn(page, ("DUPONT JEAN", "12/03/1956"), 10, size=22)
    words = ocr_tesseract.find_text(np.asarray(page), min_conf=30.0)
    assert any("DUPONT" in w.text for w in words)
    assert all(0 <= w.x < 320 and 0 <= w.y < 90 for w in words) and len(boxes) == 2
    assert ocr_tesseract.engine_version().startswith("tesseract")


def test_engine_choice_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pacsguard.deid.pixels import ocr

    ocr.engine_name.cache_clear()
    monkeypatch.setenv("PACSGUARD_OCR_ENGINE", "tesseract")
    try:
        assert ocr.engine_name() == "tesseract"
    finally:
        ocr.engine_name.cache_clear()
        monkeypatch.delenv("PACSGUARD_OCR_ENGINE")
        ocr.engine_version.cache_clear()
    assert ocr.engine_name() == "rapidocr"
