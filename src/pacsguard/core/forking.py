"""Pools of forked copies of this process, which inherit every table it has loaded."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Fork inside this block: the collector leaves the objects that exist now alone.

    A forked child shares its parent's pages until it writes to them, and a collection
    writes to every object it traverses: without this, each child's first collections copy
    the parent's whole heap (lexicons, dictionaries, memos) page by page, a quarter of a
    verify worker's time. Children keep the objects frozen; this process thaws them on
    leaving, so that its own garbage is collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def fork_pool(
    jobs: int, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A pool of ``jobs`` forked workers. The fork start method forks them all at the first
    ``submit``: make that call inside :func:`frozen_heap`."""
    import multiprocessing  # here: a run done in this process (one file, -j 1) never needs it
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=initializer, initargs=initargs)
