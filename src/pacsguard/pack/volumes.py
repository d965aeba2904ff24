"""Where a package's bytes go and come from: one file, or volumes of a chosen size.

Volumes are consecutive byte slices of the one age stream, named ``OUTPUT.001``,
``OUTPUT.002``, … (zero-padded wide enough for the whole set, so shell glob order is
volume order). Standard tools read them back with
``cat OUTPUT.* | age -d -i KEY | tar x``. A missing, reordered or truncated volume
breaks the age authentication and is refused.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pacsguard.core.io import fsync_dir, start_range_writeback
from pacsguard.pack.errors import InputError, PackError

MIN_VOLUME_SIZE = 1024
# Every this many bytes of a volume, the kernel is asked to start writing them to the disk,
# so the disk works while the rest is encrypted and the closing fsync finds little to flush.
WRITEBACK_STEP = 8 << 20
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``500M`` -> 500 MiB; units K, M, G, T are powers of 1024 (``MB``/``MiB`` alike)."""
    match = SIZE_PATTERN.match(text)
    if not match:
        raise InputError(f"not a size: {text!r} (examples: 500M, 4G, 1048576)")
    size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size < MIN_VOLUME_SIZE:
        raise InputError(f"a volume holds at least {MIN_VOLUME_SIZE} bytes")
    return size


def volume_path(output: Path, index: int, width: int) -> Path:
    return output.with_name(f"{output.name}.{index:0{width}d}")


def _volume_pattern(output: Path) -> re.Pattern[str]:
    return re.compile(re.escape(output.name) + r"\.(\d{3,})$")


def existing_volumes(output: Path) -> list[Path]:
    if not output.parent.is_dir():
        return []
    pattern = _volume_pattern(output)
    return sorted(p for p in output.parent.iterdir() if pattern.match(p.name))


class PackageSink:
    """A writer that stages the package beside ``output`` and renames it into place."""

    def __init__(self, output: Path, volume_size: int | None, estimate: int) -> None:
        if output.exists() or existing_volumes(output):
            raise InputError(f"{output} already exists; refusing to overwrite a package")
        if volume_size is not None and volume_size < MIN_VOLUME_SIZE:
            raise InputError(f"a volume holds at least {MIN_VOLUME_SIZE} bytes")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output = output
        self.volume_size = volume_size
        count = math.ceil(max(estimate, 1) / volume_size) if volume_size else 1
        self.width = max(3, len(str(count)))
        self.staging = Path(tempfile.mkdtemp(prefix=".tmp-pack-", dir=output.parent))
        self.parts: list[Path] = []
        self._handle: BinaryIO | None = None
        self._room = 0
        self._offset = 0  # bytes written to the open part
        self._kicked = 0  # of which the kernel was asked to start writing back
        self.written = 0

    def _next(self) -> BinaryIO:
        if self._handle is not None:
            self._handle.close()
        path = self.staging / f"part{len(self.parts) + 1:06d}"
        self.parts.append(path)
        self._handle = path.open("wb")
        self._room = self.volume_size or -1
        self._offset = self._kicked = 0
        return self._handle

    def _writeback(self, handle: BinaryIO) -> None:
        if self._offset - self._kicked >= WRITEBACK_STEP:
            handle.flush()
            start_range_writeback(handle.fileno(), self._kicked, self._offset - self._kicked)
            self._kicked = self._offset

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            handle = self._handle if self._handle is not None and self._room else self._next()
            take = len(view) if self._room < 0 else min(len(view), self._room)
            handle.write(view[:take])
            self._offset += take
            if self._room > 0:
                self._room -= take
            self._writeback(handle)
            view = view[take:]
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def targets(self) -> list[Path]:
        if self.volume_size is None:
            return [self.output]
        width = max(self.width, len(str(len(self.parts))))
        return [volume_path(self.output, i, width) for i in range(1, len(self.parts) + 1)]

    def commit(self) -> list[Path]:
        """fsync every part and rename it to its final name."""
        if self._handle is None:
            self._next()
        assert self._handle is not None
        self._handle.flush()
        self._handle.close()
        for part in self.parts:
            with part.open("rb") as handle:
                _fsync(handle)
        targets = self.targets()
        for part, target in zip(self.parts, targets, strict=True):
            part.replace(target)
        shutil.rmtree(self.staging, ignore_errors=True)
        fsync_dir(self.output.parent)
        return targets

    def discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def _fsync(handle: BinaryIO) -> None:
    os.fsync(handle.fileno())


def find_volumes(package: Path) -> list[Path]:
    """The files of ``package``: itself, or its volumes (given as the base name or ``.001``)."""
    base = package
    if package.is_file():
        match = re.match(r"^(.*)\.(\d{3,})$", package.name)
        if not match:
            return [package]
        if int(match.group(2)) != 1:
            raise InputError(f"{package} is not the first volume; give the one ending in .001")
        base = package.with_name(match.group(1))
    found = existing_volumes(base)
    if not found:
        raise InputError(f"package {package} does not exist")
    pattern = _volume_pattern(base)
    numbered = sorted((_number(pattern, p), p) for p in found)
    for expected, (number, _) in enumerate(numbered, start=1):
        if number != expected:
            raise PackError(f"volume {expected} of package {base} is missing")
    return [path for _, path in numbered]


def _number(pattern: re.Pattern[str], path: Path) -> int:
    match = pattern.match(path.name)
    return int(match.group(1)) if match else 0


class VolumeReader:
    """Reads the volumes of a package as one stream; reports bytes read to ``progress``."""

    def __init__(self, paths: list[Path], progress: Callable[[int], None] | None = None) -> None:
        self.paths = list(paths)
        self.progress = progress
        self._handle: BinaryIO | None = None

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._handle is None:
                if not self.paths:
                    return b""
                self._handle = self.paths.pop(0).open("rb")
            data = self._handle.read(size if size > 0 else 1 << 20)
            if data:
                if self.progress is not None:
                    self.progress(len(data))
                return data
            self._handle.close()
            self._handle = None

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> VolumeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
