"""Trees for the verify tests and bench: real DICOM files that installed packages ship, and the
sample corpus, de-identified; and the same outputs with identifiers planted after the fact."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError


def real_dicom_files() -> list[Path]:
    """Every readable DICOM file (with pixel data or not) shipped by installed packages:
    pydicom's test files, pynetdicom's, highdicom's when installed. Duplicates by content
    dropped."""
    roots: list[Path] = []
    for name in ("pydicom", "pynetdicom", "highdicom"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(Path(spec.origin).parent)
    seen: set[str] = set()
    found: list[Path] = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.suffix in (".py", ".pyc", ".pyi", ".json", ".txt"):
                continue
            try:
                with path.open("rb") as handle:
                    head = handle.read(132)
                if head[128:132] != b"DICM":
                    continue
                pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, AttributeError):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            found.append(path)
    return found


def copy_real_files(target: Path) -> Path:
    """The real files under ``target``, one folder per package, names kept."""
    for path in real_dicom_files():
        package = next(p for p in path.parts if p in ("pydicom", "pynetdicom", "highdicom"))
        dest = target / package / path.name
        n = 1
        while dest.exists():
            dest = target / package / f"{path.stem}-{n}{path.suffix}"
            n += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return target
