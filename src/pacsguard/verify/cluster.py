"""``verify --cluster``: the files of a tree checked on a Dask cluster, the verdict here.

Workers check batches of files (``scan.check_item``, as the local pool does); the client
alone weighs the tree's evidence and writes the report, so a finding is classified exactly
as in a local run. What travels:

- to the workers: the inputs' paths (the tree must be on storage every worker reaches), the
  options, and the *path* of the re-identification mapping — never its content: each worker
  reads it from the shared storage (cached by path, size and modification time);
- back: each file's findings with the values found (the tree's evidence weighs a value by
  the patients it recurs under, here, as in a local run), the pseudonymous group of the
  file, and the OCR thumbnails, whose text boxes are filled in. Between machines, run the
  cluster with Dask's TLS (``distributed.comm.require-encryption``): the residual
  identifiers a finding carries are PHI.

Batches go out in bounded waves (at most ``WAVE`` per worker thread in flight) and come back
in the tree's order, so the report lists files as a local run does.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pacsguard.core.io import InputItem
from pacsguard.verify.known import KnownValues
from pacsguard.verify.scan import BATCH, ItemResult, Job, check_item

WAVE = 4  # batches in flight per worker thread


@lru_cache(maxsize=4)
def _mapping(path: str, size: int, mtime_ns: int) -> KnownValues:
    del size, mtime_ns  # part of the cache key: a changed file is read again
    return KnownValues.from_mapping(Path(path))


def _worker_job(job: Job, mapping: str | None) -> Job:
    if mapping is None:
        return job
    stat = Path(mapping).stat()
    return replace(job, known=_mapping(mapping, stat.st_size, stat.st_mtime_ns))


def check_remote(items: list[InputItem], job: Job, mapping: str | None) -> list[ItemResult]:
    """A batch checked on a worker, the mapping read there."""
    local = _worker_job(job, mapping)
    return [check_item(item, local) for item in items]


def results_on_cluster(
    items: list[InputItem], job: Job, address: str, mapping: Path | None
) -> Iterator[ItemResult]:
    """Every item's result, in order, from the Dask cluster at ``address`` (``local[:N]``
    starts one here)."""
    from pacsguard.deid.cluster import open_client, result_of

    remote = replace(job, known=None)  # the mapping's values never enter the task graph
    where = str(mapping.resolve()) if mapping is not None else None
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    with open_client(address) as client:
        threads = max(1, sum(client.nthreads().values()))
        pending: deque[Any] = deque()
        submitted = 0
        while submitted < len(batches) or pending:
            while submitted < len(batches) and len(pending) < WAVE * threads:
                pending.append(
                    client.submit(check_remote, batches[submitted], remote, where, pure=False)
                )
                submitted += 1
            future = pending.popleft()
            yield from result_of(future)
            with contextlib.suppress(Exception):
                future.release()
