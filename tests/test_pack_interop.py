"""Interoperability with the standard tools: Debian's `age` CLI, GNU tar and openssl.

A pacsguard package opens with ``age -d -i KEY | tar x``; what ``tar c | age -r``
produced (with the expected manifest) opens with ``pacsguard unpack``.
"""

from __future__ import annotations

import hashlib
import os
import pty
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from pacsguard.pack import MANIFEST_NAME, SIGNATURE_NAME, pack, unpack
from pacsguard.pack.manifest import FileEntry, Preflight, build
from test_pack_support import Keys, files_of

pytestmark = pytest.mark.skipif(
    not (shutil.which("age") and shutil.which("tar")), reason="needs the age CLI and tar"
)


def sh(command: str, cwd: Path | None = None) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, cwd=cwd)


def without_manifest(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}


def test_age_cli_and_tar_open_a_pacsguard_package(tree: Path, keys: Keys, tmp_path: Path) -> None:
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[keys.recipient], signing_key=keys.signing, ocr=False)
    out = tmp_path / "out"
    out.mkdir()
    sh(f"age -d -i {keys.identity} {package} | tar x -C {out}")
    got = files_of(out)
    assert without_manifest(got) == files_of(tree)
    assert set(got) - set(files_of(tree)) == {MANIFEST_NAME, SIGNATURE_NAME}
    if shutil.which("openssl"):  # the signature checks without pacsguard too
        sh(
            f"openssl pkeyutl -verify -pubin -inkey {keys.signing_pub} -rawin "
            f"-in {out / MANIFEST_NAME} -sigfile {out / SIGNATURE_NAME} >/dev/null"
        )


def test_age_cli_opens_volumes_joined_with_cat(tree: Path, keys: Keys, tmp_path: Path) -> None:
    (tree / "bulk.bin").write_bytes(os.urandom(100_000))
    package = tmp_path / "p.age"
    done = pack(
        tree,
        package,
        recipients=[keys.recipient],
        volume_size=20_000,
        force=True,
        reason="bulk.bin is a test file",
        ocr=False,
    )
    assert len(done.volumes) >= 5
    out = tmp_path / "out"
    out.mkdir()
    sh(f"cat {package}.* | age -d -i {keys.identity} | tar x -C {out}")
    assert without_manifest(files_of(out)) == files_of(tree)


def test_age_cli_opens_a_package_for_an_ssh_key(tree: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    sh(f"ssh-keygen -q -t ed25519 -N '' -f {key}")
    package = tmp_path / "p.age"
    pack(tree, package, recipients=[(tmp_path / "id_ed25519.pub").read_text()], ocr=False)
    out = tmp_path / "out"
    out.mkdir()
    sh(f"age -d -i {key} {package} | tar x -C {out}")
    assert without_manifest(files_of(out)) == files_of(tree)


def write_manifest(folder: Path) -> bytes:
    """The manifest a sender without pacsguard would write (what pack writes)."""
    entries = [
        FileEntry(name, hashlib.sha256(data).hexdigest(), len(data))
        for name, data in sorted(files_of(folder).items())
    ]
    data = build(entries, deid=None, preflight=Preflight(), signer_public_key=None)
    (folder / MANIFEST_NAME).write_bytes(data)
    return data


@pytest.mark.parametrize("armor", [False, True])
def test_pacsguard_opens_what_tar_and_age_made(
    tree: Path, keys: Keys, tmp_path: Path, armor: bool
) -> None:
    write_manifest(tree)
    package = tmp_path / "p.age"
    flag = "-a " if armor else ""
    sh(f"tar c -C {tree} . | age {flag}-r {keys.recipient} > {package}")
    opened = unpack(package, tmp_path / "out", identity=keys.identity)
    assert files_of(tmp_path / "out") == files_of(tree)
    assert opened.files == len(files_of(tree)) - 1


def test_pacsguard_checks_what_openssl_signed(tree: Path, keys: Keys, tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    write_manifest(tree)
    sh(
        f"openssl pkeyutl -sign -inkey {keys.signing} -rawin -in {tree / MANIFEST_NAME} "
        f"-out {tree / SIGNATURE_NAME}"
    )
    package = tmp_path / "p.age"
    sh(f"tar c -C {tree} . | age -r {keys.recipient} > {package}")
    with pytest.raises(Exception, match="names no signer"):  # the manifest must name its signer
        unpack(package, tmp_path / "a", identity=keys.identity)
    opened = unpack(package, tmp_path / "b", identity=keys.identity, verify_signer=keys.signing_pub)
    assert opened.signer_verified


def with_tty(argv: list[str], passphrase: str, prompts: int) -> None:
    """Run ``argv`` on a pseudo-terminal, answering its passphrase prompts (age reads /dev/tty)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp(argv[0], argv)
    seen, sent = b"", 0
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        while sent < min(prompts, seen.lower().count(b"passphrase")):
            os.write(fd, passphrase.encode() + b"\n")
            sent += 1
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")


def test_passphrase_packages_interoperate_both_ways(tree: Path, tmp_path: Path) -> None:
    secret = "correct horse battery staple"
    ours = tmp_path / "ours.age"
    pack(tree, ours, passphrase=secret, ocr=False)  # age's own work factor (18)
    tarball = tmp_path / "ours.tar"
    with_tty(["age", "-d", "-o", str(tarball), str(ours)], secret, prompts=1)
    out = tmp_path / "out"
    out.mkdir()
    sh(f"tar x -C {out} -f {tarball}")
    assert without_manifest(files_of(out)) == files_of(tree)

    write_manifest(tree)
    sh(f"tar c -C {tree} -f {tmp_path / 'theirs.tar'} .")
    theirs = tmp_path / "theirs.age"
    with_tty(["age", "-p", "-o", str(theirs), str(tmp_path / "theirs.tar")], secret, prompts=2)
    unpack(theirs, tmp_path / "back", passphrase=secret)
    assert files_of(tmp_path / "back") == files_of(tree)
