"""Write a POSIX (pax) tar stream of files, hashing each file on the way.

Headers come from :mod:`tarfile`; the data is copied straight from each file to the
output in 1 MiB blocks (tarfile's stream writer re-buffers every byte). The disk is
read once: the manifest, built from the hashes, follows the files as the last members.
Each block is hashed on a second thread while this one writes (encrypts) it: both
release the GIL, so on two cores the hash costs no wall time.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from pacsguard.pack.errors import InputError
from pacsguard.pack.manifest import FileEntry
from pacsguard.pack.tree import SourceFile

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
COPY = 1 << 20
Progress = Callable[[int], None]
Trailer = Callable[[list[FileEntry]], list[tuple[str, bytes]]]


def header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""  # the sender's account name does not travel
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def _copy(
    path: Path, name: str, out: Sink, progress: Progress | None, hasher: ThreadPoolExecutor
) -> FileEntry:
    with path.open("rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        out.write(header(name, size, os.fstat(handle.fileno()).st_mtime))
        digest = hashlib.sha256()
        hashing: Future[None] | None = None  # one block in hand at most: memory stays flat
        left = size
        while left > 0:
            data = handle.read(min(COPY, left))
            if not data:
                raise InputError(f"{path} shrank while it was being packed")
            if hashing is not None:
                hashing.result()
            hashing = hasher.submit(digest.update, data)
            out.write(data)
            left -= len(data)
            if progress is not None:
                progress(len(data))
        if hashing is not None:
            hashing.result()
        if os.fstat(handle.fileno()).st_size != size:
            raise InputError(f"{path} changed while it was being packed")
    out.write(_padding(size))
    return FileEntry(name, digest.hexdigest(), size)


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class _Counting:
    def __init__(self, out: Sink) -> None:
        self.out = out
        self.count = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.count += len(data)
        return len(data)


def write_tar(
    files: list[SourceFile], out: Sink, trailer: Trailer, progress: Progress | None = None
) -> list[FileEntry]:
    """Stream ``files``, then the members ``trailer(entries)`` returns, then the end marks."""
    counted = _Counting(out)
    with ThreadPoolExecutor(1, thread_name_prefix="pacsguard-pack-hash") as hasher:
        entries = [_copy(item.path, item.name, counted, progress, hasher) for item in files]
    for name, data in trailer(entries):
        counted.write(header(name, len(data), time.time()) + data + _padding(len(data)))
    counted.write(bytes(2 * BLOCK + (-(counted.count + 2 * BLOCK) % RECORD)))
    return entries
