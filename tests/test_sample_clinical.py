"""`pacsguard sample` writes a clinical table of the same patients as the images, and it joins
them after de-identification under the same key."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest

from pacsguard.core.keys import load_key, new_key
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey, generate
from pacsguard.sample.clinical import HEADER
from pacsguard.tables.deid import deidentify_table
from pacsguard.tables.draft import write_draft
from pacsguard.tables.inspect import inspect_table


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnswerKey]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out, seed=3, patients=3)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_one_row_per_study_of_the_same_patients(sample: tuple[Path, AnswerKey]) -> None:
    out, key = sample
    rows = _rows(out / "clinical" / "export.csv")
    assert list(rows[0]) == list(HEADER)
    assert len(rows) == key.totals.studies
    assert {r["IPP"] for r in rows} == {p.patient_id for p in key.patients}


def test_same_seed_same_bytes(sample: tuple[Path, AnswerKey], tmp_path: Path) -> None:
    out, _ = sample
    generate(tmp_path / "again", seed=3, patients=3)
    first = (out / "clinical" / "export.csv").read_bytes()
    assert first == (tmp_path / "again" / "clinical" / "export.csv").read_bytes()
    generate(tmp_path / "again", seed=4, patients=3)  # a rerun replaces the previous sample
    assert (tmp_path / "again" / "clinical" / "export.csv").read_bytes() != first


def test_inspected_deidentified_and_joined_to_the_images(
    sample: tuple[Path, AnswerKey], tmp_path: Path
) -> None:
    out, answer = sample
    table = out / "clinical" / "export.csv"
    inspection = inspect_table(table)
    kinds = {c.name: c.kind for c in inspection.columns}
    assert kinds["IPP"] == "patient-id" and kinds["DDN"] == "birth-date"
    assert kinds["Commentaire"] == "free-text" and kinds["Date examen"] == "date"
    policy = tmp_path / "policy.yaml"
    write_draft(inspection, policy)
    new_key(tmp_path / "k")
    key = load_key(tmp_path / "k")
    deidentify_table([table], tmp_path / "tables", key=key, policy=policy)
    deidentify([out / "dicom"], tmp_path / "images", key=key, config=DeidConfig())
    written = (tmp_path / "tables" / "export.csv").read_text(encoding="utf-8")
    for patient in answer.patients:
        assert patient.patient_id not in written
    table_ids = {r["IPP"] for r in _rows(tmp_path / "tables" / "export.csv")}
    image_ids = {
        str(pydicom.dcmread(p, stop_before_pixels=True).PatientID)
        for p in (tmp_path / "images").rglob("*.dcm")
    }
    assert table_ids and table_ids <= image_ids
