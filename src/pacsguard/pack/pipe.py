"""Join a producer that writes a byte stream to a consumer that reads it, through a pipe.

pyrage pulls its input from a reader and pushes its output to a writer, as tarfile
does in stream mode: a pipe between two threads connects them with a bounded buffer,
so nothing is ever held whole in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Callable
from typing import BinaryIO, TypeVar

P = TypeVar("P")
C = TypeVar("C")
BUFFER = 1 << 20


def _widen(fd: int) -> None:
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsize, BUFFER)


def run_pipeline(produce: Callable[[BinaryIO], P], consume: Callable[[BinaryIO], C]) -> tuple[P, C]:
    """Run ``produce`` in a thread and ``consume`` here; return both results.

    The consumer's input is drained to its end, so the producer always finishes
    (an age decryption authenticates its last chunk only then). When both fail,
    the producer's error wins unless it is the broken pipe the consumer caused.
    """
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    writer = os.fdopen(write_fd, "wb", buffering=BUFFER)
    reader = os.fdopen(read_fd, "rb", buffering=BUFFER)
    produced: list[P] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            produced.append(produce(writer))
        except BaseException as exc:
            failed.append(exc)
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    thread = threading.Thread(target=run, name="pacsguard-pack-pipe", daemon=True)
    thread.start()
    consumer_error: BaseException | None = None
    try:
        consumed = consume(reader)
        while reader.read(BUFFER):
            pass
    except BaseException as exc:
        consumer_error = exc
    finally:
        reader.close()  # a producer blocked on a full pipe now gets EPIPE
        thread.join()
    producer_error = failed[0] if failed else None
    if producer_error is not None and not isinstance(producer_error, BrokenPipeError):
        raise producer_error
    if consumer_error is not None:
        raise consumer_error
    if producer_error is not None:
        raise producer_error
    return produced[0], consumed
