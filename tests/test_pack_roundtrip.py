"""pack/unpack round trips: recipients, passphrase, signatures, volumes, keys."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacsguard.core.errors import InputError, KeyFileError
from pacsguard.pack import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    DecryptionFailed,
    PackageInvalid,
    PackError,
    SignatureInvalid,
    agefile,
    new_identity,
    pack,
    parse_size,
    unpack,
)
from test_pack_support import WORK_FACTOR, Keys, files_of, no_leftovers


def test_one_recipient_round_trip(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "study.age"
    done = pack(tree, package, recipients=[keys.recipient], ocr=False)
    assert done.volumes == (package,) and done.files == 4 and not done.forced
    assert package.read_bytes().startswith(b"age-encryption.org/v1\n")
    opened = unpack(package, tmp_path / "received", identity=keys.identity)
    got = files_of(tmp_path / "received")
    assert {k: v for k, v in got.items() if k != MANIFEST_NAME} == files_of(tree)
    manifest = json.loads(got[MANIFEST_NAME])
    assert manifest["counts"] == {"files": 4, "bytes": sum(map(len, files_of(tree).values()))}
    assert manifest["deid"]["profile"]["options"] == ["clean-descriptors"]
    assert manifest["version"] and manifest["preflight"]["forced"] is False
    assert str(tree) not in got[MANIFEST_NAME].decode()  # no local path travels
    assert opened.files == 4 and opened.signer_fingerprint is None
    assert no_leftovers(tmp_path)


def test_several_recipients_each_open_it(tree: Path, keys: Keys, tmp_path: Path) -> None:
    second = tmp_path / "second.key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ssh")], check=True
    )
    recipients = [keys.recipient, new_identity(second), (tmp_path / "ssh.pub").read_text()]
    package = tmp_path / "p.age"
    pack(tree, package, recipients=recipients, ocr=False)
    for number, identity in enumerate([keys.identity, second, tmp_path / "ssh"]):
        unpack(package, tmp_path / f"out{number}", identity=identity)
        assert files_of(tmp_path / f"out{number}").keys() > files_of(tree).keys()


def test_identity_from_environment(
    tree: Path, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    monkeypatch.setenv("PACSGUARD_IDENTITY", keys.identity.read_text())
    unpack(package, tmp_path / "a")
    monkeypatch.delenv("PACSGUARD_IDENTITY")
    monkeypatch.setenv("PACSGUARD_IDENTITY_FILE", str(keys.identity))
    unpack(package, tmp_path / "b")
    monkeypatch.delenv("PACSGUARD_IDENTITY_FILE")
    with pytest.raises(KeyFileError, match="no identity"):
        unpack(package, tmp_path / "c")


def test_passphrase_round_trip(tree: Path, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, passphrase="correct horse", work_factor=WORK_FACTOR, ocr=False)
    assert b"\n-> scrypt " in package.read_bytes()[:200]
    unpack(package, tmp_path / "out", passphrase="correct horse")
    assert files_of(tmp_path / "out").keys() > files_of(tree).keys()
    with pytest.raises(DecryptionFailed, match="wrong passphrase"):
        unpack(package, tmp_path / "bad", passphrase="wrong horse")
    with pytest.raises(DecryptionFailed, match="protected by a passphrase"):
        unpack(package, tmp_path / "none")
    assert not (tmp_path / "bad").exists() and no_leftovers(tmp_path)


def _data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"z" * (size % 256)


@pytest.mark.parametrize("size", [0, 5, 65536, 65537, 3 * 65536])
def test_streaming_scrypt_is_read_by_rage(size: int) -> None:
    ours = io.BytesIO()
    agefile.encrypt_io(io.BytesIO(_data(size)), ours, "pw", WORK_FACTOR)
    assert pyrage.passphrase.decrypt(ours.getvalue(), "pw") == _data(size)


def test_wrong_identity_is_a_clear_error(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    stranger = tmp_path / "stranger.key"
    new_identity(stranger)
    with pytest.raises(DecryptionFailed, match="wrong identity"):
        unpack(package, tmp_path / "out", identity=stranger)
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


def test_signed_round_trip(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    done = pack(tree, package, recipients=[keys.recipient], signing_key=keys.signing, ocr=False)
    checked = unpack(
        package, tmp_path / "a", identity=keys.identity, verify_signer=keys.signing_pub
    )
    assert checked.signer_verified and checked.signer_fingerprint == done.signer_fingerprint
    assert (tmp_path / "a" / SIGNATURE_NAME).stat().st_size == 64
    unchecked = unpack(package, tmp_path / "b", identity=keys.identity)
    assert not unchecked.signer_verified and unchecked.signer_fingerprint == done.signer_fingerprint


def test_wrong_signer_and_unsigned_are_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other_pub = tmp_path / "other.key.pub"
    from pacsguard.pack import new_signing_key

    new_signing_key(other)
    signed, unsigned = tmp_path / "s.age", tmp_path / "u.age"
    pack(tree, signed, recipients=[keys.recipient], signing_key=keys.signing, ocr=False)
    pack(tree, unsigned, recipients=[keys.recipient], ocr=False)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        unpack(signed, tmp_path / "a", identity=keys.identity, verify_signer=other_pub)
    with pytest.raises(SignatureInvalid, match="not signed"):
        unpack(unsigned, tmp_path / "b", identity=keys.identity, verify_signer=keys.signing_pub)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert no_leftovers(tmp_path)


def test_volumes(tree: Path, keys: Keys, tmp_path: Path) -> None:
    from test_pack_support import make_tree

    big = make_tree(tmp_path / "big", count=3, rows=128)  # ~100 KB
    package = tmp_path / "p.age"
    done = pack(big, package, recipients=[keys.recipient], volume_size=16 * 1024, ocr=False)
    assert len(done.volumes) > 3 and not package.exists()
    assert [v.name for v in done.volumes[:2]] == ["p.age.001", "p.age.002"]
    assert all(v.stat().st_size == 16 * 1024 for v in done.volumes[:-1])
    unpack(package, tmp_path / "a", identity=keys.identity)
    unpack(done.volumes[0], tmp_path / "b", identity=keys.identity)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    with pytest.raises(InputError, match="first volume"):
        unpack(done.volumes[1], tmp_path / "c", identity=keys.identity)
    done.volumes[-1].unlink()  # a lost last volume: the age stream is truncated
    with pytest.raises(PackageInvalid):
        unpack(package, tmp_path / "d", identity=keys.identity)
    done.volumes[1].unlink()
    with pytest.raises(PackError, match=r"volume 2 .* missing"):
        unpack(package, tmp_path / "e", identity=keys.identity)
    assert no_leftovers(tmp_path)


def test_parse_size() -> None:
    assert parse_size("500M") == 500 << 20
    assert parse_size("4GiB") == 4 << 30
    assert parse_size("2kb") == 2048
    with pytest.raises(InputError):
        parse_size("lots")


def test_keys_are_private_and_refused_when_readable(keys: Keys, tmp_path: Path) -> None:
    assert stat.S_IMODE(keys.identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.signing.stat().st_mode) == 0o600
    assert keys.recipient.startswith("age1")
    assert "AGE-SECRET-KEY-1" in keys.identity.read_text()
    package = tmp_path / "x.age"
    package.write_bytes(pyrage.encrypt(b"", [pyrage.x25519.Recipient.from_str(keys.recipient)]))
    keys.identity.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        unpack(package, tmp_path / "out", identity=keys.identity)
    with pytest.raises(KeyFileError, match="already exists"):
        new_identity(keys.identity)


def test_signing_key_readable_by_others_is_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    keys.signing.chmod(0o640)
    with pytest.raises(KeyFileError, match="accessible by other users"):
        pack(tree, tmp_path / "p.age", recipients=[keys.recipient], signing_key=keys.signing)
    assert not (tmp_path / "p.age").exists()


def test_existing_outputs_are_not_overwritten(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    with pytest.raises(InputError, match="already exists"):
        pack(tree, package, recipients=[keys.recipient], ocr=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(InputError, match="already exists"):
        unpack(package, tmp_path / "full", identity=keys.identity)
    (tmp_path / "empty").mkdir()
    unpack(package, tmp_path / "empty", identity=keys.identity)


def test_recipient_and_passphrase_are_exclusive(tree: Path, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        pack(tree, tmp_path / "p", recipients=[keys.recipient], passphrase="x", ocr=False)
    with pytest.raises(InputError, match="no recipient"):
        pack(tree, tmp_path / "p", ocr=False)
    with pytest.raises(KeyFileError, match="unsupported recipient"):
        pack(tree, tmp_path / "p", recipients=["AGE-SECRET-KEY-1XYZ"], ocr=False)


@pytest.mark.parametrize("size", [0, 5, 65536, 65537, 3 * 65536])
def test_native_x25519_is_read_by_rage_and_the_age_cli(size: int, tmp_path: Path) -> None:
    """The X25519 writer against two other implementations, every recipient of a file
    opening it, at the chunk boundaries of the STREAM."""
    import shutil
    import subprocess

    identities = [pyrage.x25519.Identity.generate() for _ in range(2)]
    recipients = [str(i.to_public()) for i in identities]
    ours = io.BytesIO()
    agefile.encrypt_to_x25519(io.BytesIO(_data(size)), ours, recipients)
    for identity in identities:
        assert pyrage.decrypt(ours.getvalue(), [identity]) == _data(size)
    age = shutil.which("age")
    assert age is not None, "the age CLI (Debian package age) is a test peer"
    key = tmp_path / "id.txt"
    key.write_text(str(identities[1]) + "\n")
    opened = subprocess.run(
        [age, "-d", "-i", str(key)], input=ours.getvalue(), capture_output=True, check=True
    )
    assert opened.stdout == _data(size)
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(ours.getvalue(), [stranger])


def test_x25519_recipients_are_checked() -> None:
    good = str(pyrage.x25519.Identity.generate().to_public())
    assert len(agefile.x25519_public_key(good)) == 32
    flipped = good[:-1] + ("q" if good[-1] != "q" else "p")
    for bad in (flipped, good.replace("age1", "agf1"), "age1", good + "x", good[:-7]):
        with pytest.raises(ValueError):
            agefile.x25519_public_key(bad)


_IDENTITY = pyrage.x25519.Identity.generate()


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([0, 1, 65535, 65536, 65537, 2 * 65536, 200_000]),
    splits=st.lists(st.sampled_from([1, 7, 65535, 65536, 65537, 300_000]), min_size=1),
)
def test_age_writer_any_write_sizes(size: int, splits: list[int]) -> None:
    """However the tar stream is cut into writes, the chunks (and the last flag) are age's."""
    data = _data(size)
    out = io.BytesIO()
    writer = agefile.x25519_writer(out, [str(_IDENTITY.to_public())])
    position, turn = 0, 0
    while position < size:
        step = splits[turn % len(splits)]
        writer.write(data[position : position + step])
        position, turn = position + step, turn + 1
    writer.close()
    assert pyrage.decrypt(out.getvalue(), [_IDENTITY]) == data


