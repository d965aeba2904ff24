"""Forked pools: the collector of a child leaves the parent's objects alone, and the parent
collects its own garbage as before once its workers are forked."""

from __future__ import annotations

import gc
import weakref

from pacsguard.core.forking import fork_pool, frozen_heap


def _frozen_in_child() -> int:
    return gc.get_freeze_count()


def test_workers_forked_inside_the_block_keep_the_heap_frozen() -> None:
    before = gc.get_freeze_count()
    with fork_pool(2) as pool:
        with frozen_heap():
            assert gc.get_freeze_count() > before
            first = pool.submit(_frozen_in_child)
        assert gc.get_freeze_count() == before  # thawed here on leaving
        later = pool.submit(_frozen_in_child)  # an already forked worker
        assert first.result() > 0 and later.result() > 0


def test_the_parent_thaws_even_when_the_fork_fails() -> None:
    before = gc.get_freeze_count()
    try:
        with frozen_heap():
            raise OSError("fork failed")
    except OSError:
        pass
    assert gc.get_freeze_count() == before


def test_what_was_frozen_is_collected_here_once_unreachable() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    cycle = Cycle()
    alive = weakref.ref(cycle)
    with fork_pool(1) as pool:
        with frozen_heap():
            pool.submit(int).result()
        del cycle  # unreachable, in a cycle: only a collection frees it
        gc.collect()
        assert alive() is None
