"""``verify --cluster``: the same report as a local run (the tree's evidence included), from
Dask's own scheduler and workers on 127.0.0.1; the mapping's values never enter a task."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacsguard.cli import main
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey
from pacsguard.verify import verify
from pacsguard.verify.findings import Finding
from test_deid_cluster import Cluster
from verify_corpus import plant_tree


@pytest.fixture(scope="module")
def planted(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    """A de-identified sample tree with identifiers planted after de-identification, and
    the mapping that names them."""
    root = tmp_path_factory.mktemp("verify-cluster")
    mapping = root / "mapping.csv"
    config = DeidConfig(jobs=2, mapping_out=mapping, burned_in="keep")
    deidentify([sample_corpus[0]], root / "clean", key=project_key, config=config)
    plants, extended = plant_tree(root / "clean", mapping, root / "tree")
    assert plants
    return root / "tree", extended


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dask-verify"))
    try:
        running.add_worker(None)  # verify needs no key
        running.add_worker(None)
        running.wait_for(2)
        yield running
    finally:
        running.close()


def _facts(findings: list[Finding]) -> list[tuple[str, ...]]:
    return sorted(
        (f.file, f.location, f.kind, f.finding_class, f.reason, f.patient, f.study, f.series)
        for f in findings
    )


@pytest.mark.parametrize("with_mapping", [True, False])
def test_scheduler_and_workers_give_the_local_report(
    planted: tuple[Path, Path], dask_cluster: Cluster, with_mapping: bool
) -> None:
    tree, mapping = planted
    given = mapping if with_mapping else None
    local = verify(tree, mapping=given, ocr=False, jobs=1)
    remote = verify(tree, mapping=given, ocr=False, cluster=dask_cluster.address)
    assert local.identifiers, "the planted tree must have findings to compare"
    assert _facts(remote.findings) == _facts(local.findings)
    assert remote.files_checked == local.files_checked
    assert remote.files_skipped == local.files_skipped
    assert [f.value for f in sorted(remote.findings, key=_facts_of)] == [
        f.value for f in sorted(local.findings, key=_facts_of)
    ]


def test_the_mapping_never_enters_a_task(planted: tuple[Path, Path]) -> None:
    """What is submitted names the mapping by its path: no original value is in the task."""
    import pickle

    from pacsguard.core.io import iter_inputs
    from pacsguard.verify.known import KnownValues
    from pacsguard.verify.scan import Job

    tree, mapping = planted
    known = KnownValues.from_mapping(mapping)
    job = Job(tree, known, (), False, False, run="r")
    submitted: list[bytes] = []

    class Recorder:
        def nthreads(self) -> dict[str, int]:
            return {"w": 1}

        def submit(self, fn: object, *args: object, **kwargs: object) -> object:
            submitted.append(pickle.dumps(args))
            return _Done(fn, args)

    import contextlib

    from pacsguard.deid import cluster as deid_cluster
    from pacsguard.verify import cluster as verify_cluster

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            deid_cluster, "open_client", lambda address: contextlib.nullcontext(Recorder())
        )
        items = list(iter_inputs([tree]))
        results = list(verify_cluster.results_on_cluster(items, job, "local:1", mapping))
    assert len(results) == len(items) and submitted
    originals = [o for kind, o, _ in _mapping_rows(mapping) if len(o) >= 6]
    assert originals
    blob = b"".join(submitted)
    assert not [o for o in originals if o.encode() in blob]


def _mapping_rows(mapping: Path) -> list[tuple[str, str, str]]:
    import csv

    with mapping.open(encoding="utf-8", newline="") as handle:
        return [(r[0], r[1], r[2]) for r in csv.reader(handle) if len(r) >= 3][1:]


class _Done:
    def __init__(self, fn: object, args: tuple[object, ...]) -> None:
        self.value = fn(*args)  # type: ignore[operator]

    def result(self) -> object:
        return self.value

    def release(self) -> None:
        return None


def _facts_of(f: Finding) -> tuple[str, ...]:
    return (f.file, f.location, f.kind, f.finding_class, f.reason)


def test_local_cluster_and_the_cli(
    planted: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree, mapping = planted
    report = tmp_path / "r.json"
    argv = ["pacsguard", "verify", str(tree), "--mapping", str(mapping), "--no-ocr"]
    monkeypatch.setattr(sys, "argv", [*argv, "--cluster", "local:2", "--json", str(report)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 1  # the planted identifiers fail the run
    doc = json.loads(report.read_text())
    local = verify(tree, mapping=mapping, ocr=False, jobs=1)
    assert len(doc["findings"]) == len(local.findings) and not doc["clean"]
    monkeypatch.setattr(sys, "argv", [*argv, "--cluster", "nowhere:x"])
    with pytest.raises(SystemExit) as refused:
        main()
    assert refused.value.code == 2 and "Traceback" not in capsys.readouterr().err
