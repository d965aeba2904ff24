"""A de-identification run on a Dask cluster, with the guarantees of a local run.

``deidentify(..., config=DeidConfig(cluster="tcp://HOST:8786"))`` (or ``"local:N"``, a
``distributed.LocalCluster`` of N processes bound to 127.0.0.1) runs the same ``Worker``
on the cluster's workers; the client walks, plans, decides and journals, as it does
locally. What changes, and why:

- **Work unit = a batch of files.** A Dask task costs the scheduler and the client about
  0.2-1 ms on an idle machine (bench/cluster_bench.py measures it; docs/scale.md); a file
  costs a worker several ms. A task therefore carries ``FILES_PER_TASK`` files (fewer on
  a very large cluster, so that the inputs in flight stay under ``MAX_IN_FLIGHT`` on the
  client), and at most ``WAVE`` tasks per worker thread are in flight: the scheduler never
  holds more than a few thousand tasks, whatever the size of the run. The inputs
  come streamed from the walk (``streaming.Planner``); a small run is split so that every
  worker gets a share.
- **The key never travels.** Tasks carry the key's keyed fingerprint
  (``bookkeeping.key_fingerprint``), never the key: each worker loads the key itself, from
  ``PACSGUARD_KEY_FILE`` or ``PACSGUARD_KEY`` in its own environment (a local cluster's
  workers are given the path of the client's key file, not its bytes). Before any work,
  every worker is asked for its fingerprint and the run refuses to start, naming the
  worker, when one cannot load a key or loads another; a worker that joins later makes
  its first task fail the same way.
- **Naming: decided by the client, done by the workers.** A worker writes each output
  under a temporary name unique to that attempt (``.tmp-<input fingerprint>-<random>``)
  beside its final name, on the shared storage, and makes it durable there (``syncfs`` on
  the worker: the client's sync cannot flush another host's writes). The client decides
  every final name in its one commit thread, as a local run does (``pipeline.plan_names``:
  an output name that another input owns is a duplicate, same bytes, or a quarantine,
  other bytes, never an overwrite), and hands the decision to a worker, which renames,
  removes and quarantines there and syncs again (``_apply``); only then does the client
  journal. The decision stays in the one place that sees every claim, so "two inputs, one
  output name" is caught across the whole cluster, and the filesystem is changed only by
  hosts that can make their own changes durable.
- **Exactly once.** A batch whose worker died is run again elsewhere (Dask's
  ``distributed.scheduler.allowed-failures``): its attempt writes under fresh temporary
  names, so a retry never races the writes of the attempt it replaces, and the outputs it
  names are the same bytes under the same deterministic names. An ``_apply`` run twice
  finds its renames done and goes on. Nothing is journalled until a worker reports it
  durable, so a client killed at any point resumes from its journal; the temporary files
  of lost attempts are swept at the end of a run that saw a worker leave, and at the
  next start.
- **Shared storage.** The output, quarantine, patient map and key file paths must name
  the same places on every worker and on the client (NFS, or a local disk for a
  LocalCluster): the client walks the inputs, checks resumes and writes the manifests
  there.

Known limit: a client that dies just as it sends an ``_apply`` leaves that task to run
without it; a restarted client then rewrites the same names with the same bytes, except
when two inputs claim one output name with other bytes, where the late rename may land
after the restarted client's (``deid --check`` on the next resume finds such a file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pacsguard.core import remote
from pacsguard.core.errors import InputError, OutputError, PacsguardError
from pacsguard.core.io import InputItem, start_writeback, sync_filesystems
from pacsguard.core.keys import ENV_KEY_FILE, ProjectKey, load_key
from pacsguard.core.remote import RemoteFolder, is_url
from pacsguard.deid.bookkeeping import key_fingerprint
from pacsguard.deid.identity import Identity
from pacsguard.deid.pipeline import (
    SAME_UID,
    DeidConfig,
    ItemResult,
    Naming,
    Worker,
    Written,
    _Place,
    _place,
    _remote_run,
    _Stop,
    _usable_cpus,
)
from pacsguard.deid.policy import Policy
from pacsguard.deid.storage import StoreWorker

FILES_PER_TASK = 1024  # see the module docstring and bench/cluster_bench.py
WAVE = 2  # tasks in flight per worker thread: one running, one queued behind it
# The client holds each input in flight (~740 bytes, measured): at most this many, so a
# cluster of 1,000 threads gets smaller batches instead of 1.5 GB of inputs in flight.
MAX_IN_FLIGHT = 1 << 18
MIN_FILES_PER_TASK = 32
CONNECT_TIMEOUT_S = 20
WORKERS_TIMEOUT_S = 60
LOCAL = re.compile(r"local(?::(\d+))?")
REMOTE = re.compile(r"(tcp|tls|ucx|inproc|ws|wss)://\S+")


class KeyMismatch(PacsguardError):
    """A worker cannot load the project key, or loads another one."""


def parse_address(text: str) -> tuple[str, int | None]:
    """``("local", N or None)`` or ``(scheduler address, None)``; a clear error otherwise."""
    match = LOCAL.fullmatch(text.strip())
    if match:
        count = int(match.group(1)) if match.group(1) else None
        if count == 0:
            raise InputError("--cluster local:N needs at least one worker")
        return "local", count
    if REMOTE.fullmatch(text.strip()):
        return text.strip(), None
    raise InputError(
        f"--cluster {text!r}: give a Dask scheduler address (tcp://HOST:8786) or local[:N]"
    )


@dataclass(frozen=True)
class Spec:
    """What every task carries: the run's settings, nothing secret."""

    run: str
    key_fingerprint: str
    config: DeidConfig
    policy: Policy
    output: str  # a path every worker shares, or a URL (core/remote.py)
    quarantine: str
    remote: bool = False  # a place or an input is a URL: workers move files through scratch


