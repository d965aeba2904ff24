"""pydicom's own images that deid refused: a native YBR_FULL_422 image, whose Pixel Data
holds two samples a pixel (PS3.3 C.7.6.3.1.2), was "truncated"; 32-bit samples, which
pydicom's set_pixel_data does not take, failed the pixel cleaning ("please report it")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import local_test_files
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_rle_32bit.dcm"])
def test_the_image_is_written_with_its_pixels(
    tmp_path: Path, project_key: ProjectKey, name: str
) -> None:
    (source,) = local_test_files(name)
    (tmp_path / "in").mkdir()
    shutil.copy(source, tmp_path / "in" / name)
    state = tmp_path / "state"
    deidentify(
        [tmp_path / "in"], tmp_path / "out", key=project_key,
        config=DeidConfig(jobs=1, state_dir=state, quarantine_dir=tmp_path / "q"),
    )  # fmt: skip
    outcomes = json.loads((state / "manifest.json").read_text())["outcomes"]
    assert [(o["status"], o["reason"]) for o in outcomes] == [("output", None)]
    (written,) = (tmp_path / "out").rglob("*.dcm")
    out, original = pydicom.dcmread(written), pydicom.dcmread(source)
    assert np.array_equal(out.pixel_array, original.pixel_array)
