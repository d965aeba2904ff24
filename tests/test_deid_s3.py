"""deid with inputs, outputs and quarantine as s3:// URLs, against a real S3 peer.

The peer is moto's S3 server (``ThreadedMotoServer``) on 127.0.0.1; s3fs reaches it through
``AWS_ENDPOINT_URL``, with credentials in the environment only. Outputs are byte-identical to
a local run with the same key (one process, a process pool, ``--cluster local:2``); a run
killed mid-way and run again ends with every input exactly once and no temporary object
left; damaged inputs are quarantined with their reason, locally or in a bucket; a missing
extra, an unreachable store, a missing bucket and credentials in a URL are one clear line
each (exit 2), and the secret key never appears in any output, log or state file."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pacsguard.core.errors import PacsguardError
from pacsguard.core.keys import ProjectKey
from pacsguard.deid.pipeline import DeidConfig, deidentify
from pacsguard.sample import AnswerKey
from test_deid_cluster import (
    DASK,
    Cluster,
    first_ct,
    journal_rows,
    journalled,
    local_manifest,
    many_files,
    reference,  # noqa: F401 - the fixture: the sample corpus de-identified locally
    tree,
    write_key,
)

BIN = Path(sys.executable).parent
SECRET = "s3-secret-that-must-never-show-0123456789"
pytestmark = pytest.mark.timeout(400)


class S3:
    """moto's S3 server on 127.0.0.1 and an s3fs view of it."""

    def __init__(self, endpoint: str, root: Path) -> None:
        import s3fs

        self.endpoint = endpoint
        self.env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "pacsguard-test",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never the instance metadata address
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        }
        self.fs = s3fs.S3FileSystem(
            key="pacsguard-test",
            secret=SECRET,
            client_kwargs={"endpoint_url": endpoint},
            skip_instance_cache=True,
        )
        self.buckets = 0
        self.run = uuid.uuid4().hex[:8]

    def bucket(self) -> str:
        self.buckets += 1
        # moto keeps its buckets per process, not per server: another module's peer in the
        # same test worker has made bucket-001 already
        name = f"bucket-{self.run}-{self.buckets:03d}"
        self.fs.mkdir(name)
        return name

    def upload(self, local: Path, url: str) -> None:
        self.fs.put(str(local) + "/", url, recursive=True)
        self.fs.invalidate_cache()

    def tree(self, url: str) -> dict[str, bytes]:
        self.fs.invalidate_cache()
        root = url.split("://", 1)[1]
        return {key[len(root) + 1 :]: self.fs.cat_file(key) for key in sorted(self.fs.find(root))}

    def subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PACSGUARD_KEY", "AWS_"))}
        return {**env, **self.env}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        peer = S3(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("aws"))
        with pytest.MonkeyPatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("AWS_")]:
                patch.delenv(name)
            for name, value in peer.env.items():
                patch.setenv(name, value)
            # fsspec keeps one filesystem per process and settings, made from the environment
            # it first saw: an earlier module's peer (another port) must not be reused
            s3fs.S3FileSystem.clear_instance_cache()
            yield peer
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.fixture(scope="module")
def corpus_url(s3: S3, sample_corpus: tuple[Path, AnswerKey]) -> str:
    url = f"s3://{s3.bucket()}/corpus"
    s3.upload(sample_corpus[0], url)
    return url


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, project_key: ProjectKey) -> Path:
    return write_key(tmp_path_factory.mktemp("key") / "project.key", project_key)


def same_outcomes(state: Path, reference_out: Path, corpus: Path, url: str) -> None:
    """The local manifest's outcomes as a local run's, the input named by URL not path."""
    ours = json.loads((state / "manifest.json").read_text())["outcomes"]
    for outcome in ours:
        assert outcome["input"].startswith(url + "/")
        outcome["input"] = str(corpus / outcome["input"][len(url) + 1 :])
        outcome.pop("fingerprint")
    theirs = local_manifest(reference_out)
    for outcome in theirs:
        outcome.pop("fingerprint")
    assert sorted(ours, key=lambda o: str(o["input"])) == theirs


@pytest.mark.parametrize("jobs", [1, 2])
def test_s3_in_s3_out_matches_a_local_run(
    tmp_path: Path,
    s3: S3,
    corpus_url: str,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    reference: Path,  # noqa: F811
    jobs: int,
) -> None:
    out = f"s3://{s3.bucket()}/deid"
    state = tmp_path / "state"
    config = DeidConfig(jobs=jobs, burned_in="keep", state_dir=state)
    report = deidentify([corpus_url], out, key=project_key, config=config)
    assert report.inputs == len(local_manifest(reference))
    assert s3.tree(out) == tree(reference)  # byte for byte, the output manifest included
    same_outcomes(state, reference, sample_corpus[0], corpus_url)
    assert not [name for name in s3.tree(out) if ".tmp-" in name]