# ---- on the workers -------------------------------------------------------------------

_LOCAL = threading.local()  # one Worker per worker thread (its caches are not shared)


def _worker_key(expected: str) -> ProjectKey:
    try:
        key = load_key(None)
    except PacsguardError as exc:
        raise KeyMismatch(f"cannot load the project key ({exc})") from None
    if key_fingerprint(key) != expected:
        raise KeyMismatch("loads a different project key than the client's")
    return key


def _attempt(name: str) -> str:
    """A temporary name unique to this attempt, so that a batch retried elsewhere never
    writes into the files of the attempt it replaces."""
    return f"{name}-{secrets.token_hex(6)}"


class ClusterWorker(Worker):
    def _temporary(self, relative: Path, item: InputItem) -> str:
        return _attempt(super()._temporary(relative, item))

    def _checked(
        self, item: InputItem, done: ItemResult, identity: Identity, written: Written | None = None
    ) -> ItemResult:
        # The batch's sync runs on this worker's one thread, between its batches (a local
        # pool syncs in the client's commit thread, beside the work): started early, the
        # writeback overlaps the next files instead (measured: bench/cluster_breakdown.py).
        checked = super()._checked(item, done, identity, written)
        if checked.tmp is not None:
            start_writeback(checked.tmp)
        return checked


class ClusterStoreWorker(StoreWorker):
    def _temporary(self, relative: Path, item: InputItem) -> str:
        return _attempt(super()._temporary(relative, item))


def _worker_for(spec: Spec) -> Worker:
    cached = getattr(_LOCAL, "worker", None)
    if cached is not None and cached[0] == spec.run:
        return cached[1]  # type: ignore[no-any-return]
    key = _worker_key(spec.key_fingerprint)
    worker: Worker
    if spec.remote:
        output, quarantine = _place(spec.output), _place(spec.quarantine)
        worker = ClusterStoreWorker(key.material, spec.config, spec.policy, output, quarantine)
    else:
        worker = ClusterWorker(
            key.material, spec.config, spec.policy, Path(spec.output), Path(spec.quarantine)
        )
    _LOCAL.worker = (spec.run, worker)
    return worker


def _key_check(expected: str) -> str | None:
    """On each worker before the run: None when it loads the client's key, else why not."""
    try:
        _worker_key(expected)
    except KeyMismatch as exc:
        return str(exc)
    return None


def _store_check(urls: list[str]) -> str | None:
    """On each worker before the run: None when it reaches every store the run writes to
    (with its own credentials), else why not."""
    for url in urls:
        try:
            RemoteFolder.parse(url).check()
        except PacsguardError as exc:
            return str(exc)
    return None


def _deid_batch(spec: Spec, items: list[InputItem]) -> list[ItemResult]:
    """Phase one: write and check every file under a temporary name, durable here."""
    worker = _worker_for(spec)
    results = worker.process_batch(items)
    _sync(spec)
    return results


def _apply(spec: Spec, naming: Naming) -> list[ItemResult]:
    """Phase two: the client's decision, carried out here; idempotent when retried."""
    worker = _worker_for(spec)
    for tmp in naming.drops:
        if is_url(tmp):
            remote.remove(tmp)
        else:
            Path(tmp).unlink(missing_ok=True)
    for tmp, final in naming.moves:
        if is_url(final):
            remote.move(tmp, final)  # idempotent too
            continue
        try:
            os.rename(tmp, final)  # noqa: PTH104
        except FileNotFoundError:
            if not Path(final).exists():  # neither: not a retry of this very rename
                raise OutputError(
                    "an output written on the cluster vanished before it was named (is the "
                    "output on storage every worker shares?); run the same command again"
                ) from None
    refused = [worker._quarantine(item, SAME_UID) for item in naming.refused]
    _sync(spec)
    return refused


