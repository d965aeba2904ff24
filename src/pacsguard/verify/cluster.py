"""``pacsguard verify --cluster``: the same checks, run on a Dask cluster's workers.

The client walks the tree and sends batches of files (``BATCH``), a bounded number at a
time; each worker reads the files from the storage they share and checks them with the
same code as a local run (``scan.check_items``). The re-identification mapping holds
original identifiers: it never travels in a task, each worker reads it from its path (on
the shared storage), once per run. Results are collected in the order the batches were
sent, so the report lists the findings as a local run does.
"""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path
from typing import Any

from pacsguard.core.errors import InputError
from pacsguard.core.io import InputItem, iter_inputs
from pacsguard.deid.cluster import open_client, result_of
from pacsguard.verify.known import KnownValues
from pacsguard.verify.scan import Tally, check_items

BATCH = 256  # files per task: a file costs far more to verify than a task does
WAVE = 2  # tasks in flight per worker thread

_KNOWN: dict[tuple[str, int, int], KnownValues] = {}  # per worker: the mapping, read once


def _known(mapping: str | None) -> KnownValues | None:
    if mapping is None:
        return None
    stat = Path(mapping).stat()
    key = (mapping, stat.st_size, stat.st_mtime_ns)
    if key not in _KNOWN:
        _KNOWN.clear()
        _KNOWN[key] = KnownValues.from_mapping(Path(mapping))
    return _KNOWN[key]


def _verify_batch(
    items: list[InputItem], root: str, mapping: str | None, ocr: bool, options: list[str]
) -> Tally:
    return check_items(items, Path(root), _known(mapping), ocr=ocr, options=options)


def verify_on_cluster(
    address: str, path: Path, *, mapping: Path | None, ocr: bool, options: list[str]
) -> Tally:
    """Every file under ``path``, checked on the cluster at ``address`` (or ``local[:N]``)."""
    root = str(path.resolve())
    where = None if mapping is None else str(mapping.resolve())
    tally = Tally()
    with open_client(address) as client:
        threads = max(1, sum(client.nthreads().values()))
        pending: deque[Any] = deque()
        walk = iter(iter_inputs([path.resolve()]))
        while batch := list(itertools.islice(walk, BATCH)):
            pending.append(
                client.submit(_verify_batch, batch, root, where, ocr, options, pure=False)
            )
            while len(pending) >= threads * WAVE:
                tally.add(result_of(pending.popleft()))
        while pending:
            tally.add(result_of(pending.popleft()))
    if tally.files_checked + tally.files_skipped == 0 and not path.exists():
        raise InputError(f"{path} does not exist")
    return tally