def test_local_cluster_with_s3_matches_a_local_run(
    tmp_path: Path,
    s3: S3,
    corpus_url: str,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    key_file: Path,
    reference: Path,  # noqa: F811
) -> None:
    out = f"s3://{s3.bucket()}/deid"
    state = tmp_path / "state"
    config = DeidConfig(cluster="local:2", key_file=key_file, batch_size=4, burned_in="keep",
                        state_dir=state)  # fmt: skip
    deidentify([corpus_url], out, key=project_key, config=config)
    assert s3.tree(out) == tree(reference)
    same_outcomes(state, reference, sample_corpus[0], corpus_url)


def test_a_run_killed_mid_way_resumes_exactly_once(
    tmp_path: Path, s3: S3, sample_corpus: tuple[Path, AnswerKey], key_file: Path
) -> None:
    local = many_files(first_ct(sample_corpus[0]), tmp_path / "in", 240)
    bucket = s3.bucket()
    inputs, out = f"s3://{bucket}/in", f"s3://{bucket}/out"
    s3.upload(local, inputs)
    state = tmp_path / "state"
    argv = [str(BIN / "pacsguard"), "deid", inputs, out, "--key", str(key_file),
            "--state", str(state), "-j", "2"]  # fmt: skip
    run = subprocess.Popen(argv, env=s3.subprocess_env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while journalled(state) < 30 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be killed"
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    first = journalled(state)
    assert 30 <= first < 240
    again = subprocess.run(argv, env=s3.subprocess_env(), capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    assert f"({first} done by an earlier run)" in again.stderr.decode()
    rows = journal_rows(state)
    assert sorted(label for label, _, _ in rows) == sorted(
        f"{inputs}/{p.name}" for p in local.glob("*.dcm")
    )
    owned = sorted(output for _, status, output in rows if status == "output")
    assert len(owned) == len(set(owned)) == 240
    written = s3.tree(out)
    assert sorted(name for name in written if name.endswith(".dcm")) == owned
    assert not [name for name in written if ".tmp-" in name]
    manifest = json.loads(written["pacsguard-deid.json"])
    assert manifest["complete"] is True and manifest["counts"]["output"] == 240
    assert SECRET not in again.stderr.decode()


def damaged_inputs(root: Path, sample: Path) -> Path:
    good = first_ct(sample)
    root.mkdir()
    (root / "good.dcm").write_bytes(good.read_bytes())
    (root / "truncated.dcm").write_bytes(good.read_bytes()[:1000])
    (root / "notes.txt").write_bytes(b"not DICOM at all\n")
    return root


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_damaged_inputs_are_quarantined_with_their_reason(
    tmp_path: Path,
    s3: S3,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    where: str,
) -> None:
    bucket = s3.bucket()
    inputs = f"s3://{bucket}/in"
    s3.upload(damaged_inputs(tmp_path / "in", sample_corpus[0]), inputs)
    state = tmp_path / "state"
    quarantine: Path | str = state / "quarantine" if where == "local" else f"s3://{s3.bucket()}/q"
    config = DeidConfig(jobs=1, state_dir=state, quarantine_dir=quarantine)
    report = deidentify([inputs], f"s3://{bucket}/out", key=project_key, config=config)
    assert (report.inputs, report.output, report.quarantine) == (3, 1, 2)
    if isinstance(quarantine, Path):
        kept = {p.name: p.read_bytes() for p in quarantine.iterdir()}
    else:
        kept = {name: data for name, data in s3.tree(quarantine).items()}
    records = [json.loads(data) for name, data in kept.items() if name.endswith(".json")]
    assert sorted(r["input"] for r in records) == [f"{inputs}/notes.txt", f"{inputs}/truncated.dcm"]
    assert all(r["reason"] for r in records)
    originals = {(tmp_path / "in" / n).read_bytes() for n in ("notes.txt", "truncated.dcm")}
    assert {data for name, data in kept.items() if name.endswith(".bin")} == originals
    rows = {label: status for label, status, _ in journal_rows(state)}
    assert rows[f"{inputs}/good.dcm"] == "output" and list(rows.values()).count("quarantine") == 2


def run_cli(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pacsguard"), "deid", *argv], env=env, capture_output=True, text=True,
        timeout=120, cwd=cwd,
    )  # fmt: skip


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    err = " ".join(done.stderr.split())  # the console wraps long lines
    assert done.returncode == 2, err
    assert "Traceback" not in err and err.startswith("error:"), err
    for word in words:
        assert word in err, err
    assert SECRET not in done.stderr + done.stdout


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_store_problems_are_one_clear_line(
    tmp_path: Path, s3: S3, corpus_url: str, key_file: Path
) -> None:
    env = s3.subprocess_env()
    state = ["--state", str(tmp_path / "state"), "--key", str(key_file)]
    missing = run_cli([corpus_url, "s3://no-such-bucket-here/out", *state], env, tmp_path)
    assert_one_clear_error(missing, "s3://no-such-bucket-here", "no such bucket")
    unreachable = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
                   "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
    down = run_cli([corpus_url, f"s3://{s3.bucket()}/out", *state], unreachable, tmp_path)
    assert_one_clear_error(down, "cannot use s3://", "unreachable")
    inline = run_cli([corpus_url, "s3://someone:hunter2@bucket/out", *state], env, tmp_path)
    assert_one_clear_error(inline, "credentials", "never argv")
    assert "hunter2" not in inline.stderr
    on_url = run_cli([corpus_url, f"s3://{s3.bucket()}/out", "--state", "s3://x/state",
                      "--key", str(key_file)], env, tmp_path)  # fmt: skip
    assert_one_clear_error(on_url, "--state must be a local folder")


def test_without_the_cloud_extra_a_url_is_one_clear_line(
    tmp_path: Path, s3: S3, corpus_url: str, key_file: Path
) -> None:
    hidden = tmp_path / "hide"
    for name in ("s3fs", "fsspec"):
        (hidden / name).mkdir(parents=True)
        (hidden / name / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = s3.subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hidden), env.get("PYTHONPATH")]))
    done = run_cli([corpus_url, str(tmp_path / "out"), "--key", str(key_file)], env, tmp_path)
    assert_one_clear_error(done, "pacsguard[cloud]")


