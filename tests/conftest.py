"""Shared fixtures: a generated sample corpus and project keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.sample import AnswerKey, generate


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
