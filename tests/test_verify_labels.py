"""verify's file names: a folder's resolution is shared by its files, and a name is the one
``Path.resolve`` gives, symbolic links to files and to folders included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacsguard.core.io import InputItem
from pacsguard.verify import scan


def test_resolved_is_path_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real" / "series"
    real.mkdir(parents=True)
    for name in ("a.dcm", "b.dcm"):
        (real / name).write_bytes(b"x")
    (tmp_path / "folder-link").symlink_to(tmp_path / "real")
    (real / "c.dcm").symlink_to(real / "a.dcm")  # a link to a file: resolved to its target
    (real / "dangling.dcm").symlink_to(tmp_path / "gone.dcm")
    (tmp_path / "deep-link").symlink_to(real)  # "deep-link/.." is real/, not tmp_path
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
        Path("deep-link/../series/a.dcm"),
        Path("deep-link/./a.dcm"),
        Path("real//series/b.dcm"),
        Path("a-file-here.dcm"),
    ]
    folders: dict[str, str] = {}
    for _ in range(2):  # the second time from the folders remembered
        for label in labels:
            assert scan._resolved(str(label), folders) == str(label.resolve()), label
    assert folders


def reference_label(item: InputItem, root: Path) -> str:
    """The label as verify made it with pathlib before (``relative_label``'s oracle)."""
    base = root.resolve() if root.is_dir() else root.resolve().parent
    text, bang, member = item.label.partition("!")
    try:
        rel = Path(text).resolve().relative_to(base)
    except ValueError:
        rel = Path(Path(text).name)
    return rel.as_posix() + (f"!{member}" if bang else "")


def test_labels_are_those_pathlib_gave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "tree"
    (tree / "p1" / "s1").mkdir(parents=True)
    (tree / "p1" / "s1" / "a.dcm").write_bytes(b"x")
    (tree / "p1" / "s1" / "b.zip").write_bytes(b"x")
    (tmp_path / "outside.dcm").write_bytes(b"x")
    (tree / "p1" / "out-link.dcm").symlink_to(tmp_path / "outside.dcm")  # leaves the tree
    (tree / "p1" / "in-link").symlink_to(tree / "p1" / "s1")
    monkeypatch.chdir(tmp_path)
    labels = [
        str(tree / "p1" / "s1" / "a.dcm"),
        "tree/p1/s1/a.dcm",
        "tree/p1/in-link/a.dcm",
        "tree/p1/in-link/../s1/a.dcm",
        str(tree / "p1" / "out-link.dcm"),
        "tree/p1/s1/b.zip!inner/c.dcm",
        "outside.dcm",
    ]
    roots = [tree, Path("tree"), tree / "p1" / "s1" / "a.dcm", Path("/")]
    for root in roots:
        base, folders = scan.label_base(root), dict[str, str]()
        for label in labels * 2:
            item = InputItem(label, Path(label.partition("!")[0]))
            expected = reference_label(item, root)
            assert scan.relative_label(item, root, base, folders) == expected, (root, label)
            assert scan.relative_label(item, root) == expected, (root, label)
