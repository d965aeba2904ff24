"""When verify hands the rest of a tree to its workers: once the files left are worth more
than starting them, at this process's pace after the first file; never for one worker."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from pacsguard.core.io import InputItem
from pacsguard.verify import scan


def items(count: int) -> list[InputItem]:
    return [InputItem(f"f{i}", Path(f"f{i}"), None, 0, 0) for i in range(count)]


def serial_count(
    monkeypatch: pytest.MonkeyPatch, count: int, seconds: list[float], workers: int = 2
) -> int:
    """How many of ``count`` files are checked in this process when the i-th file takes
    ``seconds[i]`` (the last figure for the rest), on a clock of its own."""
    now = [0.0]

    def check(item: InputItem, job: scan.Job) -> scan.ItemResult:
        index = int(item.label[1:])
        now[0] += seconds[min(index, len(seconds) - 1)]
        return scan.ItemResult(item.label, True, [])

    monkeypatch.setattr(scan, "check_item", check)
    monkeypatch.setattr(scan, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    job = scan.Job(Path("."), None, (), False, False)
    return sum(1 for _ in scan._serial_part(items(count), job, workers))


def test_a_long_tree_goes_to_the_workers_after_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert serial_count(monkeypatch, 1000, [0.0005]) == scan.PROBE + 1


def test_a_short_tree_stays_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200 files at 0.4 ms: 73 ms left after the probe, less than the pool is worth
    assert serial_count(monkeypatch, 200, [0.0004]) == 200


def test_the_first_files_cost_is_not_the_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first file loads the lexicons (~0.1 s): a small tree is not sent to workers for
    that."""
    assert serial_count(monkeypatch, 100, [0.15, 0.0005]) == 100


def test_slow_files_go_to_the_workers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files read by OCR take ~0.1 s each: the probe's pace says so after 17 of them, and the
    time bound after 0.5 s, whichever comes first."""
    assert serial_count(monkeypatch, 1000, [0.02]) == scan.PROBE + 1
    assert serial_count(monkeypatch, 1000, [0.2]) == 3  # 0.6 s gone after the third


def test_one_worker_checks_every_file_here(monkeypatch: pytest.MonkeyPatch) -> None:
    assert serial_count(monkeypatch, 1000, [0.01], workers=1) == 1000
