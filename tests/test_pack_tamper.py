"""Tampered, truncated, re-signed or hostile packages are refused and leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from pacsguard.pack import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    PackageInvalid,
    PackError,
    SignatureInvalid,
    pack,
    unpack,
)
from test_pack_support import (
    Keys,
    decrypt_to_members,
    no_leftovers,
    reencrypt,
)


@pytest.fixture
def signed(tree: Path, keys: Keys, tmp_path: Path) -> Path:
    package = tmp_path / "signed.age"
    pack(tree, package, recipients=[keys.recipient], signing_key=keys.signing, ocr=False)
    return package


def refused(package: Path, keys: Keys, tmp_path: Path, error: type[Exception], match: str) -> None:
    out = tmp_path / "received"
    with pytest.raises(error, match=match):
        unpack(package, out, identity=keys.identity, verify_signer=keys.signing_pub)
    assert not out.exists()
    assert no_leftovers(tmp_path)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["payload", "last-byte", "header"])
def test_a_flipped_ciphertext_byte_is_refused(
    signed: Path, keys: Keys, tmp_path: Path, where: str
) -> None:
    size = signed.stat().st_size
    offset = {"payload": size // 2, "last-byte": size - 1, "header": 40}[where]
    flip(signed, offset)
    # the flipped byte lands on random key material: either refusal names the header
    expected = "damaged.*header|altered header" if where == "header" else "tampered with"
    refused(signed, keys, tmp_path, PackError, expected)


@pytest.mark.parametrize("keep", [0.5, 0.99, 100, 0])
def test_truncation_is_refused(signed: Path, keys: Keys, tmp_path: Path, keep: float) -> None:
    data = signed.read_bytes()
    cut = int(len(data) * keep) if keep < 1 else int(keep)
    signed.write_bytes(data[:cut])
    refused(signed, keys, tmp_path, PackageInvalid, "truncated|damaged|header")


def test_a_truncation_at_a_chunk_boundary_is_refused(
    tree: Path, keys: Keys, tmp_path: Path
) -> None:
    (tree / "extra.bin").write_bytes(bytes(300_000))
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], force=True, reason="test", ocr=False)
    data = package.read_bytes()
    header = data.index(b"\n---") + data[data.index(b"\n---") + 1 :].index(b"\n") + 2
    package.write_bytes(data[: header + 16 + 2 * (65536 + 16)])  # exactly two whole chunks
    with pytest.raises(PackageInvalid):
        unpack(package, tmp_path / "out", identity=keys.identity)
    assert not (tmp_path / "out").exists()


def _dicom_member(members: list[tuple[tarfile.TarInfo, bytes]]) -> int:
    return next(i for i, (m, _) in enumerate(members) if m.name.endswith(".dcm"))


def test_an_altered_file_is_refused(signed: Path, keys: Keys, tmp_path: Path) -> None:
    members = decrypt_to_members(signed, keys.identity)
    index = _dicom_member(members)
    info, data = members[index]
    members[index] = (info, data[:-1] + bytes([data[-1] ^ 1]))
    forged = reencrypt(members, keys.recipient, tmp_path / "forged.age")
    refused(forged, keys, tmp_path, PackageInvalid, "do not match")
    with pytest.raises(PackageInvalid, match="do not match"):  # also without a signer given
        unpack(forged, tmp_path / "other", identity=keys.identity)


def _rewrite_manifest(
    members: list[tuple[tarfile.TarInfo, bytes]], change: object
) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for info, data in members:
        if info.name == MANIFEST_NAME:
            manifest = json.loads(data)
            change(manifest)  # type: ignore[operator]
            data = json.dumps(manifest).encode()
        out.append((info, data))
    return out


def test_an_altered_file_with_a_matching_manifest_breaks_the_signature(
    signed: Path, keys: Keys, tmp_path: Path
) -> None:
    members = decrypt_to_members(signed, keys.identity)
    index = _dicom_member(members)
    info, data = members[index]
    new = data + b"\x00\x00"
    members[index] = (info, new)

    def update(manifest: dict[str, list[dict[str, object]]]) -> None:
        for entry in manifest["files"]:
            if entry["path"] == info.name:
                entry["sha256"], entry["size"] = hashlib.sha256(new).hexdigest(), len(new)

    forged = reencrypt(_rewrite_manifest(members, update), keys.recipient, tmp_path / "f.age")
    refused(forged, keys, tmp_path, SignatureInvalid, "does not verify")
    with pytest.raises(SignatureInvalid):  # the embedded signer key catches it too
        unpack(forged, tmp_path / "other", identity=keys.identity)


def test_a_stripped_signature_is_refused(signed: Path, keys: Keys, tmp_path: Path) -> None:
    members = decrypt_to_members(signed, keys.identity)
    members = [(i, d) for i, d in members if i.name != SIGNATURE_NAME]
    stripped = _rewrite_manifest(members, lambda m: m.update(signer=None))
    forged = reencrypt(stripped, keys.recipient, tmp_path / "f.age")
    refused(forged, keys, tmp_path, SignatureInvalid, "not signed")
    half = reencrypt(members, keys.recipient, tmp_path / "h.age")  # signer kept, sig removed
    with pytest.raises(SignatureInvalid, match="no signature"):
        unpack(half, tmp_path / "other", identity=keys.identity)


@pytest.mark.parametrize("change", ["drop-file", "add-file", "drop-manifest"])
def test_files_must_match_the_manifest_exactly(
    tree: Path, keys: Keys, tmp_path: Path, change: str
) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    members = decrypt_to_members(package, keys.identity)
    if change == "drop-file":
        members.pop(_dicom_member(members))
    elif change == "add-file":
        members.insert(0, (tarfile.TarInfo("smuggled.dcm"), b"not de-identified"))
    else:
        members = [(i, d) for i, d in members if i.name != MANIFEST_NAME]
    forged = reencrypt(members, keys.recipient, tmp_path / "f.age")
    with pytest.raises(PackageInvalid, match=r"missing|not in its manifest|no PACSGUARD"):
        unpack(forged, tmp_path / "out", identity=keys.identity)
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


def _hostile(kind: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo({"traversal": "../evil.txt", "absolute": "/tmp/evil.txt"}.get(kind, "x"))
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "etc/passwd"
    elif kind == "device":
        info.type = tarfile.CHRTYPE
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    return info, b"evil" if info.isfile() else b""


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_hostile_members_are_refused(tree: Path, keys: Keys, tmp_path: Path, kind: str) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    members = decrypt_to_members(package, keys.identity)
    members.insert(1, _hostile(kind))
    forged = reencrypt(members, keys.recipient, tmp_path / "f.age")
    with pytest.raises(PackageInvalid, match="refused"):
        unpack(forged, tmp_path / "deep" / "out", identity=keys.identity)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "deep").exists()  # nor the parent folder it made for the output


def test_a_duplicate_member_is_refused(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    members = decrypt_to_members(package, keys.identity)
    members.append(members[_dicom_member(members)])
    forged = reencrypt(members, keys.recipient, tmp_path / "f.age")
    with pytest.raises(PackageInvalid, match="twice"):
        unpack(forged, tmp_path / "out", identity=keys.identity)


def test_not_a_package(keys: Keys, tmp_path: Path) -> None:
    junk = tmp_path / "junk.age"
    junk.write_bytes(b"hello, this is not age\n" * 10)
    with pytest.raises(PackageInvalid, match="not a readable age package"):
        unpack(junk, tmp_path / "out", identity=keys.identity)


def test_a_name_part_over_255_bytes_is_refused_not_an_internal_error(
    tree: Path, keys: Keys, tmp_path: Path
) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    members = decrypt_to_members(package, keys.identity)
    info = tarfile.TarInfo("d" * 300 + "/x.txt")
    members.insert(1, (info, b"x"))
    forged = reencrypt(members, keys.recipient, tmp_path / "f.age")
    with pytest.raises(PackageInvalid, match="over 255 bytes"):
        unpack(forged, tmp_path / "out", identity=keys.identity)
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


@pytest.mark.parametrize("zeros", [0, 1024, 3 << 20])
def test_data_after_the_archive_is_refused_wherever_it_hides(
    tree: Path, keys: Keys, tmp_path: Path, zeros: int
) -> None:
    """tarfile reads up to a MiB past the archive's end: bytes hidden within it were
    unpacked, only those further away refused (campaign 06)."""
    import io

    import pyrage

    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    members = decrypt_to_members(package, keys.identity)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    plain = buffer.getvalue() + b"\0" * zeros + b"HIDDEN PAYLOAD"
    forged = tmp_path / "f.age"
    forged.write_bytes(pyrage.encrypt(plain, [pyrage.x25519.Recipient.from_str(keys.recipient)]))
    with pytest.raises(PackageInvalid, match="data after the end of its archive"):
        unpack(forged, tmp_path / "out", identity=keys.identity)
    assert not (tmp_path / "out").exists() and no_leftovers(tmp_path)


def test_an_archive_padded_with_zeros_still_opens(tree: Path, keys: Keys, tmp_path: Path) -> None:
    import pyrage

    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], ocr=False)
    plain = pyrage.decrypt(
        package.read_bytes(),
        [pyrage.x25519.Identity.from_str(keys.identity.read_text().splitlines()[-1])],
    )
    padded = tmp_path / "padded.age"
    recipient = pyrage.x25519.Recipient.from_str(keys.recipient)
    padded.write_bytes(pyrage.encrypt(plain + b"\0" * (5 << 20), [recipient]))
    assert unpack(padded, tmp_path / "out", identity=keys.identity).files >= 1


def test_an_output_that_is_a_symbolic_link_is_refused(
    signed: Path, keys: Keys, tmp_path: Path
) -> None:
    from pacsguard.pack.errors import InputError

    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(InputError, match="symbolic link"):
        unpack(signed, tmp_path / "link", identity=keys.identity)
    assert not any((tmp_path / "empty").iterdir())


def test_a_refused_package_leaves_no_parent_folder_behind(
    signed: Path, keys: Keys, tmp_path: Path
) -> None:
    flip(signed, signed.stat().st_size // 2)
    with pytest.raises(PackError):
        unpack(signed, tmp_path / "new" / "parents" / "out", identity=keys.identity)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("name", "reason"),
    [(b"site\\notes.txt", "unsafe path"), (b"caf\xe9.txt", "not UTF-8")],
    ids=["backslash", "latin-1"],
)
def test_pack_refuses_before_encrypting_a_name_unpack_would_refuse(
    tree: Path, keys: Keys, tmp_path: Path, name: bytes, reason: str
) -> None:
    """A backslash was packed (exit 0) into a package that unpack then refused whole; a name
    that is not UTF-8 failed at the manifest, every file streamed (campaign 04, 05)."""
    import os

    from pacsguard.pack.errors import InputError

    (Path(os.fsdecode(bytes(tree) + b"/" + name))).write_text("notes")
    package = tmp_path / "p.age"
    with pytest.raises(InputError, match=f"{reason}, which unpack refuses"):
        pack(tree, package, recipients=[keys.recipient], ocr=False, force=True, reason="notes")
    assert not package.exists() and no_leftovers(tmp_path)
