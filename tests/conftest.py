"""Shared fixtures: a generated sample corpus and project keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.sample import AnswerKey, generate
from test_pack_support import Keys


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
