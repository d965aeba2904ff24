"""deid on a Dask cluster: Dask's own scheduler and workers, started here on 127.0.0.1.

The same outputs as a local run, byte for byte; every input exactly once when a worker is
killed mid-run and when the client is killed and run again; a worker with another key
stops the run before it starts, naming no key material."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from pacsguard.core.errors import PacsguardError
from pacsguard.core.keys import ProjectKey
from pacsguard.deid.bookkeeping import key_fingerprint
from pacsguard.deid.pipeline import DeidConfig, RunFigures, deidentify
from pacsguard.sample import AnswerKey

BIN = Path(sys.executable).parent
DASK = str(BIN / "dask")
pytestmark = pytest.mark.timeout(300)


def write_key(path: Path, key: ProjectKey) -> Path:
    path.write_text(key.material.hex() + "\n")
    path.chmod(0o600)
    return path


def many_files(source: Path, root: Path, count: int) -> Path:
    """``count`` distinct instances (new SOP Instance UIDs) made from one sample file."""
    template = pydicom.dcmread(source)
    root.mkdir(parents=True)
    for number in range(count):
        template.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1138.{number + 1}"
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.save_as(root / f"{number:05d}.dcm", enforce_file_format=True)
    return root


def first_ct(corpus: Path) -> Path:
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.read_bytes()[128:132] == b"DICM":
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if ds.get("Modality") == "CT":
                return path
    raise AssertionError("no CT in the sample corpus")


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def journal_rows(state: Path) -> list[tuple[str, str, str | None]]:
    db = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT input, status, output FROM outcomes").fetchall()
    finally:
        db.close()


def journalled(state: Path) -> int:
    try:
        return len(journal_rows(state))
    except sqlite3.Error:
        return 0


def assert_exactly_once(inputs: Path, out: Path) -> None:
    """Every input one journal record; every output file one owner; no temporary left."""
    state = out.with_name(out.name + ".pacsguard")
    rows = journal_rows(state)
    labels = [label for label, _, _ in rows]
    assert sorted(labels) == sorted(str(p) for p in inputs.rglob("*.dcm"))
    owned = [output for _, status, output in rows if status == "output"]
    assert len(owned) == len(set(owned))
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.dcm"))
    assert written == sorted(owned)
    assert not [p for p in out.rglob(".tmp-*")]
    manifest = json.loads((out / "pacsguard-deid.json").read_text())
    assert manifest["complete"] is True and manifest["counts"]["pending"] == 0


def dask_env(key_file: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACSGUARD_KEY")}
    if key_file is not None:
        env["PACSGUARD_KEY_FILE"] = str(key_file)
    return env


class Cluster:
    """A `dask scheduler` and `dask worker` processes (no nanny: a killed worker stays
    dead), all on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.file = root / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.scheduler = self._spawn(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.file)],
            dask_env(None),
        )  # fmt: skip
        self.address = self._published_address(deadline=time.monotonic() + 60)
        assert self.address.startswith("tcp://127.0.0.1:")

    def _published_address(self, deadline: float) -> str:
        # The scheduler writes its file in place, not atomically: an existing file may
        # still be empty or half-written, so wait for a whole JSON document.
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                log = (self.root / "process-0.log").read_text(errors="replace")
                pytest.fail(f"dask scheduler exited ({self.scheduler.returncode}):\n{log}")
            try:
                return str(json.loads(self.file.read_text())["address"])
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.1)
        pytest.fail("dask scheduler published no address within 60 s")

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"process-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def add_worker(self, key_file: Path | None) -> subprocess.Popen[bytes]:
        worker = self._spawn(
            [DASK, "worker", "--scheduler-file", str(self.file), "--host", "127.0.0.1",
             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--death-timeout", "60"],
            dask_env(key_file),
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def wait_for(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=120)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, project_key: ProjectKey) -> Path:
    return write_key(tmp_path_factory.mktemp("key") / "project.key", project_key)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        running.add_worker(key_file)
        running.add_worker(key_file)
        running.wait_for(2)
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
) -> Path:
    """The sample corpus de-identified by a local run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    config = DeidConfig(jobs=1, burned_in="keep")
    report = deidentify([sample_corpus[0]], out, key=project_key, config=config)
    assert report.inputs > 10 and report.output + report.quarantine == report.inputs
    return out


def local_manifest(out: Path) -> list[dict[str, object]]:
    state = out.with_name(out.name + ".pacsguard")
    outcomes = json.loads((state / "manifest.json").read_text())["outcomes"]
    return sorted(outcomes, key=lambda o: str(o["input"]))


def test_local_cluster_matches_a_local_run(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    key_file: Path,
    reference: Path,
) -> None:
    out = tmp_path / "out"
    notices: list[str] = []
    config = DeidConfig(cluster="local:2", key_file=key_file, batch_size=4, burned_in="keep")
    figures = RunFigures()
    seen: list[tuple[int, int]] = []
    report = deidentify(
        [sample_corpus[0]],
        out,
        key=project_key,
        config=config,
        notice=notices.append,
        figures=figures,
        progress=lambda done, total: seen.append((done, figures.bytes_done)),
    )
    assert report.inputs == len(local_manifest(reference))
    # the progress figures come from the cluster's commits: every input's bytes, in order
    sizes = sum(p.stat().st_size for p in sample_corpus[0].rglob("*") if p.is_file())
    assert figures.bytes_done == sizes and figures.quarantined == report.quarantine
    assert [b for _, b in seen] == sorted(b for _, b in seen) and seen[-1][0] == report.inputs
    assert tree(out) == tree(reference)  # byte for byte, the output manifest included
    assert local_manifest(out) == local_manifest(reference)
    assert any("2 workers" in line for line in notices)
    assert_exactly_once_labels(sample_corpus[0], out)


def assert_exactly_once_labels(inputs: Path, out: Path) -> None:
    rows = journal_rows(out.with_name(out.name + ".pacsguard"))
    labels = [label for label, _, _ in rows]
    assert len(labels) == len(set(labels)) == sum(1 for p in inputs.rglob("*") if p.is_file())
    assert not [p for p in out.rglob(".tmp-*")]


def test_scheduler_and_workers_match_a_local_run(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    cluster: Cluster,
    reference: Path,
) -> None:
    out = tmp_path / "out"
    config = DeidConfig(cluster=cluster.address, batch_size=3, burned_in="keep")
    deidentify([sample_corpus[0]], out, key=project_key, config=config)
    assert tree(out) == tree(reference)
    assert local_manifest(out) == local_manifest(reference)
    assert_exactly_once_labels(sample_corpus[0], out)


def test_a_worker_killed_mid_run_loses_nothing(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    key_file: Path,
    cluster: Cluster,
) -> None:
    inputs = many_files(first_ct(sample_corpus[0]), tmp_path / "in", 240)
    victim = cluster.add_worker(key_file)
    cluster.wait_for(3)
    out = tmp_path / "out"
    state = tmp_path / "out.pacsguard"
    killed = threading.Event()

    def kill_when_started() -> None:
        deadline = time.monotonic() + 240
        while journalled(state) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    config = DeidConfig(cluster=cluster.address, batch_size=6)
    report = deidentify([inputs], out, key=project_key, config=config)
    killer.join(5)
    assert killed.is_set() and victim.wait(10) == -signal.SIGKILL
    assert report.inputs == report.output == 240 and report.quarantine == 0
    assert_exactly_once(inputs, out)


def test_a_client_killed_mid_run_resumes_with_no_duplicates_no_losses(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    key_file: Path,
    cluster: Cluster,
) -> None:
    inputs = many_files(first_ct(sample_corpus[0]), tmp_path / "in", 240)
    out = tmp_path / "out"
    state = tmp_path / "out.pacsguard"
    argv = [str(BIN / "pacsguard"), "deid", str(inputs), str(out), "--key", str(key_file),
            "--cluster", cluster.address, "--cluster-batch", "5"]  # fmt: skip
    client = subprocess.Popen(argv, env=dask_env(None), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while journalled(state) < 30 and client.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.poll() is None, "the run ended before it could be killed"
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    first = journalled(state)
    assert 30 <= first < 240
    again = subprocess.run(argv, env=dask_env(None), capture_output=True, timeout=240)
    assert again.returncode == 0, again.stderr.decode()
    assert f"({first} done by an earlier run)" in again.stderr.decode()
    assert_exactly_once(inputs, out)


def test_a_worker_with_another_key_stops_the_run_before_it_starts(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    other_key: ProjectKey,
) -> None:
    wrong = write_key(tmp_path / "other.key", other_key)
    out = tmp_path / "out"
    config = DeidConfig(cluster="local:1", key_file=wrong, burned_in="keep")
    with pytest.raises(PacsguardError) as caught:
        deidentify([sample_corpus[0]], out, key=project_key, config=config)
    message = str(caught.value)
    assert "did not start" in message and "different project key" in message
    for secret in (project_key, other_key):
        assert secret.material.hex() not in message
        assert key_fingerprint(secret) not in message
    assert not list(out.rglob("*.dcm"))
    assert journalled(tmp_path / "out.pacsguard") == 0


def test_a_worker_without_a_key_stops_the_run_with_one_error_line(
    tmp_path: Path,
    sample_corpus: tuple[Path, AnswerKey],
    key_file: Path,
) -> None:
    running = Cluster(tmp_path / "dask")
    try:
        running.add_worker(None)
        running.wait_for(1)
        argv = [str(BIN / "pacsguard"), "deid", str(sample_corpus[0]), str(tmp_path / "out"),
                "--key", str(key_file), "--cluster", running.address, "--no-pixel-cleaning",
                "--keep-burned-in"]  # fmt: skip
        done = subprocess.run(argv, env=dask_env(None), capture_output=True, timeout=240)
    finally:
        running.close()
    err = " ".join(done.stderr.decode().split())  # the console wraps long lines
    assert done.returncode == 2, err
    assert "cannot load the project key" in err and "Traceback" not in err
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_a_bad_cluster_address_is_one_clear_error(
    tmp_path: Path, sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey
) -> None:
    for address in ("local:0", "http://example", "somewhere"):
        with pytest.raises(PacsguardError, match="--cluster"):
            deidentify(
                [sample_corpus[0]],
                tmp_path / "out",
                key=project_key,
                config=DeidConfig(cluster=address),
            )
    assert not (tmp_path / "out").exists()


def test_client_memory_stays_flat_while_resuming_a_large_journal(tmp_path: Path) -> None:
    """A synthetic journal (no real files): resuming 400,000 inputs needs no more memory
    than resuming 100,000, within 16 bytes an input (measured: 10; holding the inputs
    would cost ~740 an input), and under 64 MB in all. bench/journal_memory.py runs it at
    any size (docs/scale.md)."""
    script = Path(__file__).parents[1] / "bench" / "journal_memory.py"
    done = subprocess.run(
        [sys.executable, str(script), "model", str(tmp_path), "400000"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["peak_mb"] < 64
    assert figures["bytes_per_input"] < 16
