"""The files of a folder to pack: regular files only, in a stable order, by relative path."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pacsguard.core.io import is_temporary
from pacsguard.pack.errors import InputError, PackageInvalid
from pacsguard.pack.manifest import RESERVED_NAMES
from pacsguard.pack.tarread import safe_name


@dataclass(frozen=True)
class SourceFile:
    path: Path  # on disk
    name: str  # inside the package: relative, '/'-separated
    size: int


def _check_name(relative: str) -> None:
    """Refuse, before anything is encrypted, a name that ``unpack`` would refuse (one rule:
    ``tarread.safe_name``): a backslash, a name that is not UTF-8, a part over 255 bytes."""
    try:
        safe_name(relative)
    except PackageInvalid as refused:
        shown = ascii(relative)  # a name that is not UTF-8 cannot be printed as it is
        reason = str(refused).removeprefix("the package holds a member ").removesuffix("; refused")
        raise InputError(f"{shown}: a file {reason}, which unpack refuses; rename it") from None


def list_files(root: Path) -> list[SourceFile]:
    """Every regular file under ``root``, sorted; refuses links and special files.

    A symbolic link could pull a file from outside the folder into the package, so
    the folder must hold none. Stray ``.tmp-`` files of interrupted writes are skipped.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a folder")
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for entry in sorted(dirnames + filenames):
            path = here / entry
            mode = path.lstat().st_mode
            relative = path.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                raise InputError(f"{path} is a symbolic link; a package holds regular files only")
            if stat.S_ISDIR(mode) or is_temporary(path):
                continue
            if not stat.S_ISREG(mode):
                raise InputError(f"{path} is not a regular file")
            if relative in RESERVED_NAMES:
                raise InputError(f"{path}: this name is reserved for the package manifest")
            _check_name(relative)
            found.append(SourceFile(path, relative, path.stat().st_size))
    found.sort(key=lambda item: item.name)
    return found
