"""The shared progress bar: total first, per-item updates, rate, a live ETA, Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

from pacsguard.core.progress import Bar, duration, resume_command


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120, color_system=None), out


def test_bar_shows_count_rate_and_a_countdown_eta() -> None:
    console, out = _console()
    with Bar("de-identifying", total=10, console=console) as bar:
        time.sleep(0.05)
        bar.advance(2)
        first = bar._progress.tasks[0].fields["pg_finish_at"]
        assert first is not None and first > time.monotonic()
        bar._progress.refresh()
        time.sleep(0.05)
        bar.update(completed=5)
        bar._progress.refresh()
    drawn = out.getvalue()
    assert "2/10" in drawn and "5/10" in drawn
    assert "files/s" in drawn and "ETA" in drawn
    assert bar.end_line(["0 quarantined"]).startswith("5 files in ")
    assert bar.end_line(["0 quarantined"]).endswith("files/s), 0 quarantined")


def test_eta_counts_down_between_updates() -> None:
    console, _ = _console()
    with Bar("x", total=100, console=console) as bar:
        time.sleep(0.2)
        bar.advance(50)  # 0.2 s for 50: about 0.2 s left
        from pacsguard.core.progress import _Eta

        eta = _Eta()
        task = bar._progress.tasks[0]
        before = eta.render(task).plain
        time.sleep(0.15)
        after = eta.render(task).plain
    assert before != after and before.startswith("ETA ")


def test_first_ctrl_c_is_acknowledged_and_stops_cleanly_second_raises() -> None:
    console, out = _console()
    with (
        pytest.raises(KeyboardInterrupt),
        Bar("x", total=3, cooperative=True, console=console) as bar,
    ):
        bar.in_flight = 4
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert bar.stop_requested
        assert "stopping: finishing 4 files in flight" in out.getvalue()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    assert "to finish: pacsguard deid a b" in bar.interrupted_line(
        resume_command(["deid", "a", "b"])
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stream_stops_at_once_with_what_it_does() -> None:
    console, out = _console()
    with (
        pytest.raises(KeyboardInterrupt),
        Bar("p", as_bytes=True, console=console, stopping="removing the partial package"),
    ):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    assert "stopping: removing the partial package" in out.getvalue()


def test_durations_read_well() -> None:
    assert duration(0.42) == "0.4 s"
    assert duration(12.4) == "12 s"
    assert duration(185) == "3 min 05 s"
    assert duration(3720) == "1 h 02 min"


def test_ctrl_c_on_a_long_scan_is_acknowledged_and_says_how_to_resume(tmp_path: object) -> None:
    import subprocess
    import sys

    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pacsguard", "scan", "127.0.0.1", "--ports", "1-65535",
         "--rate", "20", "--host-rate", "20", "--no-history"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30  # interrupt once the sweep connects (the bar is up)
    while time.monotonic() < deadline and not _has_socket(process.pid):
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 130, err
    assert "stopping: abandoning the sweep" in err
    assert "stopped after " in err and "/65535 ports in " in err
    assert "to finish the job, run the same command again: pacsguard scan 127.0.0.1" in err
    assert "Traceback" not in err + out
    assert time.monotonic() - started < 40


def _has_socket(pid: int) -> bool:
    try:
        return any(
            os.readlink(fd).startswith("socket:") for fd in Path(f"/proc/{pid}/fd").iterdir()
        )
    except OSError:
        return False


def test_a_new_stage_restarts_count_rate_and_eta_but_not_the_duration() -> None:
    console, _ = _console()
    with Bar("checking", as_bytes=True, console=console) as bar:
        time.sleep(0.3)
        bar.stage("encrypting", total=1000)
        assert bar.completed == 0 and bar.total == 1000
        time.sleep(0.05)
        bar.advance(1000)
    assert bar.elapsed >= 0.35
    rate = float(bar.rate_text().split()[0])  # "n.n kB/s": the stage's rate, not the command's
    assert rate > 1000 / 0.35 / 1000
