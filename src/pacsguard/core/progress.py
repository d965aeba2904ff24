"""Progress people can follow, the same on every long command (deid, verify, pack, unpack,
tables, scan).

One bar on stderr: what is being done, the bar, ``done/total``, the rate, a live ETA and the
time spent. The total is given before the first item is done (count first, then work); every
item updates the bar; the ETA counts down between updates (it is the finish time projected
from the average rate, not a figure that freezes while an item is slow). Nothing is drawn
when stderr is not a terminal, so logs hold only the end line.

Usage::

    from pacsguard.core.progress import Bar, resume_command

    with Bar("de-identifying", total=len(files), unit="files", cooperative=True) as bar:
        for path in files:
            if bar.stop_requested:          # first Ctrl-C: acknowledged, finish cleanly
                break
            bar.in_flight = 1               # what the acknowledgement counts
            work(path)
            bar.advance()                   # or bar.update(completed=n, total=m)
    if bar.stop_requested:
        print(bar.interrupted_line(resume_command()))
    else:
        print(bar.end_line(extra=["12 quarantined", "verified"]))
    # "500 files in 1 min 10 s (7.1 files/s), 12 quarantined, verified"

Arguments: ``description`` (the label, changeable with ``update(description=...)``),
``total`` (None while unknown: the count column stays empty rather than ``0/?``), ``unit``
(plural noun: ``files``, ``ports``, ``tables``), ``as_bytes``, ``cooperative``, ``console``
(default: stderr), ``stopping`` (what a non-cooperative stop does, for its acknowledgement).
The SIGINT handler is installed only when entered in the main thread, and restored on exit.

Ctrl-C: inside ``with Bar(..., cooperative=True)`` the first Ctrl-C prints at once
``stopping: finishing N files in flight (Ctrl-C again to stop now)``, where N comes from
``bar.in_flight`` (set it as work is handed out), and sets ``bar.stop_requested``; the loop
then stops handing out work. A second Ctrl-C raises ``KeyboardInterrupt``. Without
``cooperative`` (a single stream, e.g. pack), the first Ctrl-C prints ``stopping: <what>``
and raises ``KeyboardInterrupt`` at once. A ``KeyboardInterrupt`` leaving the ``with`` block
prints ``stopped after 120/500 files in 12 s``; after a cooperative stop,
``bar.interrupted_line(command)`` says that and the command that resumes
(``resume_command()`` builds it from argv). ``pacsguard.cli`` ends every interrupted command
with that command.

``bar.stage(description, total=...)`` starts a new stage (count, rate, ETA anew).
``as_bytes=True`` shows sizes and bytes/s instead of counts (pack, unpack).
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class _Count(ProgressColumn):
    def __init__(self, as_bytes: bool) -> None:
        super().__init__()
        self.as_bytes = as_bytes

    def render(self, task: Task) -> Text:
        done = decimal(int(task.completed)) if self.as_bytes else str(int(task.completed))
        if task.total is None:  # a stage whose size is not known: say what is done, no "0/?"
            return Text(done if task.completed else "")
        total = decimal(int(task.total)) if self.as_bytes else str(int(task.total))
        return Text(f"{done}/{total}", style="progress.download")


class _Rate(ProgressColumn):
    """The average since the first item: steady, and right for the ETA."""

    def __init__(self, unit: str, as_bytes: bool) -> None:
        super().__init__()
        self.unit, self.as_bytes = unit, as_bytes

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if not task.completed or elapsed <= 0:
            return Text(
                "– B/s" if self.as_bytes else f"– {self.unit}/s", style="progress.data.speed"
            )
        rate = task.completed / elapsed
        shown = f"{decimal(int(rate))}/s" if self.as_bytes else f"{rate:.1f} {self.unit}/s"
        return Text(shown, style="progress.data.speed")


class _Eta(ProgressColumn):
    """Time left, counting down between updates: the finish time projected at the last
    update (average rate), minus now."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        fields = task.fields
        projected = fields.get("pg_finish_at")
        if task.total is None or projected is None:
            return Text("ETA –", style="progress.remaining")
        left = max(0.0, float(projected) - time.monotonic())
        return Text(f"ETA {duration(left)}", style="progress.remaining")


