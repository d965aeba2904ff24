"""Each input once: the journal, the temporary names and the manifest are keyed by an
input's label, so an input reached twice (a file given beside its folder, a zip archive
holding a member name twice) made two items under one key; the run then failed at its
commit ("cannot write the outputs to disk") and every rerun failed the same way."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.deid.pipeline import REACHED_AGAIN
from test_deid_name_scripts import _ct, _deid, _outcomes


def test_a_file_given_beside_its_folder_is_one_input(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    source = _ct(tmp_path / "in", "ISO_IR 100", "DOE^JOHN", "Chest")
    out, state = tmp_path / "out", tmp_path / "state"
    for _ in range(2):  # and a rerun finds the job done
        report = _deid(tmp_path, project_key, tmp_path / "in", source, source)
        assert report.output == 1 and report.quarantine == 0
    assert [o["status"] for o in _outcomes(state)] == ["output"]
    skipped = json.loads((state / "manifest.json").read_text())["skipped"]
    assert [s["reason"] for s in skipped] == [REACHED_AGAIN, REACHED_AGAIN]
    assert len(list(out.rglob("*.dcm"))) == 1


def test_a_zip_member_name_held_twice_is_one_input(tmp_path: Path, project_key: ProjectKey) -> None:
    source = _ct(tmp_path / "files", "ISO_IR 100", "DOE^JOHN", "Chest")
    (tmp_path / "in").mkdir()
    archive = tmp_path / "in" / "study.zip"
    with zipfile.ZipFile(archive, "w") as zipped, pytest.warns(UserWarning, match="Duplicate"):
        zipped.write(source, "a.dcm")
        zipped.write(source, "a.dcm")
    shutil.rmtree(tmp_path / "files")
    state = tmp_path / "state"
    _deid(tmp_path, project_key)
    assert [o["status"] for o in _outcomes(state)] == ["output"]
    skipped = json.loads((state / "manifest.json").read_text())["skipped"]
    assert skipped == [{"input": f"{archive}!a.dcm", "reason": REACHED_AGAIN}]
