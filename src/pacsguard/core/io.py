"""Atomic writes and input walking (files, folders, zip archives)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import signal
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
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


SYNC_FILE_RANGE_WRITE = 2


def start_writeback(path: str) -> None:
    """Ask the kernel to start writing ``path``'s dirty pages now, without waiting (Linux
    ``sync_file_range``; elsewhere nothing): the sync that makes a batch durable then finds
    little left to flush. A hint only: durability still comes from that sync."""
    if _LIBC is None or not hasattr(_LIBC, "sync_file_range"):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        start_range_writeback(fd, 0, 0)
    finally:
        os.close(fd)


def start_range_writeback(fd: int, offset: int, length: int) -> None:
    """The same hint for ``length`` bytes of an open file from ``offset`` (0: to its end)."""
    if _LIBC is not None and hasattr(_LIBC, "sync_file_range"):
        _LIBC.sync_file_range(
            fd, ctypes.c_int64(offset), ctypes.c_int64(length), SYNC_FILE_RANGE_WRITE
        )


def _libc_with_syncfs() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # noqa: B018 - probe: absent outside Linux
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc_with_syncfs()
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """End this (forked worker) process when ``parent`` dies, even by SIGKILL.

    A forked worker inherits both ends of its pool's pipes, so it would never see the
    parent go and would wait forever. Linux only (prctl); elsewhere a no-op."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


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
    remote: str | None = None  # an object's URL (core/remote.py); ``path`` is then local scratch

    @functools.cached_property
    def fingerprint(self) -> str:
        """Identifies this input in the journal: its label, size and modification time."""
        raw = f"{self.label}\x00{self.size}\x00{self.mtime_ns}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def read_bytes(self) -> bytes:
        if self.remote is not None:
            from pacsguard.core import remote

            return remote.read_bytes(self.remote)
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


Skip = Callable[[str, str], None]


def _walk_dir(
    root: Path, excluded: frozenset[str], skip: Skip
) -> Iterator[tuple[Path, os.stat_result]]:
    """Files under ``root`` (a folder's files first, then its sub-folders, each sorted by
    name), with their stat. Folders in ``excluded`` are pruned, compared by real path once
    per folder rather than once per file. Whatever is not a regular file is reported to
    ``skip`` with its reason."""
    try:
        with os.scandir(root) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        skip(str(root), f"folder cannot be read ({exc.strerror or 'error'})")
        return
    folders: list[Path] = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if os.path.realpath(entry.path) not in excluded:
                    folders.append(Path(entry.path))
                continue
            if entry.name.startswith(".tmp-"):
                continue
            if entry.is_symlink() and _inside(os.path.realpath(entry.path), excluded):
                continue
            if not entry.is_file():
                skip(entry.path, _not_a_file(entry))
                continue
            stat = entry.stat()
            if not os.access(entry.path, os.R_OK):
                skip(entry.path, "not readable (permission denied)")
                continue
        except OSError as exc:
            skip(entry.path, f"cannot be read ({exc.strerror or 'error'})")
            continue
        yield Path(entry.path), stat
    for folder in folders:
        yield from _walk_dir(folder, excluded, skip)


def _not_a_file(entry: os.DirEntry[str]) -> str:
    import stat as modes

    if entry.is_symlink():
        try:
            os.stat(entry.path)  # noqa: PTH116 - follows the link
        except OSError:
            return "a dangling symbolic link"
        return "a symbolic link to something that is not a regular file"
    mode = entry.stat(follow_symlinks=False).st_mode
    if modes.S_ISFIFO(mode):
        return "not a regular file (a FIFO)"
    if modes.S_ISSOCK(mode):
        return "not a regular file (a socket)"
    if modes.S_ISBLK(mode) or modes.S_ISCHR(mode):
        return "not a regular file (a device)"
    return "not a regular file"