def _sync(spec: Spec) -> None:
    try:
        sync_filesystems(
            *(Path(place) for place in (spec.output, spec.quarantine) if not is_url(place))
        )
    except OSError as exc:
        raise OutputError(
            f"cannot sync the outputs on a worker ({exc.strerror or type(exc).__name__}); "
            "run the same command again to finish"
        ) from None


# ---- on the client --------------------------------------------------------------------


class ClusterRun:
    """The client's side of a run: connected, keys checked; ``executor`` runs batches,
    ``apply`` names outputs on a worker. A context manager: it closes what it opened."""

    def __init__(self, client: Any, cluster: Any, spec: Spec | None) -> None:
        self.client, self._cluster = client, cluster
        self._spec = spec
        self.threads = max(1, sum(client.nthreads().values()))
        self.workers = self._workers()

    @property
    def spec(self) -> Spec:
        assert self._spec is not None, "a deid run's settings (connect)"
        return self._spec

    @spec.setter
    def spec(self, spec: Spec) -> None:
        self._spec = spec

    def _workers(self) -> frozenset[str]:
        return frozenset(self.client.scheduler_info().get("workers", {}))

    def workers_changed(self) -> bool:
        """Whether a worker left or joined since the start: a lost attempt may have left
        temporary files (hidden, never journalled) that the caller may sweep now."""
        return self._workers() != self.workers

    def __enter__(self) -> ClusterRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=10)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)

    def executor(
        self, commit: Callable[[list[ItemResult]], None], stop: _Stop | None = None
    ) -> ClusterExecutor:
        return ClusterExecutor(self, commit, stop)

    def apply(self, naming: Naming) -> list[ItemResult]:
        if not (naming.moves or naming.drops or naming.refused):
            return []
        # ahead of the queued batches: the journal, and the walk behind it, wait for this
        future = self.client.submit(_apply, self.spec, naming, pure=False, priority=100)
        return _result(future)  # type: ignore[no-any-return]


def files_per_task(threads: int) -> int:
    """``FILES_PER_TASK``, less where ``threads * WAVE`` tasks of it would hold more than
    ``MAX_IN_FLIGHT`` inputs on the client."""
    room = MAX_IN_FLIGHT // max(1, threads * WAVE)
    return max(MIN_FILES_PER_TASK, min(FILES_PER_TASK, room))


