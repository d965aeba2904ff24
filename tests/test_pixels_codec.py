"""The pixel codec on real files: 12-bit JPEG Extended decodes (even the streams libjpeg
refuses), colour JPEG 2000 Lossless is re-encoded as YBR_RCT with the reversible transform,
and what cannot be decoded raises a reason a person can act on."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import pixel_array
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGExtended12Bit,
    RLELossless,
    UltrasoundImageStorage,
)

from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.deid.pixels import PixelCleaningError, clean_pixels, codec, gdcm_fallback
from test_pixels_clean import assert_text_gone, frames_of
from test_pixels_support import LINES, covered, grey_image, outside_mask, rgb_image

needs_dcmtk = pytest.mark.skipif(
    shutil.which("dcmcjpeg") is None, reason="DCMTK (dcmcjpeg, dcmdjpeg) is not installed"
)


def real(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return pydicom.dcmread(path)


def first_frame(ds: Dataset) -> bytes:
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return next(generate_frames(ds.PixelData, number_of_frames=frames))


def sos_scan_end(stream: bytes) -> int:
    """Offset of Se (the spectral selection end) in the first SOS of a one-component scan."""
    at = stream.index(b"\xff\xda")
    assert stream[at + 4] == 1, "one component in the scan"
    return at + 8


def dcmtk(tool: str, ds: Dataset, tmp_path: Path, *args: str) -> Dataset:
    """``ds`` through a DCMTK converter (an independent implementation)."""
    source, target = tmp_path / f"{tool}-in.dcm", tmp_path / f"{tool}-out.dcm"
    ds.save_as(source, enforce_file_format=True)
    subprocess.run([tool, *args, str(source), str(target)], check=True, capture_output=True)
    return pydicom.dcmread(target)


def jpeg_extended_12(tmp_path: Path) -> tuple[Dataset, list[tuple[int, int, int, int]]]:
    """A 12-bit image with burned-in text, JPEG Extended (Process 4) encoded by DCMTK."""
    ds, boxes = grey_image(bits=12)
    encoded = dcmtk("dcmcjpeg", ds, tmp_path, "+ee")
    assert encoded.file_meta.TransferSyntaxUID == JPEGExtended12Bit
    return encoded, boxes


def with_scan_end_zero(ds: Dataset) -> Dataset:
    """The same stream with Se = 0 in its SOS, as in pydicom's JPEG-lossy.dcm (and archives)."""
    stream = bytearray(first_frame(ds))
    stream[sos_scan_end(bytes(stream))] = 0
    ds.PixelData = encapsulate([bytes(stream)])
    return ds


@pytest.mark.parametrize("uid", gdcm_fallback.GDCM_SYNTAXES)
def test_pydicoms_in_process_gdcm_plugin_is_never_used(uid: str) -> None:
    """With python-gdcm installed pydicom would try GDCM first, and GDCM aborts the process
    on some damaged streams (see the test below)."""
    assert "gdcm" not in get_decoder(uid).available_plugins


def test_a_stream_that_aborts_gdcm_is_refused_and_we_live_on() -> None:
    """Two stray bytes before the DHT marker: GDCM 3.2 throws through its Python binding and
    the process aborts (SIGABRT); libjpeg refuses the Se = 0 stream. Decoded in a child, it
    is a refusal with a reason."""
    ds = real("JPEG-lossy.dcm")
    stream = first_frame(ds)
    at = stream.index(b"\xff\xc4")
    broken = stream[:at] + b"\x01\x02" + stream[at:]
    with pytest.raises(ValueError, match=r"GDCM (crashed|could not decode)"):  # 3.2.6: crashed
        gdcm_fallback.decode_isolated(broken, int(ds.Rows), int(ds.Columns))
    ds.PixelData = encapsulate([broken])
    with pytest.raises(PixelCleaningError, match="cannot be decoded by any installed decoder"):
        codec.decode(ds)


def test_the_12_bit_plugin_is_a_fallback_after_pydicoms_own() -> None:
    assert gdcm_fallback.LABEL in get_decoder(JPEGExtended12Bit).available_plugins
    ds = real("JPGExtended.dcm")  # conformant: libjpeg decodes it, and its samples are kept
    reference = pixel_array(real("JPGExtended.dcm"), decoding_plugin="pylibjpeg")
    assert np.array_equal(codec.decode(ds).array[0], reference)