def _inside(real: str, excluded: frozenset[str]) -> bool:
    return any(real == e or real.startswith(e + os.sep) for e in excluded)


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


def _file_item(path: Path, stat: os.stat_result) -> InputItem:
    return InputItem(str(path), path, None, stat.st_size, stat.st_mtime_ns)


def iter_inputs(
    paths: Sequence[Path], exclude: Sequence[Path] = (), skip: Skip | None = None
) -> Iterator[InputItem]:
    """Every input file under ``paths``: files, folders (recursive) and zip archives.

    Folders listed in ``exclude`` (an output or quarantine inside an input) are skipped.
    Paths that are not regular files (FIFOs, sockets, dangling links, unreadable files)
    are reported to ``skip(label, reason)``: every path found is accounted for.
    """
    excluded = frozenset(os.path.realpath(p) for p in exclude)
    report: Skip = skip or (lambda label, reason: None)
    for given in paths:
        if not given.exists():
            if given.is_symlink():
                report(str(given), "a dangling symbolic link")
                continue
            raise InputError(f"input {given} does not exist")
        if given.is_dir():
            if _inside(os.path.realpath(given), excluded):
                continue
            candidates: Iterator[tuple[Path, os.stat_result]] = _walk_dir(given, excluded, report)
        elif is_temporary(given):
            continue
        elif not given.is_file():
            report(str(given), "not a regular file")
            continue
        elif _inside(os.path.realpath(given), excluded):
            continue  # the output or the state folder given as an input
        else:
            candidates = iter([(given, given.stat())])
        for candidate, stat in candidates:
            if candidate.suffix.lower() == ".zip" and zipfile.is_zipfile(candidate):
                yield from _zip_items(candidate)
            else:
                yield _file_item(candidate, stat)


PREFETCH_WINDOW = 256 << 20  # bytes asked ahead of the workers: enough to keep a disk busy


class Prefetcher:
    """Asks the kernel to read input files ahead of their use (``posix_fadvise`` WILLNEED).

    A thread walks ``paths`` in order and hints each file, staying at most ``window``
    bytes ahead of what ``consumed`` reports done, so the page cache is not flooded on a
    large run. The reads themselves happen in the kernel, many at once, while the workers
    compute: a cold disk then streams instead of waiting one file at a time. A hint that
    fails (a vanished file, a platform without fadvise) is simply skipped.

    With ``stream=True`` the paths come later, through ``feed``, as a streaming run finds
    them; the thread keeps only the paths fed and not yet hinted, so what it holds stays
    bounded by what the caller feeds ahead of the workers, never the whole run.
    """

    def __init__(
        self,
        paths: Iterable[tuple[Path, int]] = (),
        window: int = PREFETCH_WINDOW,
        *,
        stream: bool = False,
    ) -> None:
        self._paths: deque[tuple[Path, int]] = deque(paths)
        self._window, self._open = window, stream
        self._consumed = 0
        self._stopped = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="pacsguard-prefetch", daemon=True)

    def start(self) -> Prefetcher:
        """Begin (once; later calls do nothing)."""
        usable = hasattr(os, "posix_fadvise") and (self._paths or self._open)
        if usable and not self._stopped and self._thread.ident is None:
            self._thread.start()
        return self

    def feed(self, paths: Iterable[tuple[Path, int]]) -> None:
        """More paths to hint, after those fed before (``stream=True`` only)."""
        with self._wake:
            self._paths.extend(paths)
            self._wake.notify()

    def consumed(self, size: int) -> None:
        with self._wake:
            self._consumed += size
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._paths.clear()
            self._wake.notify()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        hinted = 0
        while True:
            with self._wake:
                while not self._stopped and (
                    hinted - self._consumed > self._window or (self._open and not self._paths)
                ):
                    self._wake.wait()
                if self._stopped or not self._paths:
                    return
                path, size = self._paths.popleft()
            hinted += size
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                finally:
                    os.close(fd)
