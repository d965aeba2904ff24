"""Keys and the pseudonym contract shared by images and tables."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacsguard.core.errors import KeyFileError
from pacsguard.core.io import atomic_write_bytes, iter_inputs
from pacsguard.core.keys import ProjectKey, load_key, new_key
from pacsguard.core.pseudonym import Pseudonymizer, normalise


def test_new_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    key = new_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key(path) == key
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        new_key(path)
    assert "secret" in repr(key) and key.material.hex() not in repr(key)


def test_keys_readable_by_others_or_malformed_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    new_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)
    bad = tmp_path / "bad"
    bad.write_text("not hex")
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="hex"):
        load_key(bad)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "missing")


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACSGUARD_KEY_FILE", raising=False)
    monkeypatch.setenv("PACSGUARD_KEY", "ab" * 32)
    assert load_key().material == bytes([0xAB]) * 32
    monkeypatch.delenv("PACSGUARD_KEY")
    with pytest.raises(KeyFileError, match="no project key"):
        load_key()


def test_normalisation_is_part_of_the_contract() -> None:
    pseudo = Pseudonymizer(ProjectKey(bytes(32)))
    assert normalise(" ipp123\x00 ") == "IPP123"
    assert pseudo.patient_id("IPP123") == pseudo.patient_id(" ipp123\x00")
    assert pseudo.patient_id("IPP123") != pseudo.patient_id("IPP124")
    assert pseudo.uid("1.2.3 ") == pseudo.uid("1.2.3\x00") != pseudo.uid("1.2.30")


def test_pseudonyms_are_valid_for_their_vr_and_stable() -> None:
    pseudo = Pseudonymizer(ProjectKey(bytes(32)))
    pid = pseudo.patient_id("12345")
    assert pid.startswith("PG") and len(pid) == 18 and pid.isalnum()
    assert pid == "PG" + pseudo.token("patient-id", "12345")
    uid = pseudo.uid("1.2.840.1")
    assert uid.startswith("2.25.") and len(uid) <= 44 and uid.replace(".", "").isdigit()
    assert len(pseudo.accession("RX1")) <= 16
    other = Pseudonymizer(ProjectKey(bytes([1]) * 32))
    assert other.patient_id("12345") != pid and other.uid("1.2.840.1") != uid


def test_date_offsets_stay_in_range_and_are_never_zero() -> None:
    pseudo = Pseudonymizer(ProjectKey(bytes(32)), shift_range=(-3, 3))
    offsets = {pseudo.date_offset_days(f"P{i}") for i in range(300)}
    assert 0 not in offsets and offsets <= {-3, -2, -1, 1, 2, 3} and len(offsets) >= 5
    with pytest.raises(ValueError):
        Pseudonymizer(ProjectKey(bytes(32)), shift_range=(5, 1))


def test_atomic_writes_leave_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "f.bin"
    atomic_write_bytes(target, b"one")

    def explode(handle: object) -> None:
        raise RuntimeError("disk full")

    from pacsguard.core.io import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_bytes() == b"one"
    assert os.listdir(target.parent) == ["f.bin"]
    assert [i.label for i in iter_inputs([tmp_path])] == [str(target)]


def test_inputs_are_walked_in_order_and_excluded_folders_pruned(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for name in ["b/2.dcm", "b/1.dcm", "a.dcm", "out/x.dcm", "c/.tmp-1", "c/d/3.dcm"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "link.dcm").symlink_to(root / "out" / "x.dcm")
    (root / "dirlink").symlink_to(root / "b")
    found = [
        Path(i.label).relative_to(root).as_posix() for i in iter_inputs([root], [root / "out"])
    ]
    assert found == ["a.dcm", "b/1.dcm", "b/2.dcm", "c/d/3.dcm"]
    assert list(iter_inputs([root / "out" / "x.dcm"], [root / "out"])) == []
    item = next(iter_inputs([root / "a.dcm"]))
    assert (item.size, item.mtime_ns) == (1, (root / "a.dcm").stat().st_mtime_ns)


def test_prefetch_stays_within_its_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from pacsguard.core import io

    hinted: list[int] = []
    moved = threading.Event()

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert (offset, length, advice) == (0, 0, os.POSIX_FADV_WILLNEED)
        hinted.append(fd)
        moved.set()

    monkeypatch.setattr(io.os, "posix_fadvise", fadvise)
    files = []
    for number in range(10):
        path = tmp_path / f"{number}.dcm"
        path.write_bytes(b"x" * 100)
        files.append((path, 100))
    with io.Prefetcher(files, window=250).start() as prefetch:
        deadline = time.monotonic() + 5
        while len(hinted) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert len(hinted) == 3  # 300 bytes hinted, over 250: it waits for the workers
        moved.clear()
        prefetch.consumed(500)
        assert moved.wait(5)
        while len(hinted) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert len(hinted) == 8  # 800 hinted - 500 consumed > 250
    hinted.clear()
    files.insert(0, (tmp_path / "missing.dcm", 100))  # a vanished file is skipped
    io.Prefetcher(files, window=10_000)._run()
    assert len(hinted) == 10


def test_manifest_json_is_valid_sorted_and_one_line_per_list_entry() -> None:
    import json

    from pacsguard.core.manifest import render_json

    payload = {
        "files": [{"size": 3, "path": "a/b.dcm"}, {"path": "é", "size": None}],
        "counts": {"output": 2, "pending": 0, "empty": {}},
        "none": [],
    }
    text = render_json(payload)
    assert json.loads(text) == payload
    assert '    {"path": "a/b.dcm", "size": 3},\n    {"path": "é", "size": null}\n' in text
    assert text.index('"counts"') < text.index('"files"') < text.index('"none"')


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3, unique=True),
    values=st.lists(st.text(max_size=12), min_size=1, max_size=6),
)
def test_remembered_pseudonyms_are_the_keyed_digest_of_their_own_key(
    keys: list[bytes], values: list[str]
) -> None:
    """Digests are remembered between files: each answer is still HMAC-SHA256 under the
    key it was asked with, whatever was asked before under another key."""
    for _ in range(2):
        for key in keys:
            pseudo = Pseudonymizer(ProjectKey(key))
            for value in values:
                message = b"patient-id\x00" + normalise(value).encode("utf-8")
                digest = hmac.new(key, message, hashlib.sha256).digest()
                expected = "PG" + base64.b32encode(digest).decode("ascii")[:16]
                assert pseudo.patient_id(value) == expected
                assert pseudo.digest("patient-id", normalise(value)) == digest
                uid = hmac.new(key, b"uid\x00" + value.strip(" \x00").encode(), hashlib.sha256)
                assert pseudo.uid(value) == "2.25." + str(int.from_bytes(uid.digest()[:16], "big"))