class Bar:
    """A Rich progress bar with rate, live ETA and Ctrl-C acknowledgement (see module doc)."""

    def __init__(
        self,
        description: str,
        *,
        total: int | None = None,
        unit: str = "files",
        as_bytes: bool = False,
        cooperative: bool = False,
        console: Console | None = None,
        stopping: str | None = None,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.description, self.unit, self.as_bytes = description, unit, as_bytes
        self.cooperative = cooperative
        self.stopping = stopping
        self.stop_requested = False
        self.in_flight = 0
        self.completed = 0
        self.total = total
        self._started = time.monotonic()
        self._stage_started = self._started
        self._ended: float | None = None
        self._lock = threading.Lock()
        self._previous_handler: Any = None
        self._progress = RichProgress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            _Count(as_bytes),
            _Rate(unit, as_bytes),
            _Eta(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=total, pg_finish_at=None)

    # -- the work reports ------------------------------------------------------------------
    def set_total(self, total: int) -> None:
        """The total, once known (give it before the first item where you can)."""
        self.update(total=total)

    def advance(self, n: int = 1) -> None:
        """``n`` more items (or bytes) done."""
        with self._lock:
            self._set(self.completed + n, self.total)

    def update(
        self, *, completed: int | None = None, total: int | None = None, description: str = ""
    ) -> None:
        """Absolute figures, as a callback ``(done, total)`` gives them; or a new label."""
        with self._lock:
            self._set(
                self.completed if completed is None else completed,
                self.total if total is None else total,
                description,
            )

    def _set(self, completed: int, total: int | None, description: str = "") -> None:
        self.completed, self.total = completed, total
        now = time.monotonic()
        finish_at = None
        if total is not None and completed > 0:
            spent = now - self._stage_started
            finish_at = now + spent * max(0, total - completed) / completed
        extra: dict[str, Any] = {"description": description} if description else {}
        self._progress.update(
            self._task, completed=completed, total=total, pg_finish_at=finish_at, **extra
        )

    def stage(self, description: str, *, total: int | None = None) -> None:
        """A new stage (pack: checking, then encrypting): count, rate and ETA start again;
        the end line's duration still covers the whole command."""
        with self._lock:
            self._stage_started = time.monotonic()
            self.completed, self.total = 0, total
            self._progress.reset(self._task, total=total, description=description)
            self._progress.update(self._task, pg_finish_at=None)

    # -- lifetime ------------------------------------------------------------------------------
    def __enter__(self) -> Bar:
        self._started = self._stage_started = time.monotonic()
        self._progress.start()
        self._progress.reset(self._task, total=self.total, pg_finish_at=None)
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ended = time.monotonic()
        self._progress.stop()
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.console.print(self.stopped_line(), highlight=False, soft_wrap=True)
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested or not self.cooperative:
            if not self.stop_requested:
                self.acknowledge(self.stopping or "removing what was half-written")
            self.stop_requested = True
            raise KeyboardInterrupt
        self.stop_requested = True
        self.acknowledge(
            f"finishing {self.in_flight} {self.unit} in flight (Ctrl-C again to stop now)"
        )

    def acknowledge(self, what: str) -> None:
        """Print ``stopping: <what>`` at once, above the bar."""
        self.console.print(f"stopping: {what}", highlight=False, soft_wrap=True)

    # -- what the end says ---------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return (self._ended or time.monotonic()) - self._started

    def rate_text(self) -> str:
        """The rate of the last stage (the whole command when there is one stage)."""
        spent = (self._ended or time.monotonic()) - self._stage_started
        rate = self.completed / spent if spent > 0 else 0.0
        return f"{decimal(int(rate))}/s" if self.as_bytes else f"{rate:.1f} {self.unit}/s"

    def end_line(self, extra: Sequence[str] = ()) -> str:
        """``500 files in 1 min 10 s (7.1 files/s)`` then ``extra``, comma-separated."""
        unit = self.unit[:-1] if self.completed == 1 and self.unit.endswith("s") else self.unit
        done = decimal(self.completed) if self.as_bytes else f"{self.completed} {unit}"
        head = f"{done} in {duration(self.elapsed)} ({self.rate_text()})"
        return ", ".join([head, *extra])

    def stopped_line(self) -> str:
        """What was done before a stop: ``stopped after 120/500 files in 12 s``."""
        if self.as_bytes:
            done = decimal(self.completed) + (f" of {decimal(self.total)}" if self.total else "")
        else:
            done = f"{self.completed}/{'?' if self.total is None else self.total} {self.unit}"
        return f"stopped after {done} in {duration(self.elapsed)}"

    def interrupted_line(self, command: str) -> str:
        """What was done before the stop, and the command that finishes the job."""
        return f"{self.stopped_line()}; to finish: {command}"


def resume_command(argv: Sequence[str] | None = None) -> str:
    """The command line that was run, quoted for a shell: run it again to resume."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["pacsguard", *args])
