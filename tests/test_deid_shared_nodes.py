"""The byte path reads the strict grammar's nodes instead of walking a header again.

``rawpath.layout_of`` builds the rewriter's layout from the nodes of ``grammar.parse``;
it must be exactly ``rawpath.layout`` on the same bytes, for every input, or the rewriter
would read a file other than the one the gate checked. Held equal on pydicom's shipped
files, the sample corpus, implicit VR copies, hostile mutants and hypothesis-made headers.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from conftest import local_test_files
from pacsguard.deid import grammar, rawpath
from pacsguard.sample import AnswerKey
from pacsguard.sample.mutate import NotApplicable, strategies, uniquify


def _both(data: bytes) -> tuple[rawpath.Layout | None, rawpath.Layout | None] | None:
    """(layout of the bytes, layout of the gate's nodes) as the pipeline reads a file:
    the header from a prefix; None when the gate refuses the structure."""
    try:
        header, buf = grammar.read_header(io.BytesIO(data), len(data))
    except grammar.GrammarError:
        return None
    return rawpath.layout(buf, len(data)), rawpath.layout_of(header, len(data))


def _whole(data: bytes) -> tuple[rawpath.Layout | None, rawpath.Layout | None] | None:
    try:
        header = grammar.parse(data, whole=True)
    except grammar.GrammarError:
        return None
    return rawpath.layout(data, len(data)), rawpath.layout_of(header, len(data))


def _assert_same(data: bytes) -> bool:
    """True when the gate let the file through and both readings were compared."""
    compared = False
    for pair in (_both(data), _whole(data)):
        if pair is not None:
            walked, from_nodes = pair
            assert from_nodes == walked
            compared = True
    return compared


def test_layout_of_nodes_is_layout_on_shipped_files() -> None:
    files = local_test_files()
    compared = sum(_assert_same(path.read_bytes()) for path in files)
    accepted = 0
    for path in files:
        data = path.read_bytes()
        pair = _whole(data)
        accepted += bool(pair and pair[0] is not None)
    assert compared >= 40 and accepted >= 20  # most parse, many are the rewriter's kind


def test_layout_of_nodes_is_layout_on_the_sample_corpus(
    sample_corpus: tuple[Path, AnswerKey],
) -> None:
    root, _ = sample_corpus
    files = sorted(root.rglob("*.dcm"))
    for path in files:
        data = path.read_bytes()
        if not _assert_same(data) or data[128:132] != b"DICM":
            continue  # refused by the gate, or no File Meta to rewrite below
        ds = pydicom.dcmread(io.BytesIO(data))
        if ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            out = io.BytesIO()
            ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
            _assert_same(out.getvalue())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6))
def test_layout_of_nodes_is_layout_on_hostile_mutants(
    sample_corpus: tuple[Path, AnswerKey], seed: int, pick: int
) -> None:
    root, _ = sample_corpus
    files = sorted(root.rglob("*.dcm"))
    data = files[pick % len(files)].read_bytes()
    rng = random.Random(seed)
    pool = strategies(("Doe^Jane", "PID12345"))
    strategy = pool[rng.randrange(len(pool))]
    try:
        mutant = strategy.mutate(uniquify(data, 1), rng).data
    except NotApplicable:
        return
    _assert_same(mutant)


# --- hypothesis-made headers: every shape the two readings could tell apart -----------
_LEAVES = [
    (0x00080005, "CS", "ISO_IR 100"),
    (0x00080008, "CS", "ORIGINAL\\PRIMARY"),
    (0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2"),
    (0x00080018, "UI", "1.2.3.4"),
    (0x00080060, "CS", "CT"),
    (0x00081030, "LO", "Doe Jane study"),
    (0x00100010, "PN", "Doe^Jane"),
    (0x00100020, "LO", "PID12345"),
    (0x00280002, "US", 1),
    (0x00280010, "US", 4),
    (0x00280011, "US", 4),
    (0x00280100, "US", 16),
    (0x00280106, "US", 0),  # US or SS: ambiguous in implicit VR
    (0x00181310, "US", [0, 4, 4, 0]),
    (0x00200032, "DS", ["1.0", "2.0", "3.0"]),
    (0x00091010, "OB", b"\x01\x02"),
    (0x00190010, "LO", "ACME 1.1"),
    (0x00191001, "LO", "private text"),
    (0x00191002, "UN", b"\x00\x01\x02\x03"),
    (0x00041130, "CS", "DIR"),  # a group below 0008: the rewriter declines it
]
_SEQUENCES = [0x00081110, 0x00081115, 0x00400275]


def _dataset(draw: st.DrawFn, depth: int) -> Dataset:
    ds = Dataset()
    for tag, vr, value in draw(st.lists(st.sampled_from(_LEAVES), max_size=8)):
        if depth and tag >> 16 == 0x0004:
            continue
        ds.add_new(tag, vr, value)
    if depth < 2:
        for tag in draw(st.lists(st.sampled_from(_SEQUENCES), max_size=2, unique=True)):
            items = draw(st.lists(st.builds(lambda: None), max_size=2))
            seq = Sequence([_dataset(draw, depth + 1) for _ in items])
            ds.add_new(tag, "SQ", seq)
            element = ds[tag]
            element.is_undefined_length = draw(st.booleans())
            for item in seq:
                item.is_undefined_length_sequence_item = draw(st.booleans())
    return ds


def _saved(ds: Dataset, implicit: bool) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=implicit, little_endian=True, enforce_file_format=True)
    return out.getvalue()


@st.composite
def _files(draw: st.DrawFn) -> bytes:
    ds = _dataset(draw, 0)
    implicit = draw(st.booleans())
    pixels = draw(st.sampled_from(["none", "OW", "float", "undefined"]))
    if pixels == "OW":
        ds.add_new(0x7FE00010, "OW", b"\x00\x01" * 16)
    elif pixels == "float":
        ds.add_new(0x7FE00008, "OF", b"\x00\x00\x80\x3f" * 4)
    elif pixels == "undefined":
        ds.add_new(0x00280010, "US", 4)
    data = _saved(ds, implicit)
    if pixels == "undefined":  # encapsulated fragments after the header, as compressed files
        data += b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" if not implicit else b""
        data += b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    cut = draw(st.integers(0, 3))
    return data[: len(data) - cut] if cut == 3 else data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_files())
def test_layout_of_nodes_is_layout_on_made_headers(data: bytes) -> None:
    _assert_same(data)


def test_layout_of_nodes_sees_a_change_the_walk_would_see() -> None:
    """The comparison has teeth: a layout read from other nodes than the bytes' is told."""
    ds = Dataset()
    ds.add_new(0x00100010, "PN", "Doe^Jane")
    ds.add_new(0x00280106, "US", 0)
    data = _saved(ds, implicit=True)
    header = grammar.parse(data, whole=True)
    walked = rawpath.layout(data, len(data))
    assert walked is not None and walked.elements[-1].ambiguous
    assert rawpath.layout_of(header, len(data)) == walked
    header.elements[-1].tag += 1  # a node that disagrees with the bytes
    assert rawpath.layout_of(header, len(data)) != walked
