"""Group commit: instances that arrive while a sync is in progress share the next one
(one syncfs, one queue transaction), each caller returns only once its own row is
committed, and a failure reaches every caller of the group (none is told Success)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pacsguard.gateway.commit import GroupCommit
from pacsguard.gateway.config import load_config
from pacsguard.gateway.queue import NewInstance, Queue
from pacsguard.gateway.receive import Receiver
from test_gateway_support import KEY, write_config

CT, EXPLICIT = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"


def _instance(n: int) -> NewInstance:
    return NewInstance(f"2.25.{n}", CT, EXPLICIT, "CT", f"p/s/r/{n}.dcm", f"work/0/p/s/r/{n}.dcm",
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


def test_rows_commit_while_their_files_sync_and_nobody_is_answered_before_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path, 1)
    queue = Queue(tmp_path / "queue.sqlite")
    committer = GroupCommit(tmp_path / "spool", queue)
    syncing, release = threading.Event(), threading.Event()
    real_sync = committer._sync

    def held_sync(group: list[Any]) -> None:
        syncing.set()
        assert release.wait(30)
        real_sync(group)

    monkeypatch.setattr(committer, "_sync", held_sync)
    results: dict[int, Any] = {}
    (thread,) = _commit_all(committer, paths, results)
    thread.start()
    assert syncing.wait(30)
    other = sqlite3.connect(tmp_path / "queue.sqlite")
    deadline = time.monotonic() + 10
    while other.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 0:
        assert time.monotonic() < deadline, "the row waited for the file's sync"
        time.sleep(0.01)
    assert not results  # the row is committed, the file not yet synced: no answer
    release.set()
    thread.join(30)
    assert isinstance(results[0], int)
    committer.close()
    queue.close()


def test_start_up_sweep_drops_rows_whose_spool_file_is_not_theirs(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, port=11112, destinations=[
        {"name": "copy", "type": "folder", "path": str(tmp_path / "out")}]))  # fmt: skip
    queue = Queue(config.database)
    receiver = Receiver(config, KEY, queue, slots=1)
    work = config.spool / "work" / "0" / "p" / "s" / "r"
    work.mkdir(parents=True)

    def row(name: str, content: bytes, written: bytes | None) -> int:
        spool = f"work/0/p/s/r/{name}.dcm"
        if written is not None:
            (config.spool / spool).write_bytes(written)
        digest = hashlib.sha256(content).hexdigest()
        new = NewInstance(f"2.25.{len(name)}", CT, EXPLICIT, "CT", f"p/s/r/{name}.dcm", spool,
                          len(content), "MODALITY1", "dicom", digest)  # fmt: skip
        return queue.add(new, ["copy"])

    whole = row("whole", b"A" * 64, b"A" * 64)
    torn = row("torn", b"B" * 64, b"B" * 20)
    missing = row("missing", b"C" * 64, None)
    zeros = row("zeros", b"D" * 64, b"\x00" * 64)  # the right size, not the right bytes
    earlier = row("again", b"E" * 64, None)
    later = row("again", b"F" * 64, b"F" * 64)  # replaced by a later reception: kept, both
    old = NewInstance("2.25.9", CT, EXPLICIT, "CT", "p/s/r/old.dcm", "work/0/p/s/r/old.dcm",
                      64, "MODALITY1", "dicom")  # fmt: skip
    legacy = queue.add(old, ["copy"])
    (config.spool / "work/0/p/s/r/old.dcm").write_bytes(b"x")  # no digest: trusted as before
    assert sorted(receiver.unintact()) == sorted([torn, missing, zeros])
    receiver.sweep()
    assert sorted(i for i, *_ in queue.live_files()) == sorted([whole, earlier, later, legacy])
    assert not (work / "torn.dcm").exists() and not (work / "zeros.dcm").exists()
    assert (work / "whole.dcm").exists() and (work / "again.dcm").exists()
    assert queue.due("copy", 10) and {i.instance_id for i in queue.due("copy", 10)} == {
        whole, earlier, later, legacy}  # fmt: skip
    receiver.close()
    queue.close()
