"""Group commit: instances that arrive while a sync is in progress share the next one
(one syncfs, one queue transaction), each caller returns only once its own row is
committed, and a failure reaches every caller of the group (none is told Success)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from pacsguard.gateway.commit import GroupCommit
from pacsguard.gateway.queue import NewInstance, Queue


def _instance(n: int) -> NewInstance:
    ct, explicit = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"
    return NewInstance(f"2.25.{n}", ct, explicit, "CT", f"p/s/r/{n}.dcm", f"work/0/p/s/r/{n}.dcm",
                       10, "MODALITY1", "dicom")  # fmt: skip


def _files(tmp_path: Path, count: int) -> list[Path]:
    folder = tmp_path / "spool" / "work" / "0"
    folder.mkdir(parents=True)
    paths = [folder / f"{n}.dcm" for n in range(count)]
    for path in paths:
        path.write_bytes(b"x" * 10)
    return paths


def _commit_all(committer: GroupCommit, paths: list[Path], results: dict[int, Any]) -> list[Any]:
    def one(n: int) -> None:
        try:
            results[n] = committer.commit(paths[n], _instance(n), ["research"])
        except BaseException as exc:
            results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(paths))]
    return threads


def test_concurrent_instances_share_one_sync_and_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, 8)
    queue = Queue(tmp_path / "queue.sqlite")
    committer = GroupCommit(tmp_path / "spool", queue)
    first_sync, release = threading.Event(), threading.Event()
    real_sync = committer._sync
    groups: list[int] = []

    def held_sync(group: list[Any]) -> None:
        groups.append(len(group))
        if len(groups) == 1:  # hold the first group's sync while the others arrive
            first_sync.set()
            assert release.wait(30)
        real_sync(group)

    monkeypatch.setattr(committer, "_sync", held_sync)
    results: dict[int, Any] = {}
    threads = _commit_all(committer, paths, results)
    threads[0].start()
    assert first_sync.wait(30)
    for thread in threads[1:]:
        thread.start()
    while len(committer._pending) < 7:  # all seven wait behind the held sync
        threading.Event().wait(0.01)
    assert not results  # nobody is answered before its sync and commit
    release.set()
    for thread in threads:
        thread.join(30)
    assert groups == [1, 7]
    assert committer.figures.groups == 2 and committer.figures.instances == 8
    assert committer.figures.syncs == 2 + 1  # file + folder for the one, syncfs for seven
    ids = [results[n] for n in range(8)]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 8
    rows = sqlite3.connect(tmp_path / "queue.sqlite").execute(
        "SELECT COUNT(*) FROM instances JOIN deliveries ON deliveries.instance_id = instances.id"
    )
    assert rows.fetchone()[0] == 8
    committer.close()
    queue.close()


def test_a_failed_commit_reaches_every_caller_of_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, 4)
    queue = Queue(tmp_path / "queue.sqlite")
    committer = GroupCommit(tmp_path / "spool", queue)

    def broken(group: Any, now: float | None = None) -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(queue, "add_many", broken)
    results: dict[int, Any] = {}
    threads = _commit_all(committer, paths, results)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(isinstance(results[n], sqlite3.OperationalError) for n in range(4))
    # a file that vanished before its sync is an error too, never a Success
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError):
        committer.commit(tmp_path / "spool" / "gone.dcm", _instance(9), ["research"])
    assert (
        sqlite3.connect(tmp_path / "queue.sqlite")
        .execute("SELECT COUNT(*) FROM instances")
        .fetchone()[0]
        == 0
    )
    committer.close()
    queue.close()
