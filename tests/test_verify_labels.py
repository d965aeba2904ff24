"""verify's file names: a folder's resolution is shared by its files, and a name is the one
``Path.resolve`` gives, symbolic links to files and to folders included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacsguard.verify import scan


def test_resolved_is_path_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real" / "series"
    real.mkdir(parents=True)
    for name in ("a.dcm", "b.dcm"):
        (real / name).write_bytes(b"x")
    (tmp_path / "folder-link").symlink_to(tmp_path / "real")
    (real / "c.dcm").symlink_to(real / "a.dcm")  # a link to a file: resolved to its target
    (real / "dangling.dcm").symlink_to(tmp_path / "gone.dcm")
    monkeypatch.chdir(tmp_path)
    labels = [
        real / "a.dcm",
        real / "c.dcm",
        real / "dangling.dcm",
        real / "missing.dcm",
        tmp_path / "folder-link" / "series" / "b.dcm",
        Path("real/series/b.dcm"),
        Path("folder-link/series/c.dcm"),
        Path(os.path.relpath(real / "a.dcm")),
    ]
    folders: dict[str, Path] = {}
    for _ in range(2):  # the second time from the folders remembered
        for label in labels:
            assert scan._resolved(label, folders) == label.resolve(), label
    assert folders
