"""The package manifest: every file's SHA-256 and size, counts, version, de-id settings.

It travels as the tar member ``PACSGUARD-MANIFEST.json``, written *after* the files
(their hashes are computed while they stream, in one read of the disk), followed by
``PACSGUARD-MANIFEST.sig`` when the sender signs. It names files only by their path
inside the package: no input path, no value read from inside a file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pacsguard import __version__
from pacsguard.pack.errors import PackageInvalid

MANIFEST_NAME = "PACSGUARD-MANIFEST.json"
SIGNATURE_NAME = "PACSGUARD-MANIFEST.sig"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
FORMAT = "pacsguard-package"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_SIGNATURE_BYTES = 1024


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight checks found, and whether the sender overrode them."""

    problems: tuple[str, ...] = ()
    forced: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class PackageManifest:
    files: dict[str, FileEntry]
    signer_public_key: bytes | None
    data: dict[str, Any]


def build(
    files: list[FileEntry],
    *,
    deid: dict[str, Any] | None,
    preflight: Preflight,
    signer_public_key: bytes | None,
) -> bytes:
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": "pacsguard",
        "version": __version__,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "counts": {"files": len(files), "bytes": sum(entry.size for entry in files)},
        "deid": deid,
        "preflight": {
            "problems": list(preflight.problems),
            "forced": preflight.forced,
            "reason": preflight.reason,
        },
        "signer": None
        if signer_public_key is None
        else {"algorithm": "ed25519", "public_key": base64.b64encode(signer_public_key).decode()},
        "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in files],
    }
    return (json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode()


def _invalid(what: str) -> PackageInvalid:
    return PackageInvalid(f"the package manifest is malformed ({what})")


def parse(raw: bytes) -> PackageManifest:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid("not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _invalid("not a pacsguard manifest")
    if data.get("format_version") != FORMAT_VERSION:
        raise PackageInvalid(f"unsupported package format version {data.get('format_version')!r}")
    entries = data.get("files")
    if not isinstance(entries, list):
        raise _invalid("no file list")
    files: dict[str, FileEntry] = {}
    for item in entries:
        entry = _entry(item)
        if entry.path in files or entry.path in RESERVED_NAMES:
            raise _invalid("a file is listed twice")
        files[entry.path] = entry
    return PackageManifest(files, _signer(data.get("signer")), data)


def _entry(item: object) -> FileEntry:
    if not isinstance(item, dict):
        raise _invalid("file entry")
    path, digest, size = item.get("path"), item.get("sha256"), item.get("size")
    if not isinstance(path, str) or not isinstance(digest, str) or len(digest) != 64:
        raise _invalid("file entry")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid("file size")
    return FileEntry(path, digest.lower(), size)


def _signer(signer: object) -> bytes | None:
    if signer is None:
        return None
    if not isinstance(signer, dict) or signer.get("algorithm") != "ed25519":
        raise _invalid("signer")
    try:
        raw = base64.b64decode(str(signer.get("public_key")), validate=True)
    except ValueError:
        raise _invalid("signer key") from None
    return raw
