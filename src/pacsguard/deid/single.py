"""One file at a time, durably: the entry point for long-running nodes (gateway, guard).

``deidentify()`` runs a whole tree with its journal; a node that receives instances one by
one needs the same engine, options and guarantees for a single file (or a dataset held in
memory, such as a C-FIND response) with no tree-wide state. The outcome is final when the
call returns: the output is on disk and synced, or the input is in quarantine with a reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydicom.dataset import Dataset

from pacsguard.core.io import InputItem, fsync_dir
from pacsguard.core.keys import ProjectKey
from pacsguard.deid.pipeline import DeidConfig, Worker
from pacsguard.deid.policy import load_policy


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: ``output`` (absolute) or ``reason`` (no PHI in it)."""

    status: Literal["output", "quarantine"]
    output: Path | None = None
    reason: str | None = None
    sha256: str | None = None
    size: int = 0


class FileDeidentifier:
    """The deid engine for one file at a time, under one key, config and output tree."""

    def __init__(self, key: ProjectKey, config: DeidConfig, output: Path, quarantine: Path) -> None:
        self.output, self.quarantine = output.resolve(), quarantine.resolve()
        if self.quarantine == self.output or self.output in self.quarantine.parents:
            raise ValueError("the quarantine must live outside the output tree")
        self.output.mkdir(parents=True, exist_ok=True)
        self.quarantine.mkdir(parents=True, exist_ok=True, mode=0o700)
        policy = load_policy(config.policy)
        self._worker = Worker(key.material, config, policy, self.output, self.quarantine)

    def run(self, path: Path, *, durable: bool = True) -> FileOutcome:
        """De-identify ``path`` into the output tree; durable when this returns.

        ``durable=False`` (a node that syncs many outputs at once): the output is named but
        not synced, and the caller must sync it (file and folder) before relying on it.
        An output that replaces an existing file is synced before the rename all the same,
        so an earlier durable copy is never swapped for one that a crash could tear."""
        stat = path.stat()
        item = InputItem(str(path), path, None, stat.st_size, stat.st_mtime_ns)
        result = self._worker.process(item)
        outcome = result.outcome
        if outcome.status == "quarantine" or outcome.output is None:
            for suffix in (".bin", ".json"):
                _sync_file(self.quarantine / f"{item.fingerprint}{suffix}")
            fsync_dir(self.quarantine)
            return FileOutcome("quarantine", reason=outcome.reason)
        target = self.output / outcome.output
        assert result.tmp is not None
        replaces = target.exists()
        if durable or replaces:
            _sync_file(Path(result.tmp))
        Path(result.tmp).replace(target)  # a re-sent instance replaces its earlier copy
        if durable or replaces:
            fsync_dir(target.parent)
        return FileOutcome("output", target, sha256=outcome.sha256, size=result.size)

    def dataset(self, ds: Dataset) -> Dataset:
        """A de-identified copy of an in-memory dataset (a C-FIND identifier, say), under the
        same rules and pseudonyms as the files; raises ``UncleanError`` if it cannot be."""
        return self._worker.transformer.transform(ds).dataset


def _sync_file(path: Path) -> None:
    if path.exists():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


__all__ = ["FileDeidentifier", "FileOutcome"]