@settings(max_examples=40, deadline=None)
@given(
    volume=st.sampled_from([None, 1024, 5000, 3 << 20]),
    writes=st.lists(st.integers(1, 3 << 20), min_size=1, max_size=8),
)
def test_volume_writeback_covers_each_part_once(volume: int | None, writes: list[int]) -> None:
    """The early-writeback hints a package's volumes get are contiguous byte ranges of the
    bytes already written to that volume, never overlapping, and the bytes are untouched."""
    from pacsguard.pack import volumes

    asked: dict[int, list[tuple[int, int]]] = {}

    def hint(fd: int, offset: int, length: int) -> None:
        assert length > 0 and os.fstat(fd).st_size >= offset + length  # flushed before the hint
        asked.setdefault(os.fstat(fd).st_ino, []).append((offset, length))

    data = _data(sum(writes))
    with tempfile.TemporaryDirectory() as work, pytest.MonkeyPatch.context() as patch:
        patch.setattr(volumes, "WRITEBACK_STEP", 1 << 20)
        patch.setattr(volumes, "start_range_writeback", hint)
        sink = volumes.PackageSink(Path(work) / "p.age", volume, estimate=sum(writes))
        position = 0
        for size in writes:
            sink.write(data[position : position + size])
            position += size
        parts = sink.commit()
        assert b"".join(p.read_bytes() for p in parts) == data
    for ranges in asked.values():
        ends = [0] + [offset + length for offset, length in ranges]
        assert [offset for offset, _ in ranges] == ends[:-1]  # contiguous, from 0
    if volume is None and sum(writes) >= 2 << 20:
        assert asked  # a large single volume does get hints


