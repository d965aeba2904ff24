"""``unpack``: decrypt, check every hash and the signature, then put the files in place.

Files are extracted into a temporary folder beside OUTPUT while the age stream is
authenticated; only when the whole stream decrypted, the manifest (and its signature)
verified and every file matched it is that folder renamed to OUTPUT. On any failure
it is removed: nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pacsguard.core.io import fsync_dir
from pacsguard.pack import crypto, manifest, signing
from pacsguard.pack.agekeys import Identity, load_identities
from pacsguard.pack.errors import (
    DecryptionFailed,
    InputError,
    PackageInvalid,
    SignatureInvalid,
)
from pacsguard.pack.pipe import run_pipeline
from pacsguard.pack.tarread import Extracted, extract
from pacsguard.pack.volumes import VolumeReader, find_volumes

ProgressHook = Callable[[int, int], None]  # (bytes just read, total package bytes)


@dataclass(frozen=True)
class UnpackResult:
    output: Path
    files: int
    bytes: int
    signer_fingerprint: str | None
    signer_verified: bool  # checked against the key the recipient gave, not just the embedded one
    forced: bool
    manifest: dict[str, Any]


def needs_passphrase(package: Path) -> bool:
    """Whether ``package`` (a file, or a volume set) is encrypted to a passphrase."""
    return crypto.needs_passphrase(find_volumes(package)[0])


def _check_output(output: Path) -> None:
    if output.is_symlink():  # the package would land where the link points, if anywhere
        raise InputError(f"{output} is a symbolic link; unpack into a new or empty folder")
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):
        raise InputError(f"{output} already exists; unpack into a new or empty folder")


def _secrets(
    first: Path, identity: Path | None, identities: Sequence[Identity], passphrase: str | None
) -> tuple[list[Identity], str | None]:
    if crypto.needs_passphrase(first):
        if passphrase is None:
            raise DecryptionFailed(
                "this package is protected by a passphrase: give --passphrase-file FILE "
                "or --passphrase"
            )
        return [], passphrase
    if identities:
        return list(identities), None
    if passphrase is not None and identity is None:
        raise DecryptionFailed("this package is encrypted to age recipients: give --identity FILE")
    return load_identities(identity), None


def unpack(
    package: Path,
    output: Path,
    *,
    identity: Path | None = None,
    identities: Sequence[Identity] = (),
    passphrase: str | None = None,
    verify_signer: Path | Ed25519PublicKey | None = None,
    progress: ProgressHook | None = None,
) -> UnpackResult:
    """Open ``package`` into the new folder ``output``.

    ``identity`` is an identity file (else ``PACSGUARD_IDENTITY_FILE`` /
    ``PACSGUARD_IDENTITY``); with ``verify_signer`` the package must be signed by that
    Ed25519 public key.
    """
    volumes = find_volumes(package)
    _check_output(output)
    ids, secret = _secrets(volumes[0], identity, identities, passphrase)
    signer = (
        signing.load_public_key(verify_signer) if isinstance(verify_signer, Path) else verify_signer
    )
    total = sum(v.stat().st_size for v in volumes)

    def tick(n: int) -> None:
        if progress is not None:
            progress(n, total)

    made = _make_parents(output.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".tmp-unpack-", dir=output.parent))
        try:
            with VolumeReader(volumes, tick) as reader:
                _, found = run_pipeline(
                    lambda out: crypto.decrypt(reader, out, identities=ids, passphrase=secret),
                    lambda stream: extract(stream, staging),
                )
            result = _check(found, signer, output)
            _commit(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except BaseException:
        for folder in made:  # a refused package leaves nothing behind, parents included
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return result


def _make_parents(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones made, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make {folder}: {exc.strerror}") from None
    return missing


def _check(found: Extracted, signer: Ed25519PublicKey | None, output: Path) -> UnpackResult:
    if found.manifest is None:
        raise PackageInvalid(f"the package holds no {manifest.MANIFEST_NAME}")
    parsed = manifest.parse(found.manifest)
    fingerprint, verified = _check_signature(found, parsed, signer)
    _check_files(found, parsed)
    return UnpackResult(
        output=output,
        files=len(parsed.files),
        bytes=sum(entry.size for entry in parsed.files.values()),
        signer_fingerprint=fingerprint,
        signer_verified=verified,
        forced=bool((parsed.data.get("preflight") or {}).get("forced")),
        manifest=parsed.data,
    )


def _check_signature(
    found: Extracted, parsed: manifest.PackageManifest, signer: Ed25519PublicKey | None
) -> tuple[str | None, bool]:
    assert found.manifest is not None
    embedded = parsed.signer_public_key
    if signer is not None:
        if found.signature is None:
            raise SignatureInvalid("the package is not signed, but --verify-signer requires it")
        signing.verify(signer, found.signature, found.manifest)
        if embedded is not None and embedded != signing.raw_public(signer):
            raise SignatureInvalid("the manifest names another signer than the one verified")
        return signing.fingerprint(signer), True
    if found.signature is not None:
        if embedded is None:
            raise SignatureInvalid("the package holds a signature but its manifest names no signer")
        key = signing.public_from_raw(embedded)
        signing.verify(key, found.signature, found.manifest)
        return signing.fingerprint(key), False
    if embedded is not None:
        raise SignatureInvalid("the manifest names a signer but the package holds no signature")
    return None, False


def _check_files(found: Extracted, parsed: manifest.PackageManifest) -> None:
    listed, present = parsed.files, found.files
    missing = len(listed.keys() - present.keys())
    extra = len(present.keys() - listed.keys())
    altered = sum(1 for name, entry in present.items() if name in listed and listed[name] != entry)
    if missing:
        raise PackageInvalid(f"{missing} file(s) of the manifest are missing from the package")
    if extra:
        raise PackageInvalid(f"{extra} file(s) in the package are not in its manifest; refused")
    if altered:
        raise PackageInvalid(
            f"{altered} file(s) do not match their SHA-256 or size in the manifest: "
            "the package was altered"
        )


def _commit(staging: Path, output: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    staging.chmod(0o777 & ~mask)
    if output.is_dir():
        output.rmdir()  # empty, checked before
    staging.rename(output)
    fsync_dir(output.parent)
