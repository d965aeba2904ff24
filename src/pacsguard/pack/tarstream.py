"""Tar streams: written with each file's SHA-256 computed on the way, read back safely.

Writing reads every file once; the manifest (built from those hashes) and its
signature are appended as the last members. Reading accepts only regular files and
folders with relative paths inside the destination: no absolute path, no ``..``, no
link, device or FIFO. It hashes every file while writing it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from pacsguard.pack.errors import InputError, PackageInvalid
from pacsguard.pack.manifest import MAX_MANIFEST_BYTES, RESERVED_NAMES, FileEntry
from pacsguard.pack.tree import SourceFile

COPY = 1 << 20
Progress = Callable[[int], None]


class _HashingReader:
    def __init__(self, handle: BinaryIO, progress: Progress | None) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        if self.progress is not None:
            self.progress(len(data))
        return data


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""  # the sender's account name does not travel
    return info


def write_tar(
    files: list[SourceFile],
    out: BinaryIO,
    trailer: Callable[[list[FileEntry]], list[tuple[str, bytes]]],
    progress: Progress | None = None,
) -> list[FileEntry]:
    """Stream ``files`` then the members ``trailer(entries)`` returns, as a POSIX tar."""
    entries: list[FileEntry] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY) as tar:
        tar.copybufsize = COPY  # type: ignore[attr-defined]  # (TarFile attribute, not in stubs)
        for item in files:
            with item.path.open("rb") as handle:
                before = os.fstat(handle.fileno())
                reader = _HashingReader(handle, progress)
                try:
                    tar.addfile(_info(item.name, before.st_size, before.st_mtime), reader)
                except OSError as exc:
                    if exc.errno is None:  # tarfile: "unexpected end of data"
                        raise InputError(f"{item.path} shrank while it was being packed") from None
                    raise
                if os.fstat(handle.fileno()).st_size != before.st_size:
                    raise InputError(f"{item.path} changed while it was being packed")
            entries.append(FileEntry(item.name, reader.digest.hexdigest(), before.st_size))
        for name, data in trailer(entries):
            tar.addfile(_info(name, len(data), time.time()), io.BytesIO(data))
    return entries


@dataclass
class Extracted:
    """What a tar stream held: its files (hashed as written), manifest and signature."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    manifest: bytes | None = None
    signature: bytes | None = None


def safe_name(raw: str) -> str:
    """A member name as a relative '/'-path, or refuse it."""
    if "\x00" in raw or "\\" in raw or raw.startswith("/"):
        raise PackageInvalid("the package holds a member with an unsafe path; refused")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PackageInvalid("the package holds a member with a '..' path; refused")
    return "/".join(parts)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "non-regular member"


def extract(stream: BinaryIO, dest: Path) -> Extracted:
    """Extract a tar stream into the empty folder ``dest``, hashing every file."""
    found = Extracted()
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=COPY) as tar:
            for member in tar:
                _extract_member(tar, member, dest, found)
    except tarfile.TarError:
        raise PackageInvalid("the package does not hold a valid tar stream") from None
    while chunk := stream.read(COPY):
        if chunk.count(0) != len(chunk):
            raise PackageInvalid("the package holds data after the end of its archive")
    return found


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, found: Extracted
) -> None:
    name = safe_name(member.name)
    if member.isdir():
        if name:
            _make_dirs(dest, name)
        return
    if not member.isreg() or member.issparse():
        raise PackageInvalid(f"the package holds a {_kind(member)}; refused")
    if not name:
        raise PackageInvalid("the package holds a member without a name")
    if name in found.files or (name in RESERVED_NAMES and _seen_reserved(found, name)):
        raise PackageInvalid("the package holds the same path twice; refused")
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover - regular members always have data
        raise PackageInvalid("the package holds an unreadable member")
    if name in RESERVED_NAMES:
        if member.size > MAX_MANIFEST_BYTES:
            raise PackageInvalid("the package manifest is too large")
        data = handle.read()
        if name.endswith(".json"):
            found.manifest = data
        else:
            found.signature = data
        _write(dest, name, io.BytesIO(data))
        return
    digest = _write(dest, name, handle)
    found.files[name] = FileEntry(name, digest, member.size)


def _seen_reserved(found: Extracted, name: str) -> bool:
    return (found.manifest if name.endswith(".json") else found.signature) is not None


def _make_dirs(dest: Path, name: str) -> Path:
    target = dest.joinpath(*name.split("/"))
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PackageInvalid("the package holds a path that is both a file and a folder") from None
    return target


def _write(dest: Path, name: str, source: IO[bytes]) -> str:
    parts = name.split("/")
    parent = _make_dirs(dest, "/".join(parts[:-1])) if len(parts) > 1 else dest
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(parent / parts[-1], flags, 0o644)
    except (FileExistsError, IsADirectoryError):
        raise PackageInvalid("the package holds a path that is both a file and a folder") from None
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(COPY):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()
