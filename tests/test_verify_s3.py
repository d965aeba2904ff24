"""verify on an s3:// tree, against a real S3 peer (moto's server on 127.0.0.1).

The report on a store equals the report on the same tree read locally (files, findings and
their labels, patients); a leak placed in the bucket is found; a zip archive on the store,
which is not read there, fails the verdict instead of leaving a silent gap; a prefix with
nothing under it is one clear line (exit 2)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pacsguard.core.errors import InputError
from pacsguard.sample import AnswerKey
from pacsguard.verify.report import to_json
from pacsguard.verify.scan import verify
from test_deid_cluster import reference  # noqa: F401 - the fixture: the corpus de-identified
from test_deid_s3 import S3, s3  # noqa: F401 - the fixture: moto's S3 server

pytestmark = pytest.mark.timeout(300)


def _comparable(report_json: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(report_json)
    return doc


@pytest.fixture(scope="module")
def reference_url(s3: S3, reference: Path) -> str:  # noqa: F811
    url = f"s3://{s3.bucket()}/deid"
    s3.upload(reference, url)
    return url


def test_a_tree_on_the_store_gets_the_local_report(
    s3: S3,  # noqa: F811
    reference: Path,  # noqa: F811
    reference_url: str,
) -> None:
    local = verify(reference, ocr=False, ner=False, jobs=1)
    remote = verify(reference_url, ocr=False, ner=False, jobs=1)
    assert remote.root == reference_url
    assert remote.files_checked == local.files_checked > 0
    assert _comparable(to_json(remote, show_phi=True)) == _comparable(to_json(local, show_phi=True))


def test_the_store_s_tree_on_a_local_cluster_gets_the_same_report(
    s3: S3,  # noqa: F811
    reference: Path,  # noqa: F811
    reference_url: str,
) -> None:
    local = verify(reference, ocr=False, ner=False, jobs=1)
    remote = verify(reference_url, ocr=False, ner=False, cluster="local:2")
    assert _comparable(to_json(remote, show_phi=True)) == _comparable(to_json(local, show_phi=True))


def test_a_leak_and_a_zip_in_the_bucket_fail_the_verdict(
    tmp_path: Path,
    s3: S3,  # noqa: F811
    reference: Path,  # noqa: F811
    sample_corpus: tuple[Path, AnswerKey],
) -> None:
    corpus = sample_corpus[0]
    original = next(p for p in sorted(corpus.rglob("*.dcm")) if p.is_file())
    tree = tmp_path / "tree"
    shutil.copytree(reference, tree)
    shutil.copy(original, tree / "left-behind.dcm")
    url = f"s3://{s3.bucket()}/deid"
    s3.upload(tree, url)
    leaked = verify(url, ocr=False, ner=False, jobs=1)
    assert not leaked.clean
    assert {f.file for f in leaked.identifiers} == {"left-behind.dcm"}
    same_tree_here = verify(tree, ocr=False, ner=False, jobs=1)
    assert _comparable(to_json(leaked, show_phi=True)) == _comparable(
        to_json(same_tree_here, show_phi=True)
    )

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("inside.dcm", (reference / "pacsguard-deid.json").read_bytes())
    zipped = f"s3://{s3.bucket()}/deid"
    s3.upload(reference, zipped)
    s3.fs.pipe(f"{zipped.split('://', 1)[1]}/extra.zip", packed.getvalue())
    s3.fs.invalidate_cache()
    report = verify(zipped, ocr=False, ner=False, jobs=1)
    assert [(f.file, f.kind) for f in report.identifiers] == [("extra.zip", "unreadable")]
    assert not report.clean


def test_the_command_on_a_url(
    s3: S3,  # noqa: F811
    reference_url: str,
) -> None:
    env = s3.subprocess_env()
    command = [sys.executable, "-m", "pacsguard", "verify", "--no-ocr", "--no-ner"]
    done = subprocess.run([*command, reference_url], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "DICOM file(s) checked" in done.stdout
    empty = f"s3://{s3.bucket()}/nothing-here"
    done = subprocess.run([*command, empty], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "does not exist" in done.stderr


def test_an_unreachable_prefix_is_an_input_error(s3: S3) -> None:  # noqa: F811
    with pytest.raises(InputError):
        verify(f"s3://{s3.bucket()}/nothing-here", ocr=False, ner=False)