def test_pydicoms_12_bit_jpeg_extended_files_decode() -> None:
    """JPGExtended.dcm is conformant; JPEG-lossy.dcm is the same image with Se = 0, which
    libjpeg refuses ("scan stop must be 63") and IJG-based readers accept."""
    lossy = real("JPEG-lossy.dcm")
    assert first_frame(lossy)[sos_scan_end(first_frame(lossy))] == 0
    with pytest.raises(RuntimeError):
        pixel_array(real("JPEG-lossy.dcm"), decoding_plugin="pylibjpeg")
    good = codec.decode(real("JPGExtended.dcm"))
    damaged = codec.decode(lossy)
    for frames in (good, damaged):
        assert frames.array.shape == (1, 1024, 256) and frames.array.dtype == np.uint16
        assert frames.photometric == "MONOCHROME2"
    # Two IDCT implementations (libjpeg, IJG): equal within the rounding of a lossy decode.
    assert np.abs(good.array.astype(int) - damaged.array.astype(int)).max() <= 1
    assert int(damaged.array.max()) < 4096


@needs_dcmtk
def test_gdcm_decodes_what_dcmtk_decodes(tmp_path: Path) -> None:
    reference = dcmtk("dcmdjpeg", real("JPEG-lossy.dcm"), tmp_path).pixel_array
    assert np.array_equal(codec.decode(real("JPEG-lossy.dcm")).array[0], reference)


@needs_dcmtk
@pytest.mark.parametrize("damaged", [False, True], ids=["conformant", "scan-end-zero"])
def test_12_bit_jpeg_extended_is_cleaned(tmp_path: Path, damaged: bool) -> None:
    ds, boxes = jpeg_extended_12(tmp_path)
    if damaged:
        ds = with_scan_end_zero(ds)
    result = clean_pixels(ds)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # never re-encoded lossily
    assert ds.LossyImageCompression == "01" and ds.BurnedInAnnotation == "NO"
    assert ds.BitsStored == 12 and ds.pixel_array.dtype == np.uint16
    for box in boxes:
        assert covered(box, result.boxes[0])
    # OCR reads 8-bit images: look at the 12-bit samples scaled down.
    assert_text_gone((frames_of(ds) >> 4).astype(np.uint8), boxes, LINES)


def without_huffman_tables(ds: Dataset) -> Dataset:
    """The stream with its DHT segment removed: whole, but no decoder can read it."""
    stream = first_frame(ds)
    at = stream.index(b"\xff\xc4")
    length = int.from_bytes(stream[at + 2 : at + 4], "big")
    ds.PixelData = encapsulate([stream[:at] + stream[at + 2 + length :]])
    return ds


def test_an_undecodable_12_bit_stream_names_the_syntax_and_what_to_do() -> None:
    ds = without_huffman_tables(real("JPGExtended.dcm"))
    ds.PatientName = "DUPONT^JEAN"
    with pytest.raises(PixelCleaningError) as error:
        codec.decode(ds)
    message = str(error.value)
    assert "JPEG Extended" in message and "1.2.840.10008.1.2.4.51" in message
    assert gdcm_fallback.LABEL in message and "pylibjpeg" in message
    assert "quarantined" in message and "run again" in message
    assert "DUPONT" not in message


@pytest.mark.parametrize(
    "name", ["JPGExtended.dcm", "examples_jpeg2k.dcm", "SC_rgb_jpeg_dcmtk.dcm"]
)
def test_a_truncated_codestream_is_refused_not_filled_in(name: str) -> None:
    """libjpeg decodes a cut JPEG stream without a word; the end marker check refuses it."""
    ds = real(name)
    ds.PixelData = encapsulate([first_frame(ds)[:-600]])
    with pytest.raises(PixelCleaningError, match=r"frame 1 .* cannot be decoded: it is truncated"):
        codec.decode(ds)


def test_a_wrong_frame_count_is_refused() -> None:
    ds = real("JPGExtended.dcm")
    ds.NumberOfFrames = 3
    with pytest.raises(PixelCleaningError, match="3 frame"):
        codec.decode(ds)


