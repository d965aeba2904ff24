"""The byte path reads the strict grammar's nodes instead of walking a header again.

``rawpath.layout_of`` builds the rewriter's layout from the nodes of ``grammar.parse``;
it must be exactly ``rawpath.layout`` on the same bytes, for every input, or the rewriter
would read a file other than the one the gate checked. Held equal on pydicom's shipped
files, the sample corpus, implicit VR copies, hostile mutants and hypothesis-made headers.
"""

from __future__ import annotations

import io
import random
import re
import struct
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from conftest import local_test_files
from pacsguard.deid import grammar, identity, postcheck, rawpath
from pacsguard.deid.identity import Identity, gather
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


# --- the gate's walk: element headers read inline are read as ``header`` reads them ---
def _walk_outcome(data: bytes, whole: bool) -> object:
    """Everything a walk tells: its nodes, anomalies and pixel offset, or its error."""
    try:
        header = grammar.parse(data, whole=whole)
    except (grammar.GrammarError, grammar.NeedMore) as exc:
        return (type(exc).__name__, str(exc))
    return (header.syntax, header.implicit, header.elements, header.anomalies, header.pixel_offset)


def _same_walk(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    for whole in (True, False):
        inline = _walk_outcome(data, whole)
        with monkeypatch.context() as patch:
            patch.setattr(grammar._Walk, "inline", False)
            plain = _walk_outcome(data, whole)
        assert inline == plain


_VR_CHOICES = [*sorted(grammar.VRS), "XX", "ob", "\x00\x00"]
_TAGS = [0x00080005, 0x00080016, 0x00081030, 0x00100010, 0x00100020, 0x00020010, 0x00080000,
         0x00090010, 0x00091001, 0x00090005, 0x00091100, 0x00030010, 0x00280010, 0x00281050,
         0x00400275, 0x0008FFFF, 0x7FE00010, 0x7FE00008, 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD,
         0x00181310, 0x00200032, 0x00101010]  # fmt: skip


@st.composite
def _element_bytes(draw: st.DrawFn) -> bytes:
    tag = draw(st.sampled_from(_TAGS) | st.integers(0, 0xFFFFFFFF))
    vr = draw(st.sampled_from(_VR_CHOICES)).encode("latin-1")
    value = draw(st.sampled_from([b"", b"AB", b"Doe^Jane", b"12.5", b"\x00\x01", b"x\x01y", b"A"]))
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    long = vr.decode("latin-1") in grammar.LONG_VRS
    length = draw(st.sampled_from([len(value), 0xFFFFFFFF, len(value) + 7, 0]))
    if long:
        return head + vr + b"\x00\x00" + struct.pack("<I", length) + value
    return head + vr + struct.pack("<H", length & 0xFFFF) + value


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(elements=st.lists(_element_bytes(), max_size=12), cut=st.integers(0, 12))
def test_inline_element_headers_read_as_header_reads_them(
    elements: list[bytes], cut: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = _saved(Dataset(), implicit=False)
    body = b"".join(elements)
    data = meta + (body[: len(body) - cut] if cut < len(body) else body)
    _same_walk(data, monkeypatch)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6))
