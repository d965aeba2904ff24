"""A folder destination is a deid output: ``<patient>/<study>/<series>/<instance>.dcm`` and
its ``pacsguard-deid.json``, in the format ``pacsguard deid`` writes, so ``pacsguard verify``
and ``pacsguard pack`` take the folder as they take a deid output.

Each file is copied from the spool under a temporary name, hashed as it is copied, synced,
renamed and its folder synced; then its (path, size, SHA-256) is committed to the queue
database (``folder_files``) before the delivery is marked sent. The manifest is rewritten
atomically from that table (streamed: nothing per file held in memory) after a batch lands,
at most once a second while the queue is busy, and always when it drains: it lists exactly
the files the gateway confirmed, and says ``complete: false`` with the deliveries still
queued or dead-lettered counted as ``pending`` (pack refuses it until they are settled).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pacsguard import __version__
from pacsguard.core.io import fsync_dir
from pacsguard.core.manifest import DEID_MANIFEST_NAME, write_json_stream
from pacsguard.deid.policy import load_policy
from pacsguard.gateway.config import Destination, GatewayConfig
from pacsguard.gateway.outcome import Failure
from pacsguard.gateway.queue import Item, Queue

if TYPE_CHECKING:
    from pacsguard.gateway.forward import Result

MANIFEST_EVERY = 1.0  # seconds between rewrites while the queue is busy
CHUNK = 1 << 20


class FolderSender:
    """The same tree as ``pacsguard deid``: ``<patient>/<study>/<series>/<instance>.dcm``."""

    def __init__(self, dest: Destination, config: GatewayConfig, queue: Queue) -> None:
        assert dest.path is not None
        self.root, self.name, self.queue = dest.path, dest.name, queue
        self.options = sorted(config.options)
        self.policy_sha256 = load_policy(config.policy).sha256
        self._dirty = True  # a (re)start writes the manifest once, whatever the queue holds
        self._written = 0.0

    def send(self, items: Sequence[Item], spool: Path) -> list[Result]:
        results: list[Result] = []
        landed: list[tuple[str, int, str]] = []
        for item in items:
            try:
                size, digest = _copy(spool / item.spool, self.root / item.relative)
            except OSError as exc:
                results.append((item, Failure(f"folder write failed ({type(exc).__name__})")))
                continue
            landed.append((item.relative, size, digest))
            results.append((item, None))
        if landed:
            try:
                self.queue.folder_landed(self.name, landed)
            except Exception as exc:  # not recorded: not confirmed, sent again later
                failure = Failure(f"folder record failed ({type(exc).__name__})")
                return [(item, failure if error is None else error) for item, error in results]
        return results

    def settle(self, idle: bool, changed: bool) -> None:
        """Rewrite the manifest if a batch was recorded (its deliveries marked sent or
        failed) since the last one, and it is due (always when ``idle``)."""
        self._dirty = self._dirty or changed
        if not self._dirty or (not idle and time.monotonic() - self._written < MANIFEST_EVERY):
            return
        self._dirty = False
        try:
            self.write_manifest()
        except OSError:
            self._dirty = True  # tried again on the next batch or idle turn
            raise

    def release(self) -> None:
        return

    def write_manifest(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        counts = self.queue.folder_counts(self.name)
        pending = counts["queued"] + counts["dead_letter"]
        manifest: dict[str, object] = {
            "tool": "pacsguard",
            "version": __version__,
            "complete": pending == 0,
            "source": "gateway",
            "profile": {
                "options": self.options,
                "strict": False,
                "policy_sha256": self.policy_sha256,
                "verify": False,
                "repair": False,
            },
            "counts": {
                "inputs": counts["files"] + pending,
                "output": counts["files"],
                "duplicate": 0,
                "quarantine": 0,  # refused inputs were answered a failure, never sent here
                "pending": pending,
                "dead_letter": counts["dead_letter"],
                "skipped": 0,
                "repaired": 0,
                "review": None,
                "files": counts["files"],
            },
            "files": (
                {"path": path, "size": size, "sha256": sha}
                for path, size, sha in self.queue.folder_files(self.name)
            ),
        }
        write_json_stream(self.root / DEID_MANIFEST_NAME, manifest)
        self._written = time.monotonic()


def _copy(source: Path, target: Path) -> tuple[int, str]:
    """Copy, hash, sync, rename, sync the folder; returns the size and SHA-256 written."""
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as src, tmp.open("xb") as out:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return size, digest.hexdigest()