def test_undecodable_12_bit_jpeg_that_needs_cleaning_is_quarantined(
    project_key: ProjectKey, tmp_path: Path
) -> None:
    ds = without_huffman_tables(real("JPGExtended.dcm"))
    ds.PatientName = "DUPONT^JEAN"
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "broken.dcm", enforce_file_format=True)
    config = DeidConfig(jobs=1, options=frozenset({"clean-pixel-data"}))
    report = deidentify([tmp_path / "in"], tmp_path / "out", key=project_key, config=config)
    assert (report.output, report.quarantine) == (0, 1)
    (reason,) = report.reasons
    assert "JPEG Extended" in reason and "cannot be decoded" in reason
    assert "DUPONT" not in reason


@pytest.mark.parametrize("value", ["YBR_PARTIAL_422", "DUPONT^JEAN"])
def test_a_colour_model_pydicom_does_not_convert_is_refused(value: str) -> None:
    ds, _ = rgb_image()
    ds.PhotometricInterpretation = value
    with pytest.raises(PixelCleaningError) as error:
        codec.decode(ds)
    assert "not supported" in str(error.value) and "DUPONT" not in str(error.value)


def mct(stream: bytes) -> int:
    """The multiple component transformation flag of a J2K codestream's COD marker."""
    return stream[stream.index(b"\xff\x52") + 8]


def assert_ybr_rct(ds: Dataset, expected: np.ndarray) -> None:
    """Colour JPEG 2000 Lossless as PS3.5 and the IODs want it: YBR_RCT, with the reversible
    transform really applied, decoding (by two decoders) to exactly ``expected``."""
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert ds.PhotometricInterpretation == "YBR_RCT" and ds.PlanarConfiguration == 0
    assert mct(first_frame(ds)) == 1
    decoded = pixel_array(ds, decoding_plugin="pylibjpeg")
    assert np.array_equal(decoded.reshape(expected.shape), expected)
    assert np.array_equal(gdcm_read(ds).reshape(expected.shape), expected)


def gdcm_read(ds: Dataset) -> np.ndarray:
    """``ds`` as GDCM reads the file: a second, independent decoder, whose buffer is RGB
    (the inverse RCT applied) though it still reports YBR_RCT."""
    import gdcm  # known-good streams only: in the test process

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.dcm"
        ds.save_as(path, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read()
        image = reader.GetImage()
        raw = image.GetBuffer().encode("utf-8", "surrogateescape")
    dtype = np.uint8 if ds.BitsAllocated == 8 else np.dtype("<u2")
    return np.frombuffer(raw, dtype=dtype)


def test_ultrasound_ybr_rct_jpeg2000_stays_ybr_rct() -> None:
    """pydicom's examples_jpeg2k.dcm: a real ultrasound image, YBR_RCT JPEG 2000 Lossless."""
    ds = real("examples_jpeg2k.dcm")
    assert ds.SOPClassUID == UltrasoundImageStorage and ds.PhotometricInterpretation == "YBR_RCT"
    result = clean_pixels(ds)
    assert not result.transfer_syntax_changed
    assert_ybr_rct(ds, codec.decode(ds).array[0])


@pytest.mark.parametrize("bits", [8, 16])
def test_rgb_jpeg2000_lossless_becomes_ybr_rct(bits: int) -> None:
    ds, boxes = rgb_image()
    if bits == 16:
        ds.set_pixel_data(
            ds.pixel_array.astype(np.uint16) * 257, "RGB", 16, generate_instance_uid=False
        )
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    assert ds.PhotometricInterpretation == "RGB" and mct(first_frame(ds)) == 0
    result = clean_pixels(ds)
    for box in boxes:
        assert covered(box, result.boxes[0])
    assert_ybr_rct(ds, codec.decode(ds).array[0])
    assert ds.BitsStored == bits


def test_grey_jpeg2000_keeps_its_photometric() -> None:
    ds = real("MR_small_jp2klossless.dcm")
    before = codec.decode(ds)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    codec.encode(ds, before)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and mct(first_frame(ds)) == 0
    assert np.array_equal(codec.decode(ds).array, before.array)


def test_frames_located_by_the_extended_offset_table_are_checked_whole() -> None:
    ds = real("SC_rgb_rle_2frame.dcm")
    ds.decompress(generate_instance_uid=False)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    streams = list(generate_frames(ds.PixelData, number_of_frames=2))
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
        streams
    )
    assert codec.decode(ds).count == 2
    cut = [streams[0], streams[1][:-300]]
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(cut)
    with pytest.raises(PixelCleaningError, match=r"frame 2 .* truncated"):
        codec.decode(ds)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, ExplicitVRLittleEndian])
