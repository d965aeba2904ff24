"""The guard's C-FIND identifiers as bytes (``net.rawquery``, ``guard.find``) against
pydicom's decoded path, on identifiers built to break the walk: every syntax the walk
takes, values of odd length, padding, several values, non-ASCII text, private and unknown
tags, binary VRs, sequences, and element lists written by hand rather than by pydicom."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pacsguard.guard.find import _read, retrieve_ae_decoded, rewrite_retrieve_ae
from pacsguard.net.rawquery import LONG_VRS, Encoded, Identifier, encoded

SYNTAXES = [str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)]
GUARD_AE = "PACS"
text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=9)
names = st.text(alphabet="AbcÉéü^ =", max_size=12)  # non-ASCII: Latin-1 / UTF-8

# (keyword or tag, VR, value strategy): the keys C-FIND identifiers carry, and some that
# only a careless or hostile peer sends
ELEMENTS: list[tuple[Any, str, st.SearchStrategy[Any]]] = [
    ("SpecificCharacterSet", "CS", st.sampled_from(["ISO_IR 100", "ISO_IR 192", ""])),
    ("QueryRetrieveLevel", "CS", st.sampled_from(["STUDY", "SERIES", " study ", "", "PATIENT"])),
    ("RetrieveAETitle", "AE", st.one_of(text, st.lists(text, max_size=3))),
    ("StudyDate", "DA", st.sampled_from(["20240101", "20240101-", ""])),
    ("ModalitiesInStudy", "CS", st.lists(st.sampled_from(["CT", "MR", "US"]), max_size=3)),
    ("AccessionNumber", "SH", text),
    ("ReferringPhysicianName", "PN", names),
    ("PatientName", "PN", names),
    ("PatientID", "LO", text),
    ("StudyInstanceUID", "UI", st.sampled_from(["1.2.3", "1.2.840.10008.1", "", "1.2\\1.3"])),
    ("NumberOfStudyRelatedInstances", "IS", st.sampled_from(["3", "", "12"])),
    ("Rows", "US", st.integers(0, 65535)),
    ("RetrieveURL", "UR", text),
    (0x00090010, "LO", text),  # a private creator, and its element
    (0x00091001, "LO", text),
    (0x00091002, "OB", st.binary(max_size=7)),
    (0x7FE10010, "UN", st.binary(max_size=5)),
]


@st.composite
def identifiers(draw: st.DrawFn) -> Dataset:
    ds = Dataset()
    for key, vr, values in ELEMENTS:
        if draw(st.booleans()):
            value = draw(values)
            if isinstance(key, int):
                ds.add(DataElement(key, vr, value))
            else:
                setattr(ds, key, value)
    if draw(st.integers(0, 5)) == 0:  # a sequence: walked where its length is defined
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        ds.ReferencedStudySequence = Sequence([item])
    return ds


def _decoded_bytes(data: bytes, syntax: str) -> bytes:
    out = encoded(retrieve_ae_decoded(Encoded(data, syntax), GUARD_AE), syntax)
    assert out is not None
    return out


def _elements(data: bytes, syntax: str) -> list[tuple[int, str, Any]]:
    ds = Encoded(data, syntax).dataset()
    return [(int(e.tag), e.VR, e.value) for e in ds]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on values built to be odd
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=identifiers(), syntax=st.sampled_from(SYNTAXES))
def test_retrieve_ae_rewritten_as_bytes_is_the_decoded_path(ds: Dataset, syntax: str) -> None:
    """pydicom-encoded identifiers: the bytes path writes exactly the decoded path's bytes,
    or declines (then the decoded path is taken)."""
    data = encoded(ds, syntax)
    assert data is not None
    rewritten = rewrite_retrieve_ae(Encoded(data, syntax), GUARD_AE)
    walked = Identifier.walk(data, syntax)
    if walked is None:  # an explicit UN (pydicom's reading gives it a known VR): declined
        assert rewritten is None
        assert syntax == str(ExplicitVRLittleEndian) and any(e.VR == "UN" for e in ds)
        return
    assert rewritten is not None  # sequences too: pydicom writes them with defined lengths
    assert rewritten.data == _decoded_bytes(data, syntax)
    assert walked.tags() == [int(e.tag) for e in ds]


def _head(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)
    if vr.encode() in LONG_VRS:
        return struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, vr.encode(), length)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


LEVELS = [b"STUDY", b"STUDY ", b"STUDY\x00", b"SERIES\\STUDY", b"st\xe9dy", b" IMAGE", b""]
HAND = [
    (0x00080005, "CS", st.sampled_from([b"ISO_IR 100", b"ISO_IR 192", b""])),
    (0x00080020, "DA", st.sampled_from([b"20240101", b"2024010", b""])),
    (0x00080050, "SH", st.binary(max_size=9)),  # odd lengths, nulls, any byte
    (0x00080052, "CS", st.sampled_from(LEVELS)),
    (0x00080054, "AE", st.binary(max_size=17)),
    (0x00080061, "CS", st.sampled_from([b"CT\\MR", b"CT", b""])),
    (0x00100010, "PN", st.binary(max_size=11)),
    (0x00100020, "LO", st.binary(max_size=11)),
    (0x00091001, "LO", st.binary(max_size=5)),
    (0x00111010, "UN", st.binary(max_size=5)),
    (0x0020000D, "UI", st.sampled_from([b"1.2.3\x00", b"1.2.3", b""])),
    (0x00280010, "US", st.sampled_from([b"\x01\x00", b""])),
]
HAND.sort(key=lambda entry: entry[0])  # written in tag order


@st.composite
def hand_written(draw: st.DrawFn) -> tuple[bytes, str]:
    syntax = draw(st.sampled_from(SYNTAXES))
    implicit = syntax == str(ImplicitVRLittleEndian)
    parts = []
    for tag, vr, values in HAND:
        if draw(st.booleans()):
            value = draw(values)
            parts.append(_head(tag, vr, len(value), implicit) + value)
    return b"".join(parts), syntax


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hand_written())
def test_retrieve_ae_as_bytes_decodes_as_the_decoded_path(case: tuple[bytes, str]) -> None:
    """Identifiers as another implementation may write them (odd lengths, nulls, any byte):
    the bytes path's output decodes to the same elements and values as the decoded
    path's, and every byte outside Retrieve AE Title is the input's."""
    data, syntax = case
    rewritten = rewrite_retrieve_ae(Encoded(data, syntax), GUARD_AE)
    if syntax == str(ExplicitVRLittleEndian) and b"UN" in data:
        return  # may be declined for an explicit UN (the first test): the decoded path
    assert rewritten is not None  # flat, sorted, defined lengths: always walked
    assert _elements(rewritten.data, syntax) == _elements(_decoded_bytes(data, syntax), syntax)
    walked = Identifier.walk(data, syntax)
    assert walked is not None
    ae = walked.find(0x00080054)
    if ae is None:
        assert rewritten.data == data
    else:
        assert rewritten.data.startswith(data[: ae.start])
        assert rewritten.data.endswith(data[ae.end :])


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hand_written())
def test_query_level_and_keys_read_as_bytes_are_the_decoded_ones(case: tuple[bytes, str]) -> None:
    """The level and the keys the policy and the audit see are those of the decoded
    identifier, whichever path read them."""
    data, syntax = case
    event = SimpleNamespace(raw=Encoded(data, syntax), identifier=Encoded(data, syntax).dataset())
    decoded = SimpleNamespace(identifier=event.identifier)
    raw_query, raw_level, raw_keys = _read(event, research=False)
    _query, level, keys = _read(decoded, research=False)
    assert (raw_level, raw_keys) == (level, keys)
    if isinstance(raw_query, Encoded):
        assert raw_query.data == data  # goes upstream as it came
    # a research query is always decoded, never passed on as bytes
    assert isinstance(_read(event, research=True)[0], Dataset)


@pytest.mark.parametrize(
    "syntax", [str(ExplicitVRBigEndian), str(DeflatedExplicitVRLittleEndian), "1.2.3.4"]
)
def test_other_syntaxes_are_declined(syntax: str) -> None:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.RetrieveAETitle = "ARCHIVE"
    assert Identifier.walk(b"\x08\x00\x52\x00CS\x06\x00STUDY ", syntax) is None
    assert rewrite_retrieve_ae(Encoded(b"\x08\x00\x52\x00CS\x06\x00STUDY ", syntax), "X") is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x08\x00\x54\x00AE\x08\x00ARCHIVE",  # truncated value
        b"\x08\x00\x54\x00AE\x02\x00AB\x08\x00\x52\x00CS\x02\x00AB",  # unsorted
        b"\x08\x00\x00\x00UL\x04\x00\x10\x00\x00\x00\x08\x00\x54\x00AE\x02\x00AB",  # group length
        b"\x08\x00\x54\x00ZZ\x02\x00AB",  # no such VR
        b"\x08\x00\x10\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # undefined
        b"\x00\x00\x00\x01US\x02\x00\x20\x00",  # a command element
        b"\x08\x00\x54",  # a truncated header
    ],
)
def test_what_the_walk_cannot_take_exactly_is_declined(data: bytes) -> None:
    assert Identifier.walk(data, str(ExplicitVRLittleEndian)) is None
    assert rewrite_retrieve_ae(Encoded(data, str(ExplicitVRLittleEndian)), "X") is None
