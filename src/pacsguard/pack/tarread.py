"""Read a tar stream into a fresh folder, safely, hashing every file.

Only regular files and folders with relative paths inside the destination are
accepted: no absolute path, no ``..``, no link, device, FIFO or sparse file, no path
twice. ``PACSGUARD-MANIFEST.json`` and ``.sig`` are kept in memory too, for checking.
Files are fsynced in the background (durable before the folder is renamed into place).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

from pacsguard.core.errors import OutputError
from pacsguard.pack.errors import PackageInvalid
from pacsguard.pack.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    RESERVED_NAMES,
    FileEntry,
)
from pacsguard.pack.syncer import BackgroundSync

COPY = 1 << 20


@dataclass
class Extracted:
    """What a tar stream held: its files (hashed as written), manifest and signature."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    manifest: bytes | None = None
    signature: bytes | None = None
    reserved: set[str] = field(default_factory=set)
    folders: set[Path] = field(default_factory=set)


NAME_MAX = 255  # bytes of one path component (Linux, macOS and Windows file systems)


def safe_name(raw: str) -> str:
    """A member name as a relative '/'-path, or refuse it. ``pack`` holds the files it is
    given to the same rule (``tree.list_files``): it packs no name that this refuses."""
    if "\x00" in raw or "\\" in raw or raw.startswith("/"):
        raise PackageInvalid("the package holds a member with an unsafe path; refused")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PackageInvalid("the package holds a member with a '..' path; refused")
    try:
        too_long = any(len(part.encode("utf-8")) > NAME_MAX for part in parts)
    except UnicodeEncodeError:
        raise PackageInvalid(
            "the package holds a member whose name is not UTF-8; refused"
        ) from None
    if too_long:
        raise PackageInvalid(
            f"the package holds a member with a path part over {NAME_MAX} bytes; refused"
        )
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
    sync = BackgroundSync()
    seen = _Tail(stream)
    try:
        with tarfile.open(fileobj=cast(BinaryIO, seen), mode="r|", bufsize=COPY) as tar:
            for member in tar:
                _member(tar, member, dest, found, sync)
            end = tar.offset  # where its end-of-archive block begins
        if not seen.zeros_after(end):
            raise PackageInvalid("the package holds data after the end of its archive")
        while chunk := stream.read(COPY):
            if chunk.count(0) != len(chunk):
                raise PackageInvalid("the package holds data after the end of its archive")
    except tarfile.TarError:
        sync.cancel()
        raise PackageInvalid("the package does not hold a valid tar stream") from None
    except BaseException:
        sync.cancel()
        raise
    for folder in sorted(found.folders, key=lambda p: -len(p.parts)):
        sync.add(folder)
    sync.add(dest)
    sync.finish()
    return found


def _unwritable(dest: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write the package's files under {dest}: {exc.strerror}")


class _Tail:
    """The decrypted stream as tarfile reads it, its last chunks kept: tarfile reads up to
    its buffer's size past the archive's end, so bytes appended there never reached the
    check after it (campaign 06: hidden within the first MiB, they were unpacked)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.read_so_far = stream, 0
        self.chunks: deque[tuple[int, bytes]] = deque(maxlen=3)  # (offset, bytes)

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.stream.read(size)
        if data:
            self.chunks.append((self.read_so_far, data))
            self.read_so_far += len(data)
        return data

    def zeros_after(self, offset: int) -> bool:
        """Whether every byte read from ``offset`` on is zero (the end-of-archive blocks
        and their padding); False when those bytes are no longer kept."""
        if self.chunks and self.chunks[0][0] > offset:
            return False
        return all(
            data[max(0, offset - start) :].count(0) == len(data) - max(0, offset - start)
            for start, data in self.chunks
            if start + len(data) > offset
        )


def _member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    dest: Path,
    found: Extracted,
    sync: BackgroundSync,
) -> None:
    name = safe_name(member.name)
    if member.isdir():
        if name:
            _note_folders(found, dest, _make_dirs(dest, name) / "_")
        return
    if not member.isreg() or member.issparse():
        raise PackageInvalid(f"the package holds a {_kind(member)}; refused")
    if not name:
        raise PackageInvalid("the package holds a member without a name")
    if name in found.files or name in found.reserved:
        raise PackageInvalid("the package holds the same path twice; refused")
    handle = tar.extractfile(member)
    if handle is None:  # pragma: no cover - regular members always have data
        raise PackageInvalid("the package holds an unreadable member")
    if name in RESERVED_NAMES:
        if member.size > MAX_MANIFEST_BYTES:
            raise PackageInvalid("the package manifest is too large")
        data = handle.read()
        found.reserved.add(name)
        if name == MANIFEST_NAME:
            found.manifest = data
        else:
            found.signature = data
        path, _ = _write(dest, name, [data])
    else:
        path, digest = _write(dest, name, iter(partial(handle.read, COPY), b""))
        found.files[name] = FileEntry(name, digest, member.size)
    _note_folders(found, dest, path)
    sync.add(path)


def _note_folders(found: Extracted, dest: Path, path: Path) -> None:
    """Every folder between ``path`` and ``dest``: fsynced at the end (their entries)."""
    for parent in path.parents:
        if parent == dest:
            return
        found.folders.add(parent)


def _make_dirs(dest: Path, name: str) -> Path:
    target = dest.joinpath(*name.split("/"))
    try:
        target.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PackageInvalid("the package holds a path that is both a file and a folder") from None
    except OSError as exc:
        raise _unwritable(dest, exc) from None
    return target


def _write(dest: Path, name: str, chunks: Iterable[bytes]) -> tuple[Path, str]:
    parts = name.split("/")
    parent = _make_dirs(dest, "/".join(parts[:-1])) if len(parts) > 1 else dest
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    target = parent / parts[-1]
    try:
        fd = os.open(target, flags, 0o644)
    except (FileExistsError, IsADirectoryError):
        raise PackageInvalid("the package holds a path that is both a file and a folder") from None
    except OSError as exc:
        raise _unwritable(dest, exc) from None
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise _unwritable(dest, exc) from None
    return target, digest.hexdigest()
