"""Bookkeeping that cannot lie: resumes that check, outputs bound to their settings, every
path accounted for, two inputs never writing one output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest

from pacsguard.core.errors import InputError
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey


def _copy(corpus: Path, dest: Path, count: int = 6) -> list[Path]:
    dest.mkdir(parents=True)
    files = sorted(corpus.rglob("*.dcm"))[:count]
    out = []
    for index, path in enumerate(files):
        target = dest / f"{index:02d}.dcm"
        shutil.copy(path, target)
        out.append(target)
    return out


def _outputs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dcm") if not p.name.startswith(".tmp-"))


def test_deleted_outputs_are_redone_and_said(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    _copy(sample_corpus[0], tmp_path / "in")
    out = tmp_path / "out"
    first = deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    written = _outputs(out)
    assert first.output == len(written) > 2
    written[0].unlink()
    written[1].write_bytes(written[1].read_bytes()[:-2] + b"\x00\x01")  # same size: --check
    again = deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    assert again.redone == 1 and again.resumed == first.inputs - 1
    checked = deidentify(
        [tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1, check=True)
    )
    assert checked.redone == 1
    assert [p.read_bytes() for p in _outputs(out)] == [p.read_bytes() for p in written]
    shutil.rmtree(out)
    third = deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    assert third.redone == first.output and len(_outputs(out)) == len(written)
    manifest = json.loads((out / "pacsguard-deid.json").read_text())
    assert all(entry["size"] == (out / entry["path"]).stat().st_size for entry in manifest["files"])


def test_other_settings_are_refused_unless_redo(
    sample_corpus: tuple[Path, AnswerKey],
    project_key: ProjectKey,
    other_key: ProjectKey,
    tmp_path: Path,
) -> None:
    _copy(sample_corpus[0], tmp_path / "in", 3)
    out = tmp_path / "out"
    config = DeidConfig(jobs=1, options=frozenset({"retain-long-full-dates"}))
    deidentify([tmp_path / "in"], out, key=project_key, config=config)
    with pytest.raises(InputError, match=r"the options \(was retain-long-full-dates, now none\)"):
        deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    with pytest.raises(InputError, match="the project key differs"):
        deidentify([tmp_path / "in"], out, key=other_key, config=config)
    with pytest.raises(InputError, match="--strict"):
        deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(strict=True))
    report = deidentify(
        [tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1, redo=True)
    )
    assert report.resumed == 0 and report.output == 3
    manifest = json.loads((out / "pacsguard-deid.json").read_text())
    assert manifest["profile"]["options"] == []
    for path in _outputs(out):
        assert pydicom.dcmread(path).LongitudinalTemporalInformationModified == "REMOVED"


def test_output_inside_or_equal_to_an_input_is_refused_before_writing(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    _copy(sample_corpus[0], tmp_path / "in", 2)
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    for output in (tmp_path / "in", tmp_path / "in" / "out"):
        with pytest.raises(InputError, match="OUTPUT"):
            deidentify([tmp_path / "in"], output, key=project_key)
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before
    assert not (tmp_path / "in.pacsguard").exists()


def test_fifo_and_dangling_link_are_listed_as_skipped(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    _copy(sample_corpus[0], tmp_path / "in", 2)
    os.mkfifo(tmp_path / "in" / "pipe.dcm")
    (tmp_path / "in" / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    out = tmp_path / "out"
    report = deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    assert report.skipped == 2 and report.inputs == 2
    assert set(report.skip_reasons) == {"not a regular file (a FIFO)", "a dangling symbolic link"}
    local = json.loads((tmp_path / "out.pacsguard" / "manifest.json").read_text())
    assert {Path(s["input"]).name for s in local["skipped"]} == {"pipe.dcm", "gone.dcm"}
    assert json.loads((out / "pacsguard-deid.json").read_text())["counts"]["skipped"] == 2


def test_two_inputs_with_one_sop_instance_uid(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    (first,) = _copy(sample_corpus[0], tmp_path / "in", 1)
    shutil.copy(first, tmp_path / "in" / "same-bytes.dcm")
    ds = pydicom.dcmread(first)
    ds.SliceThickness = "9.75"  # other content that the profile keeps, the same SOP UID
    ds.save_as(tmp_path / "in" / "other.dcm")
    out = tmp_path / "out"
    report = deidentify([tmp_path / "in"], out, key=project_key, config=DeidConfig(jobs=1))
    assert report.inputs == 3 and report.duplicates == 1 and report.quarantine == 1
    (reason,) = report.reasons
    assert "another input has the same SOP Instance UID" in reason
    assert len(_outputs(out)) == 1
    assert _outputs(out)[0].read_bytes() == _single(first, tmp_path, project_key)


def _single(path: Path, tmp_path: Path, key: ProjectKey) -> bytes:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(path, alone / path.name)
    deidentify([alone], tmp_path / "alone-out", key=key, config=DeidConfig(jobs=1))
    (only,) = _outputs(tmp_path / "alone-out")
    return only.read_bytes()


def test_burned_in_text_is_cleaned_by_default_or_refused_or_kept_by_choice(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    from pacsguard.deid.pixels import risk_reason

    src = tmp_path / "in"
    src.mkdir()
    for path in sorted(sample_corpus[0].rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if ds.get("Modality") == "US" and risk_reason(ds):
            shutil.copy(path, src / "us.dcm")
            break
    else:
        raise AssertionError("no ultrasound image in the sample corpus")
    cleaned = deidentify([src], tmp_path / "a", key=project_key, config=DeidConfig(jobs=1))
    assert cleaned.output == 1 and cleaned.pixels_cleaned == 1
    (out,) = _outputs(tmp_path / "a")
    assert pydicom.dcmread(out).BurnedInAnnotation == "NO"
    refused = deidentify(
        [src], tmp_path / "b", key=project_key, config=DeidConfig(jobs=1, burned_in="quarantine")
    )
    assert refused.quarantine == 1 and "--keep-burned-in" in next(iter(refused.reasons))
    kept = deidentify(
        [src], tmp_path / "c", key=project_key, config=DeidConfig(jobs=1, burned_in="keep")
    )
    assert kept.output == 1 and kept.burned_in_kept == 1


def test_ctrl_c_finishes_the_files_in_flight_and_says_how_to_resume(
    sample_corpus: tuple[Path, AnswerKey], project_key: ProjectKey, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from test_deid_run import _journalled

    key_file = tmp_path / "k.key"
    key_file.write_text(project_key.material.hex())
    key_file.chmod(0o600)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pacsguard.cli", "deid", str(sample_corpus[0]), str(out)]
    cmd += ["--key", str(key_file), "-j", "2", "--no-pixel-cleaning", "--keep-burned-in"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "out.pacsguard" / "journal.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (journal.exists() and _journalled(journal) > 0):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    if proc.returncode == 0:
        pytest.skip("the run ended before the interrupt landed")
    assert proc.returncode == 130, err
    assert "stopping: finishing" in err and "run the same command again" in err
    assert "Traceback" not in err
    manifest = json.loads((out / "pacsguard-deid.json").read_text())
    assert manifest["complete"] is False
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    manifest = json.loads((out / "pacsguard-deid.json").read_text())
    assert manifest["complete"] is True and manifest["counts"]["pending"] == 0
