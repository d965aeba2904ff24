"""``pack``: a folder -> one encrypted (optionally signed, optionally split) age package.

The package is the age encryption of a POSIX tar stream: the folder's files, then
``PACSGUARD-MANIFEST.json`` and, when signed, ``PACSGUARD-MANIFEST.sig``. Data flows
disk -> tar (hashing) -> pipe -> age -> volumes; memory stays bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pacsguard.pack import crypto, manifest, preflight, signing
from pacsguard.pack.agefile import DEFAULT_WORK_FACTOR
from pacsguard.pack.agekeys import Recipient, parse_recipient
from pacsguard.pack.errors import InputError, PackRefused
from pacsguard.pack.manifest import FileEntry, Preflight
from pacsguard.pack.pipe import run_pipeline
from pacsguard.pack.tarwrite import write_tar
from pacsguard.pack.tree import SourceFile, list_files
from pacsguard.pack.volumes import PackageSink

ProgressHook = Callable[[int, int], None]  # (bytes just done, total bytes)


@dataclass(frozen=True)
class PackResult:
    volumes: tuple[Path, ...]
    files: int
    bytes: int
    package_bytes: int
    manifest_sha256: str
    signer_fingerprint: str | None
    problems: tuple[str, ...]
    forced: bool


def _estimate(files: list[SourceFile]) -> int:
    """An upper bound of the package size, to size volume numbers."""
    tar = sum(1536 + -(-f.size // 512) * 512 + len(f.name) for f in files)
    listing = sum(200 + 2 * len(f.name) for f in files) + 65536
    return (tar + listing) * 65552 // 65536 + 1024


def _recipients(recipients: Sequence[str | Recipient]) -> list[Recipient]:
    return [parse_recipient(r) if isinstance(r, str) else r for r in recipients]


def _check_inputs(
    recipients: Sequence[object], passphrase: str | None, force: bool, reason: str | None
) -> None:
    if passphrase is not None and recipients:
        raise InputError("a package is encrypted to recipients or to a passphrase, not both")
    if passphrase is None and not recipients:
        raise InputError("no recipient: give --to RECIPIENT, --to-file FILE or a passphrase")
    if passphrase is not None and not passphrase:
        raise InputError("an empty passphrase is not allowed")
    if force and not (reason and reason.strip()):
        raise InputError("--force needs --reason TEXT, recorded in the package manifest")


def pack(
    source: Path,
    output: Path,
    *,
    recipients: Sequence[str | Recipient] = (),
    passphrase: str | None = None,
    signing_key: Path | Ed25519PrivateKey | None = None,
    volume_size: int | None = None,
    force: bool = False,
    reason: str | None = None,
    ocr: bool = True,
    strict: bool = False,
    work_factor: int = DEFAULT_WORK_FACTOR,
    progress: ProgressHook | None = None,
) -> PackResult:
    """Pack ``source`` into ``output`` (or ``output.001``… with ``volume_size``).

    Refuses (:class:`PackRefused`) a folder that fails :func:`preflight.preflight`
    unless ``force`` with a ``reason``, both then recorded in the manifest. ``strict``:
    review findings (free text verify could not prove safe) refuse it too.
    """
    targets = _recipients(recipients)
    _check_inputs(targets, passphrase, force, reason)
    key = signing.load_signing_key(signing_key) if isinstance(signing_key, Path) else signing_key
    files = list_files(source)
    problems = preflight.preflight(source, ocr=ocr, strict=strict, files=files)
    _refuse_unless_forced(source, problems, force)
    deid = preflight.read_deid_manifest(source)
    expected = preflight.expected_hashes(deid)
    signer_raw = signing.raw_public(key.public_key()) if key else None
    total = sum(f.size for f in files)
    manifest_bytes: list[bytes] = []

    def trailer(entries: list[FileEntry]) -> list[tuple[str, bytes]]:
        changed = sum(1 for e in entries if e.path in expected and expected[e.path] != e.sha256)
        found = list(problems)
        if changed:
            found.append(f"{changed} file(s) differ from the de-identification manifest's SHA-256")
            _refuse_unless_forced(source, found, force)
        data = manifest.build(
            entries,
            deid=preflight.deid_settings(deid),
            preflight=Preflight(tuple(found), force, reason if force else None),
            signer_public_key=signer_raw,
        )
        manifest_bytes.append(data)
        members = [(manifest.MANIFEST_NAME, data)]
        if key is not None:
            members.append((manifest.SIGNATURE_NAME, key.sign(data)))
        return members

    def tick(n: int) -> None:
        if progress is not None:
            progress(n, total)

    sink = PackageSink(output, volume_size, _estimate(files))
    try:
        writer = crypto.native_writer(
            sink, recipients=targets, passphrase=passphrase, work_factor=work_factor
        )
        if writer is not None:  # the tar stream is encrypted as it is written
            entries = write_tar(files, writer, trailer, tick)
            writer.close()
        else:  # pyrage pulls from a reader: a pipe between two threads
            entries, _ = run_pipeline(
                lambda out: write_tar(files, out, trailer, tick),
                lambda stream: crypto.encrypt(
                    stream, sink, recipients=targets, passphrase=passphrase,
                    work_factor=work_factor,
                ),
            )  # fmt: skip
        volumes = sink.commit()
    except BaseException:
        sink.discard()
        raise
    data = manifest_bytes[0]
    return PackResult(
        volumes=tuple(volumes),
        files=len(entries),
        bytes=sum(e.size for e in entries),
        package_bytes=sink.written,
        manifest_sha256=hashlib.sha256(data).hexdigest(),
        signer_fingerprint=signing.fingerprint(key.public_key()) if key else None,
        problems=tuple(manifest.parse(data).data["preflight"]["problems"]),
        forced=force,
    )


def _refuse_unless_forced(source: Path, problems: list[str], force: bool) -> None:
    if problems and not force:
        raise PackRefused(
            f"refusing to pack {source}: " + "; ".join(problems)
            + " (fix this, or override with --force --reason TEXT)"
        )  # fmt: skip
