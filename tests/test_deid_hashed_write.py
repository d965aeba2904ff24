"""The byte-level path hashes its output as it writes it, instead of reading it back.

``fastpath.copy_hashed`` copies the Pixel Data through one buffer, giving each chunk to the
digest on its way: the SHA-256 the journal records (and ``pack`` checks) must be that of
the file as it lies on disk, exactly what hashing the file again gave before. Held to that
on hypothesis-made data (sizes around the buffer's, offsets, a destination that already
holds a header) and on whole runs of the sample corpus; the property's check is shown to
reject copies broken in the ways that matter (a byte written other than hashed, a chunk
hashed twice, a short write), and a short output is refused by the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacsguard.core.keys import ProjectKey
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.deid import DeidConfig, deidentify, fastpath
from pacsguard.sample import AnswerKey

Copy = Callable[[int, int, int, int, Callable[[memoryview], object], bytearray], None]
COPY = fastpath.copy_hashed  # as shipped, whatever a test patches


def _holds(copy: Copy, tmp: Path, data: bytes, head: bytes, offset: int, chunk: int) -> bool:
    """Whether ``copy`` of ``data[offset:]`` after ``head`` leaves the file its digest says."""
    source, target = tmp / "source", tmp / "target"
    source.write_bytes(data)
    digest = hashlib.sha256(head)
    src = os.open(source, os.O_RDONLY)
    dst = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(dst, head)
        copy(src, dst, offset, len(data) - offset, digest.update, bytearray(chunk))
    finally:
        os.close(src)
        os.close(dst)
    written = target.read_bytes()
    return (
        written == head + data[offset:]
        and digest.hexdigest() == hashlib.sha256(written).hexdigest()
    )


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=5000),
    head=st.binary(max_size=300),
    cut=st.floats(min_value=0, max_value=1),
    chunk=st.integers(min_value=1, max_value=2048),
    preadv=st.booleans(),
)
def test_the_digest_is_that_of_the_file_written(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    head: bytes,
    cut: float,
    chunk: int,
    preadv: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("copy")
    offset = int(len(data) * cut)
    saved = fastpath._PREADV
    fastpath._PREADV = preadv and saved  # the plain pread fallback too
    try:
        assert _holds(fastpath.copy_hashed, tmp, data, head, offset, chunk)
    finally:
        fastpath._PREADV = saved


def _written_other_than_hashed(src: int, dst: int, offset: int, count: int, *rest: Any) -> None:
    update, buffer = rest
    COPY(src, dst, offset, count, update, buffer)
    last = os.fstat(dst).st_size - 1
    os.pwrite(dst, bytes([os.pread(dst, 1, last)[0] ^ 1]), last)


def _hashed_twice(src: int, dst: int, offset: int, count: int, *rest: Any) -> None:
    update, buffer = rest
    COPY(src, dst, offset, count, lambda v: (update(v), update(v)), buffer)


def _short(src: int, dst: int, offset: int, count: int, *rest: Any) -> None:
    update, buffer = rest
    COPY(src, dst, offset, count, update, buffer)
    os.ftruncate(dst, os.fstat(dst).st_size - 1)


@pytest.mark.parametrize("broken", [_written_other_than_hashed, _hashed_twice, _short])
def test_the_property_rejects_a_broken_copy(tmp_path: Path, broken: Copy) -> None:
    data = bytes(range(256)) * 20
    assert _holds(fastpath.copy_hashed, tmp_path, data, b"HEAD", 100, 512)
    assert not _holds(broken, tmp_path, data, b"HEAD", 100, 512)


def test_a_source_that_shrinks_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(b"x" * 100)
    src = os.open(source, os.O_RDONLY)
    dst = os.open(tmp_path / "d", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="shrank"):
            fastpath.copy_hashed(src, dst, 0, 200, hashlib.sha256().update, bytearray(64))
    finally:
        os.close(src)
        os.close(dst)


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_recorded_digest_and_size_is_the_file_s(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path, jobs: int
) -> None:
    out = tmp_path / "out"
    report = deidentify(
        [sample_corpus[0]], out, key=project_key, config=DeidConfig(jobs=jobs, burned_in="keep")
    )
    assert report.paths["byte-level"] > 0 and report.quarantine == 0
    files = json.loads((out / DEID_MANIFEST_NAME).read_text())["files"]
    assert len(files) == report.output
    for entry in files:
        data = (out / entry["path"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_an_output_shorter_than_written_goes_to_quarantine(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail closed: the output on disk must hold every byte the digest was made of."""
    monkeypatch.setattr(fastpath, "copy_hashed", _short)
    out = tmp_path / "out"
    report = deidentify(
        [sample_corpus[0]], out, key=project_key, config=DeidConfig(jobs=1, burned_in="keep")
    )
    assert report.quarantine > 0  # every byte-level output with pixels (some have none)
    assert set(report.reasons) == {
        "post-write check: the output's size is not that of the bytes written"
    }
    files = json.loads((out / DEID_MANIFEST_NAME).read_text())["files"]
    for entry in files:  # the usual path's outputs: hashed by reading them back
        data = (out / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list(out.rglob(".tmp-*"))
