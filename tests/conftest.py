"""Shared fixtures: a generated sample corpus and project keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.sample import AnswerKey, generate
from test_pack_support import Keys


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker takes the lab's ports from its own range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        from pacsguard.lab import procs

        number = int(worker[2:]) % 8
        procs.PORT_RANGE = range(20000 + 1500 * number, 20000 + 1500 * (number + 1))


@pytest.fixture(autouse=True, scope="session")
def _no_test_data_downloads() -> None:
    """pydicom fetches some test files from the internet on demand (``get_testdata_file``
    with a name it does not ship, ``get_testdata_files`` with a pattern): tests use only
    what is installed, and never leave loopback."""
    import pydicom.data.data_manager as manager

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("tests never download: use the files pydicom ships (local_test_files())")

    manager.data_path_with_download = refuse  # type: ignore[assignment]


def local_test_files(pattern: str = "*.dcm") -> list[Path]:
    """The DICOM files that the installed pydicom ships (no download)."""
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob(pattern) if p.is_file())


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnswerKey]:
    """Three patients, every modality and encoding of the generator (read-only: copy to change)."""
    root = tmp_path_factory.mktemp("sample")
    answer = generate(root / "s", seed=7, patients=3)
    return root / "s" / "dicom", answer


@pytest.fixture(scope="session")
def project_key() -> ProjectKey:
    return ProjectKey(bytes(range(32)))


@pytest.fixture(scope="session")
def other_key() -> ProjectKey:
    return ProjectKey(bytes(range(1, 33)))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A clean de-identified tree, for the pack tests."""
    from test_pack_support import clean_tree

    return clean_tree(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    """Recipient identity and signing keys, for the pack tests."""
    from test_pack_support import make_keys

    return make_keys(tmp_path)