_OTHERS = [pyrage.x25519.Identity.generate() for _ in range(2)]


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, 65535, 65536, 65537, 2 * 65536, 200_000]),
    ours=st.integers(0, 2),
    recipients=st.permutations([0, 1, 2]),
)
def test_native_x25519_decryption_matches_rage(size: int, ours: int, recipients: list[int]) -> None:
    """Files rage encrypts to one to three recipients open natively with any of their
    identities, to rage's own plaintext; a file for other recipients does not open."""
    everyone = [_IDENTITY, *_OTHERS]
    data = _data(size)
    chosen = [everyone[i] for i in recipients[: 1 + ours]]
    sealed = pyrage.encrypt(data, [i.to_public() for i in chosen])
    out = io.BytesIO()
    agefile.decrypt_x25519_io(io.BytesIO(sealed), out, [str(chosen[-1])])
    assert out.getvalue() == data == pyrage.decrypt(sealed, [chosen[-1]])
    strangers = [str(i) for i in everyone if i not in chosen]
    if strangers:
        with pytest.raises(DecryptionFailed, match="none of the given identities"):
            agefile.decrypt_x25519_io(io.BytesIO(sealed), io.BytesIO(), strangers)


def test_native_x25519_decryption_refuses_what_rage_refuses() -> None:
    """An altered header, a flipped payload byte, a cut stream or a payload with bytes after
    its last chunk: refused, as rage refuses them, and never silently shortened."""
    data = _data(3 * 65536 + 5)
    sealed = pyrage.encrypt(data, [_IDENTITY.to_public()])
    header_end = sealed.index(b"\n---") + 1
    damaged = {
        "header": sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:],
        "mac": sealed[: header_end + 5]
        + bytes([sealed[header_end + 5] ^ 1])
        + sealed[header_end + 6 :],
        "payload": sealed[:-100] + bytes([sealed[-100] ^ 1]) + sealed[-99:],
        "cut at a chunk": sealed[: len(sealed) - (5 + 16)],  # the flagged last chunk gone
        "cut": sealed[:-7],
        "trailing": sealed + b"\x00" * 17,
    }
    for blob in damaged.values():
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(blob, [_IDENTITY])
        with pytest.raises((PackageInvalid, DecryptionFailed)):
            agefile.decrypt_x25519_io(io.BytesIO(blob), io.BytesIO(), [str(_IDENTITY)])


def test_every_flipped_header_byte_is_refused_as_a_damaged_header() -> None:
    """Each byte of a two-recipient header flipped in turn: the native reader refuses it as
    a damaged header or as not opening with the identity, never with plaintext, whichever
    base64, share, body or MAC byte it lands on."""
    sealed = pyrage.encrypt(_data(70_000), [_IDENTITY.to_public(), _OTHERS[0].to_public()])
    header_end = sealed.index(b"\n---") + len(b"\n--- ") + 43 + 1
    intro = len(agefile.INTRO) + 1
    for offset in range(header_end):
        blob = sealed[:offset] + bytes([sealed[offset] ^ 0x01]) + sealed[offset + 1 :]
        out = io.BytesIO()
        with pytest.raises((PackageInvalid, DecryptionFailed)) as refused:
            agefile.decrypt_x25519_io(io.BytesIO(blob), out, [str(_IDENTITY)])
        if offset >= intro:
            assert re.search("damaged.*header|altered header|identities", str(refused.value))
        assert out.getvalue() == b""  # nothing released before the header authenticated