def test_inline_walk_is_the_plain_walk_on_mutants(
    sample_corpus: tuple[Path, AnswerKey], seed: int, pick: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = sample_corpus
    files = sorted(root.rglob("*.dcm"))
    data = files[pick % len(files)].read_bytes()
    rng = random.Random(seed)
    pool = strategies(("Doe^Jane", "PID12345"))
    try:
        mutant = pool[rng.randrange(len(pool))].mutate(uniquify(data, 1), rng).data
    except NotApplicable:
        mutant = data
    _same_walk(mutant, monkeypatch)
    for path in local_test_files()[pick % 7 :: 7]:
        _same_walk(path.read_bytes(), monkeypatch)


# --- the post-write check: the quick search is the reference search -------------------
def _reference_residue(header: grammar.Header, identity: Identity) -> postcheck.Residue | None:
    """The post-write check as it is meant: each needle in turn, its bounded pattern
    searched case-insensitively in the header; the first match names the residue."""
    extent = header.pixel_offset if header.pixel_offset is not None else len(header.buf)
    data = postcheck._PLACEHOLDER.sub(lambda m: b" " * len(m.group(0)), header.buf[:extent])
    for needle in postcheck.compile_identity(identity):
        match = re.search(needle.pattern, data, re.IGNORECASE)
        if match is not None:
            return postcheck.Residue(needle.kind, postcheck._tag_at(header.elements, match.start()))
    return None


_WORDS = st.text(alphabet=st.sampled_from("abcdeXYZéÉÿ0123456789 -'./^_,\\@+()"), max_size=16)
_ENCODINGS = st.sampled_from(["utf-8", "latin-1", "utf-16-le"])


@settings(max_examples=400, deadline=None)
@given(
    name=_WORDS,
    patient_id=_WORDS,
    birth=st.sampled_from(["", "19360405", "20011231"]),
    planted=st.lists(st.tuples(_WORDS, st.sampled_from(["name", "id", "birth", ""]), _WORDS,
                               _ENCODINGS, st.booleans()), max_size=4),
)  # fmt: skip
def test_post_check_quick_search_is_the_reference_search(
    name: str, patient_id: str, birth: str, planted: list[tuple[str, str, str, str, bool]]
) -> None:
    source = Dataset()
    source.add_new(0x00100010, "PN", name)
    source.add_new(0x00100020, "LO", patient_id)
    if birth:
        source.add_new(0x00100030, "DA", birth)
    identity = gather(grammar.parse(_saved(source, implicit=False), whole=True))
    written = Dataset()
    written.add_new(0x00090010, "LO", "ACME 1.0")
    for offset, (before, what, after, encoding, upper) in enumerate(planted):
        value = {"name": name, "id": patient_id, "birth": birth}.get(what, "[NAME]")
        text = before + (value.upper() if upper else value) + after
        written.add_new(0x00091010 + offset, "OB", text.encode(encoding, "replace"))
    written.add_new(0x00100010, "PN", "PSEUDONYM^X")
    header = grammar.parse(_saved(written, implicit=False), whole=True)
    assert postcheck.check_header(header, identity) == _reference_residue(header, identity)


def test_post_check_quick_search_finds_the_leftmost_residue() -> None:
    """Two plantings of the same name: the residue is the first, as the reference's."""
    source = Dataset()
    source.add_new(0x00100010, "PN", "Zygmuntowicz^Jan")
    identity = gather(grammar.parse(_saved(source, implicit=False), whole=True))
    written = Dataset()
    written.add_new(0x00081030, "LO", "x-ZYGMUNTOWICZ-y")
    written.add_new(0x00204000, "LT", "zygmuntowiczi zygmuntowicz")
    header = grammar.parse(_saved(written, implicit=False), whole=True)
    residue = postcheck.check_header(header, identity)
    assert residue == _reference_residue(header, identity)
    assert residue is not None and residue.tag == 0x00081030


# --- identity gathering: one pass over the gate's nodes, as a recursive walk reads them -
def _reference_gather(header: grammar.Header, institution: bool) -> Identity:
    """``gather`` as first written: a recursive walk, each dataset's own character sets."""
    kinds = identity._tag_kinds(institution)
    found: dict[str, set[str]] = {"name": set(), "id": set(), "date": set(), "place": set()}

    def walk(nodes: list[grammar.Node], charsets: list[str]) -> None:
        charsets = identity._declared(header.buf, nodes, charsets)
        for node in nodes:
            if node.items is not None:
                for item in node.items:
                    walk(item, charsets)
                continue
            raw = header.buf[node.value : node.end]
            kind = kinds.get(node.tag)
            if kind is None:
                if node.vr in identity.FREE_TEXT_VRS and identity._MAYBE_SHAPED.search(raw):
                    found["id"] |= identity._shaped_cached(raw)
                continue
            found[kind] |= identity._tokens(raw, tuple(charsets), kind)

    walk(header.elements, [])
    return Identity(*(frozenset(found[k]) for k in ("name", "id", "date", "place")))


def _same_identity(data: bytes) -> None:
    try:
        header = grammar.parse(data, whole=True)
    except grammar.GrammarError:
        return
    for institution in (True, False):
        assert gather(header, institution=institution) == _reference_gather(header, institution)


def test_gather_is_the_recursive_walk_on_the_sample_corpus(
    sample_corpus: tuple[Path, AnswerKey],
) -> None:
    root, _ = sample_corpus
    for path in sorted(root.rglob("*.dcm")):
        _same_identity(path.read_bytes())
    for path in local_test_files():
        _same_identity(path.read_bytes())


_NESTED_CHARSETS = st.sampled_from(["", "", "ISO_IR 100", "ISO_IR 192", "ISO_IR 144", "ISO_IR 126"])


@st.composite
def _datasets(draw: st.DrawFn) -> Dataset:
    return _dataset(draw, 0)


@settings(max_examples=200, deadline=None)
@given(
    ds=_datasets(),
    names=st.lists(_WORDS.map(lambda w: w + "é"), min_size=1, max_size=3),
    top=st.sampled_from(["ISO_IR 144", "ISO_IR 126", ""]),
    charsets=st.lists(_NESTED_CHARSETS, min_size=1, max_size=3),
)
def test_gather_is_the_recursive_walk_on_made_headers(
    ds: Dataset, names: list[str], top: str, charsets: list[str]
) -> None:
    if top:  # the top level's, which items that declare none inherit
        ds.SpecificCharacterSet = top
    item = ds
    for depth, (name, charset) in enumerate(zip(names, charsets * 3, strict=False)):
        inner = Dataset()
        if charset:
            inner.SpecificCharacterSet = charset
        inner.add_new(0x00100010, "PN", name.encode("utf-8"))
        inner.add_new(0x00081030, "LO", ("call +33 6 12 34 56 78 " + name).encode("utf-8"))
        item.add_new(0x00101002 if depth == 0 else 0x00081110, "SQ", Sequence([inner]))
        item = inner
    _same_identity(_saved(ds, implicit=False))


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=80).map(lambda t: t.encode("utf-8")))
def test_post_check_words_are_the_regex_words(data: bytes) -> None:
    lowered = data.lower()
    assert postcheck.words_of(lowered) == set(postcheck._WORD.findall(lowered))
    assert postcheck.numbers_of(lowered) == set(postcheck._DIGITS.findall(lowered))