def test_the_secret_never_reaches_a_state_file_or_the_output(
    tmp_path: Path, s3: S3, corpus_url: str, key_file: Path
) -> None:
    out = f"s3://{s3.bucket()}/deid"
    state = tmp_path / "state"
    done = run_cli([corpus_url, out, "--key", str(key_file), "--state", str(state),
                    "--keep-burned-in", "--no-pixel-cleaning", "-j", "2"],
                   s3.subprocess_env(), tmp_path)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    assert SECRET not in done.stderr + done.stdout
    for path in state.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    for name, data in s3.tree(out).items():
        assert SECRET.encode() not in data, name


def test_an_output_inside_the_input_prefix_is_refused(
    s3: S3, corpus_url: str, project_key: ProjectKey, tmp_path: Path
) -> None:
    config = DeidConfig(state_dir=tmp_path / "state")
    with pytest.raises(PacsguardError, match="inside the input"):
        deidentify([corpus_url], corpus_url + "/out", key=project_key, config=config)


def test_a_finished_s3_run_resumes_checks_and_redoes(
    tmp_path: Path,
    s3: S3,
    corpus_url: str,
    project_key: ProjectKey,
    reference: Path,  # noqa: F811
) -> None:
    out = f"s3://{s3.bucket()}/deid"
    state = tmp_path / "state"
    config = DeidConfig(jobs=1, burned_in="keep", state_dir=state)
    first = deidentify([corpus_url], out, key=project_key, config=config)
    again = deidentify([corpus_url], out, key=project_key, config=replace(config, check=True))
    assert again.resumed == first.inputs and again.redone == 0
    changed = next(name for name in s3.tree(out) if name.endswith(".dcm"))
    s3.fs.pipe_file(f"{out}/{changed}".split("://", 1)[1], b"tampered")
    healed = deidentify([corpus_url], out, key=project_key, config=replace(config, check=True))
    assert healed.redone == 1 and s3.tree(out) == tree(reference)
    redone = deidentify([corpus_url], out, key=project_key, config=replace(config, redo=True))
    assert redone.resumed == 0 and redone.inputs == first.inputs
    assert s3.tree(out) == tree(reference)


def test_a_worker_that_cannot_reach_the_store_stops_the_run_before_it_starts(
    tmp_path: Path, s3: S3, corpus_url: str, project_key: ProjectKey, key_file: Path
) -> None:
    """A `dask worker` with its own (wrong) endpoint: the client reaches the store, the
    worker does not; the run refuses to start and names the worker, not the secret."""
    running = Cluster(tmp_path / "dask")
    try:
        env = {**s3.subprocess_env(), "PACSGUARD_KEY_FILE": str(key_file),
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
               "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
        running._spawn(
            [DASK, "worker", "--scheduler-file", str(running.file), "--host", "127.0.0.1",
             "--nthreads", "1", "--no-nanny", "--no-dashboard"],
            env,
        )  # fmt: skip
        running.wait_for(1)
        out = f"s3://{s3.bucket()}/deid"
        config = DeidConfig(cluster=running.address, state_dir=tmp_path / "state")
        with pytest.raises(PacsguardError) as caught:
            deidentify([corpus_url], out, key=project_key, config=config)
    finally:
        running.close()
    message = str(caught.value)
    assert "did not start" in message and "Dask worker tcp://127.0.0.1:" in message
    assert "cannot use s3://" in message and SECRET not in message
    assert journalled(tmp_path / "state") == 0


def test_local_inputs_into_an_s3_output_match_a_local_run(
    tmp_path: Path,
    s3: S3,
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    reference: Path,  # noqa: F811
) -> None:
    out = f"s3://{s3.bucket()}/deid"
    config = DeidConfig(jobs=2, burned_in="keep", state_dir=tmp_path / "state")
    deidentify([sample_corpus[0]], out, key=project_key, config=config)
    assert s3.tree(out) == tree(reference)
    ours = json.loads((tmp_path / "state" / "manifest.json").read_text())["outcomes"]
    assert sorted(ours, key=lambda o: str(o["input"])) == local_manifest(reference)
