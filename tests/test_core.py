"""Keys and the pseudonym contract shared by images and tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
