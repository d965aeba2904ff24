"""Lines for people: what a command prints, as text, never as markup.

Nearly every line pacsguard prints holds values of the run: paths, AE titles, host names,
reasons. Rich reads ``[...]`` in a printed string as a style, so an output folder named
``study[2]`` was printed as ``study`` (and a quarantine reason naming a file with brackets
lost them). Here a message is text, always; a style is a part of its own::

    say(f"written to {folder}")                        # stderr, as it is
    say(("error:", "bold red"), " ", message)          # a styled word, then text
    say(summary, ("clean", "bold green"), out=True)    # stdout

Rich is imported only when the stream may be a terminal (colour, the live progress bar
of ``terminal_console``). A run whose output goes to a file or a pipe prints the same
words, unwrapped (one message, one line: what a log reader greps for), without importing
Rich: ~50 ms of a ``deid`` run's start on a small machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

Part = str | tuple[str, str]  # text, or (text, Rich style)
Show = Callable[[int, int, str], None]  # done, total, the rate as text


def is_terminal(stream: TextIO) -> bool:
    """Whether Rich would treat ``stream`` as a terminal, by Rich's own rule (its
    ``Console.is_terminal``: ``TTY_COMPATIBLE``, then ``FORCE_COLOR``, then ``isatty``)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed
        return False


@cache
def terminal_console(stderr: bool = True) -> Console:
    """The Rich console of stderr (or stdout): one per stream, for the progress bars and the
    lines printed while they are drawn. It writes to ``sys.stderr`` as it is at each print."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def say(*parts: Part, out: bool = False) -> None:
    """One line on stderr (``out``: stdout): the parts joined, styles only on a terminal."""
    stream = sys.stdout if out else sys.stderr
    if is_terminal(stream):
        from rich.text import Text

        terminal_console(not out).print(Text.assemble(*parts), markup=False)
        return
    stream.write("".join(part if isinstance(part, str) else part[0] for part in parts) + "\n")
    stream.flush()


@contextlib.contextmanager
def live_bar(label: str) -> Iterator[Show]:
    """A file count's live bar on stderr while it is a terminal: the label, the bar,
    done/total, the percentage, the rate (text the caller makes), the time spent and the
    ETA; gone when the block ends (the caller prints its summary). Not a terminal: nothing
    to draw, and Rich is not imported."""
    if not is_terminal(sys.stderr):
        yield _draw_nothing
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label, markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=terminal_console(), transient=True) as bar:
        task = bar.add_task(label, total=None, rate="")
        yield lambda done, total, rate: bar.update(task, completed=done, total=total, rate=rate)


def _draw_nothing(done: int, total: int, rate: str) -> None:
    pass