class ClusterExecutor:
    """Batches of ``FILES_PER_TASK`` files (``batch_size`` to change it), at most ``WAVE``
    per worker thread in flight; finished ones go to ``commit`` in the calling thread."""

    def __init__(
        self,
        run: ClusterRun,
        commit: Callable[[list[ItemResult]], None],
        stop: _Stop | None = None,
    ) -> None:
        self._run, self._commit, self._stop = run, commit, stop
        self._size = run.spec.config.batch_size or files_per_task(run.threads)
        self._buffer: list[InputItem] = []
        self._pending: set[Any] = set()
        self.tasks = 0

    def batch_size(self, todo: int) -> int:
        return max(1, todo)  # batches are cut here, across the walk's chunks

    def submit(self, batch: list[InputItem]) -> None:
        self._buffer.extend(batch)
        while len(self._buffer) >= self._size:
            self._send(self._buffer[: self._size])
            del self._buffer[: self._size]

    def close(self) -> None:
        rest, self._buffer = self._buffer, []
        if self._stop is not None and self._stop.requested:
            rest = []  # Ctrl-C: what was not sent stays to do; those in flight finish
        if rest:  # the tail: spread over every worker thread
            parts = min(len(rest), self._run.threads)
            step = -(-len(rest) // parts)
            for start in range(0, len(rest), step):
                self._send(rest[start : start + step])
        while self._pending:
            done, self._pending = _first_done(self._pending, None)
            for future in done:
                self._commit(_result(future))

    def _send(self, items: list[InputItem]) -> None:
        self.tasks += 1
        key = f"pacsguard-deid-{self._run.spec.run}-{self.tasks}"
        self._pending.add(
            self._run.client.submit(_deid_batch, self._run.spec, items, key=key, pure=False)
        )
        if self._stop is not None:
            self._stop.in_flight = len(self._pending) * len(items)
        while len(self._pending) >= self._run.threads * WAVE and not self._stopping():
            done, self._pending = _first_done(self._pending, 0.5)
            for future in done:
                self._commit(_result(future))

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.requested


def _first_done(pending: set[Any], timeout: float | None) -> tuple[set[Any], set[Any]]:
    """(finished, still pending): at least one finished, or none once ``timeout`` passed."""
    try:
        done, rest = _dask().wait(pending, timeout=timeout, return_when="FIRST_COMPLETED")
    except TimeoutError:
        return set(), pending
    return set(done), set(rest)


def _dask() -> Any:
    """``distributed``, imported when a run asks for a cluster (untyped: held as Any)."""
    import distributed

    return distributed


def _result(future: Any) -> Any:
    """A task's result; a lost batch or a worker error as one clear error."""
    try:
        return future.result()
    except PacsguardError:
        raise
    except _dask().KilledWorker:
        raise OutputError(
            "a batch was lost with every worker that ran it (Dask's allowed-failures); what "
            "was journalled is kept: run the same command again to finish"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise OutputError(
            f"the cluster stopped answering ({type(exc).__name__}); what was journalled is "
            "kept: run the same command again to finish"
        ) from None


def _start_local(count: int | None, key_file: Path | None) -> Any:
    env = {}
    if key_file is not None:  # the path, never the bytes
        env[ENV_KEY_FILE] = str(Path(key_file).resolve())
    return _dask().LocalCluster(
        n_workers=count or _usable_cpus(),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
        env=env,
    )


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own start-up chatter (and a missing dashboard's warning) off the terminal."""
    names = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def open_client(address: str, *, key_file: Path | None = None) -> Iterator[Any]:
    """A Dask client of the scheduler at ``address``, or of a LocalCluster started here for
    ``local[:N]`` (its workers given ``key_file``'s path); closed, with the cluster, after."""
    run = _open(address, key_file)
    try:
        yield run.client
    finally:
        run.__exit__(None, None, None)


def _open(address: str, key_file: Path | None) -> ClusterRun:
    target, count = parse_address(address)
    cluster = None
    try:
        with _quiet_dask():
            if target == "local":
                cluster = _start_local(count, key_file)
                client = _dask().Client(cluster, timeout=f"{CONNECT_TIMEOUT_S}s")
            else:
                client = _dask().Client(target, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise InputError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__})"
        ) from None
    run = ClusterRun(client, cluster, None)
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError:
        run.__exit__(None, None, None)
        raise InputError(
            f"no Dask worker joined the cluster at {address} in {WORKERS_TIMEOUT_S} s"
        ) from None
    run.threads = max(1, sum(client.nthreads().values()))
    run.workers = run._workers()
    return run


def connect(
    address: str,
    key: ProjectKey,
    config: DeidConfig,
    policy: Policy,
    place: _Place,
    *,
    notice: Callable[[str], None] | None = None,
) -> ClusterRun:
    """Connect (or start a local cluster), wait for workers, check every worker's key."""
    run = _open(address, config.key_file)
    client = run.client
    run.spec = Spec(
        run=secrets.token_hex(8),
        key_fingerprint=key_fingerprint(key),
        config=config,
        policy=policy,
        output=str(place.output),
        quarantine=str(place.quarantine),
        remote=_remote_run(place),
    )
    try:
        answers: dict[str, str | None] = client.run(_key_check, run.spec.key_fingerprint)
        refused = sorted((worker, why) for worker, why in answers.items() if why is not None)
        if refused:
            worker, why = refused[0]
            more = f" (and {len(refused) - 1} more workers)" if len(refused) > 1 else ""
            raise KeyMismatch(
                f"the run did not start: Dask worker {worker} {why}{more}; give every worker "
                f"the project key through {ENV_KEY_FILE}"
            )
        stores = sorted(
            {str(p) for p in (place.output, place.quarantine) if isinstance(p, RemoteFolder)}
        )
        if stores:
            reached: dict[str, str | None] = client.run(_store_check, stores)
            failed = sorted((worker, why) for worker, why in reached.items() if why is not None)
            if failed:
                worker, why = failed[0]
                more = f" (and {len(failed) - 1} more workers)" if len(failed) > 1 else ""
                raise OutputError(f"the run did not start: Dask worker {worker}{more}: {why}")
        services = client.scheduler_info().get("services", {})
        if notice is not None:
            notice(f"Dask cluster {address}: {len(answers)} workers, {run.threads} threads")
            if "dashboard" in services:
                notice(f"Dask dashboard: {client.dashboard_link}")
    except BaseException:
        run.__exit__(None, None, None)
        raise
    return run


result_of = _result


__all__ = [
    "FILES_PER_TASK",
    "ClusterRun",
    "KeyMismatch",
    "Spec",
    "connect",
    "files_per_task",
    "open_client",
    "parse_address",
    "result_of",
]
