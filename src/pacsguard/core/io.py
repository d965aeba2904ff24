"""Atomic writes and input walking (files, folders, zip archives)."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pacsguard.core.errors import InputError


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_filesystems(*paths: Path) -> None:
    """Flush the filesystems holding ``paths`` (syncfs; sync where syncfs is missing)."""
    devices: set[int] = set()
    for path in paths:
        try:
            device = path.stat().st_dev
        except OSError:
            continue
        if device in devices:
            continue
        devices.add(device)
        fd = os.open(path, os.O_RDONLY)
        try:
            if _LIBC is None or _LIBC.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def _libc_with_syncfs() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # noqa: B018 - probe: absent outside Linux
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc_with_syncfs()


def atomic_write(
    path: Path, write: Callable[[BinaryIO], object], mode: int = 0o644, *, durable: bool = True
) -> None:
    """Write through ``write(handle)`` into a temporary file beside ``path``, fsync, rename.

    A crash leaves either the old file or the new one, never a partial one; stray
    temporary files start with ``.tmp-`` and are ignored by every reader here. With
    ``durable=False`` the fsyncs are left to the caller, who must ``sync_filesystems``
    before recording the write as done (group commit).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    atomic_write(path, lambda handle: handle.write(data), mode, durable=durable)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".tmp-")


@dataclass(frozen=True)
class InputItem:
    """One input file: a plain file, or a member of a zip archive.

    ``label`` names it for the operator (path, or ``archive.zip!member``); it may
    appear in local logs and the local manifest, never in anything that travels.
    """

    label: str
    path: Path
    member: str | None = None
    size: int = 0
    mtime_ns: int = 0

    @property
    def fingerprint(self) -> str:
        """Identifies this input in the journal: its label, size and modification time."""
        raw = f"{self.label}\x00{self.size}\x00{self.mtime_ns}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def _walk_dir(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _zip_items(path: Path) -> Iterator[InputItem]:
    stat = path.stat()
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable zip archive ({exc.__class__.__name__})") from None
    for info in infos:
        yield InputItem(
            label=f"{path}!{info.filename}",
            path=path,
            member=info.filename,
            size=info.file_size,
            mtime_ns=stat.st_mtime_ns + info.CRC,
        )


def _file_item(path: Path) -> InputItem:
    stat = path.stat()
    return InputItem(str(path), path, None, stat.st_size, stat.st_mtime_ns)


def iter_inputs(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> Iterator[InputItem]:
    """Every input file under ``paths``: files, folders (recursive) and zip archives.

    Folders listed in ``exclude`` (an output or quarantine inside an input) are skipped.
    """
    excluded = [p.resolve() for p in exclude]

    def skipped(candidate: Path) -> bool:
        resolved = candidate.resolve()
        return any(resolved == e or e in resolved.parents for e in excluded)

    for given in paths:
        if not given.exists():
            raise InputError(f"input {given} does not exist")
        candidates = _walk_dir(given) if given.is_dir() else iter([given])
        for candidate in candidates:
            if is_temporary(candidate) or skipped(candidate) or not candidate.is_file():
                continue
            if candidate.suffix.lower() == ".zip" and zipfile.is_zipfile(candidate):
                yield from _zip_items(candidate)
            else:
                yield _file_item(candidate)