def test_lossless_ybr_full_is_blanked_as_stored_never_rounded_through_rgb(syntax: str) -> None:
    """YBR_FULL -> RGB rounds (samples off by one); a lossless source must stay exact."""
    ds, boxes = rgb_image()
    ybr = convert_color_space(ds.pixel_array, "RGB", "YBR_FULL").astype(np.int16)
    tint = np.random.default_rng(3).integers(-24, 24, size=(*ybr.shape[:2], 2))
    ybr = np.clip(ybr + np.pad(tint, ((0, 0), (0, 0), (1, 0))), 16, 240).astype(np.uint8)
    ds.set_pixel_data(ybr, "YBR_FULL", 8, generate_instance_uid=False)
    rounded = convert_color_space(convert_color_space(ybr, "YBR_FULL", "RGB"), "RGB", "YBR_FULL")
    assert not np.array_equal(rounded, ybr)  # the loss this guards against
    if syntax != ExplicitVRLittleEndian:
        plugin = "pydicom" if syntax == RLELossless else "pylibjpeg"
        ds.compress(syntax, encoding_plugin=plugin, generate_instance_uid=False)
    result = clean_pixels(ds)
    assert ds.file_meta.TransferSyntaxUID == syntax and ds.PhotometricInterpretation == "YBR_FULL"
    assert "LossyImageCompression" not in ds
    for box in boxes:
        assert covered(box, result.boxes[0])
    after = pixel_array(ds, as_rgb=False)
    keep = outside_mask(after.shape[:2], result.boxes[0])
    assert np.array_equal(after[keep], ybr[keep])
    assert_text_gone(pixel_array(ds)[np.newaxis], boxes, LINES)  # read as RGB


def test_big_endian_pixels_are_cleaned_into_little_endian() -> None:
    """pydicom's ExplVR_BigEnd.dcm, an ultrasound image (so at risk) in the retired syntax."""
    ds = real("ExplVR_BigEnd.dcm")
    before = codec.decode(real("ExplVR_BigEnd.dcm")).array
    result = clean_pixels(ds)
    assert (
        result.transfer_syntax_changed and ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    )
    written = io.BytesIO()
    pydicom.dcmwrite(written, ds, enforce_file_format=True)  # pydicom re-encodes every element
    again = pydicom.dcmread(io.BytesIO(written.getvalue()))
    assert again.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    keep = outside_mask(before.shape[1:3], result.boxes.get(0, []))
    assert np.array_equal(codec.decode(again).array[0][keep], before[0][keep])


def mutants(stream: bytes, seed: int, count: int) -> list[bytes]:
    """Bit flips, byte changes and spliced runs: damage of the kinds archives and attackers make."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(stream)
        for _ in range(rng.randint(1, 8)):
            at, kind = rng.randrange(len(data)), rng.random()
            if kind < 0.6:
                data[at] ^= 1 << rng.randrange(8)
            elif kind < 0.8:
                data[at] = rng.randrange(256)
            else:
                data[at : at + rng.randint(1, 64)] = rng.randbytes(rng.randint(0, 64))
        out.append(bytes(data))
    return out


@pytest.mark.parametrize(
    "name",
    [
        "JPEG-lossy.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "examples_jpeg2k.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_damaged_codestreams_decode_or_are_refused_never_crash(name: str) -> None:
    """Every mutant either decodes or raises PixelCleaningError: no other exception, and this
    process survives (a longer run of the same: 1,200 mutants, no crash)."""
    refused = 0
    for stream in mutants(first_frame(real(name)), seed=13, count=25):
        ds = real(name)
        if "NumberOfFrames" in ds:
            ds.NumberOfFrames = 1
        ds.PixelData = encapsulate([stream])
        try:
            codec.decode(ds)
        except PixelCleaningError:
            refused += 1
    assert refused > 0  # the damage is real
