"""End to end: generated exports in every format and encoding, inspected, de-identified."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.tables import deidentify_table, inspect_table, load_policy, write_draft
from pacsguard.tables.errors import TableReadError, UnclassifiedColumnError
from pacsguard.tables.synth import leaks, make_patients, make_table, write_table

KEY = ProjectKey(bytes(range(1, 33)))
PZ = Pseudonymizer(KEY)
PATIENTS = make_patients(8, seed=7)
TODAY = dt.date(2025, 1, 1)

CASES = [
    ("export.csv", ";", "utf-8"),
    ("export.csv", ",", "cp1252"),
    ("export.tsv", "\t", "latin-1"),
    ("export.parquet", ";", "utf-8"),
    ("export.xlsx", ";", "utf-8"),
]


def _source(tmp_path: Path, name: str, separator: str, encoding: str) -> tuple[Path, pl.DataFrame]:
    frame = make_table(PATIENTS, 80, columns=30, seed=3)
    path = tmp_path / "in" / name
    path.parent.mkdir()
    write_table(frame, path, separator=separator, encoding=encoding)
    return path, frame


def _as_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return pl.read_parquet(path).write_csv()
    if path.suffix == ".xlsx":
        return pl.read_excel(path, infer_schema_length=0).write_csv()
    return path.read_text(encoding="utf-8")


def _read(path: Path, separator: str) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".xlsx":
        return pl.read_excel(path, infer_schema_length=0)
    return pl.read_csv(path, separator=separator, infer_schema=False)


@pytest.mark.parametrize(("name", "separator", "encoding"), CASES)
def test_inspect_then_deid_leaves_no_identifier(
    tmp_path: Path, name: str, separator: str, encoding: str
) -> None:
    source, frame = _source(tmp_path, name, separator, encoding)
    assert leaks(_as_text(source) if encoding == "utf-8" else frame.write_csv(), PATIENTS)
    inspection = inspect_table(source, today=TODAY)
    if source.suffix in (".csv", ".tsv"):
        assert (inspection.encoding, inspection.separator) == (encoding, separator)
    policy_path = tmp_path / "policy.yaml"
    write_draft(inspection, policy_path)
    out = tmp_path / "out"
    report = deidentify_table([source], out, key=KEY, policy=policy_path, today=TODAY)

    target = out / source.name
    assert leaks(_as_text(target), PATIENTS) == []
    result = _read(target, separator)
    assert result.height == frame.height
    # the patient ID is the images' pseudonym, row for row
    assert result["IPP"].to_list() == [PZ.patient_id(p) for p in frame["IPP"].to_list()]
    assert result["NDA"][0] == PZ.identifier("stay-id", frame["NDA"][0])
    assert result["INS"][0] == PZ.identifier("ins", frame["INS"][0])
    # dates move by the patient's offset, so intervals hold
    for row in range(10):
        ipp = frame["IPP"][row]
        entry = dt.datetime.strptime(frame["Date entrée"][row], "%d/%m/%Y").date()
        leave = dt.date.fromisoformat(frame["Date sortie"][row])
        new_entry = dt.datetime.strptime(result["Date entrée"][row], "%d/%m/%Y").date()
        new_leave = dt.date.fromisoformat(result["Date sortie"][row])
        assert new_entry - entry == dt.timedelta(PZ.date_offset_days(ipp))
        assert new_leave - new_entry == leave - entry
    # generalised quasi-identifiers
    assert set(result["CP"].to_list()) <= {"69", "38", "2A", "2B", "971", "01"}
    years = [v for v in result["DDN"].to_list() if not v.startswith("<=")]
    assert all(len(v) == 4 and v.isdigit() for v in years)
    assert all(int(a) <= 90 for a in result["Age"].cast(pl.Float64).to_list())
    assert not {"NOM", "Prénom", "Mail", "Tél", "N° sécu", "Adresse"} & set(result.columns)

    manifest_text = report.manifest.read_text(encoding="utf-8")
    assert leaks(manifest_text, PATIENTS) == []
    assert str(tmp_path) not in manifest_text
    manifest = json.loads(manifest_text)
    entry = manifest["files"][0]
    assert entry["path"] == source.name
    assert entry["sheets"][0]["rows_in"] == frame.height
    actions = {c["name"]: c["action"] for c in entry["sheets"][0]["columns"]}
    assert actions["IPP"] == "pseudonymise-patient-id" and actions["NOM"] == "drop"
    assert entry["sheets"][0]["risk"]["k"] >= 1


def _policy(tmp_path: Path, source: Path, **risk: object) -> Path:
    write_draft(inspect_table(source, today=TODAY), tmp_path / "policy.yaml")
    if risk:
        text = (tmp_path / "policy.yaml").read_text(encoding="utf-8")
        text = text.split("risk:")[0] + "risk: " + json.dumps(risk) + "\n"
        (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "policy.yaml"


def test_unknown_columns_are_refused_or_dropped(tmp_path: Path) -> None:
    source, frame = _source(tmp_path, "export.csv", ";", "utf-8")
    policy = _policy(tmp_path, source)
    frame.with_columns(pl.col("NOM").alias("Mystère")).write_csv(source, separator=";")
    with pytest.raises(UnclassifiedColumnError, match="'Mystère'") as caught:
        deidentify_table([source], tmp_path / "out", key=KEY, policy=policy)
    assert "--unknown drop" in str(caught.value)
    assert not (tmp_path / "out" / "export.csv").exists()
    report = deidentify_table(
        [source], tmp_path / "out", key=KEY, policy=policy, unknown="drop", today=TODAY
    )
    out = pl.read_csv(tmp_path / "out" / "export.csv", separator=";", infer_schema=False)
    assert "Mystère" not in out.columns
    assert report.tables[0].sheets[0].unclassified_dropped == ["Mystère"]
    assert leaks((tmp_path / "out" / "export.csv").read_text(encoding="utf-8"), PATIENTS) == []


def test_suppression_of_rows_below_k(tmp_path: Path) -> None:
    source, frame = _source(tmp_path, "export.csv", ";", "utf-8")
    policy = _policy(
        tmp_path, source, quasi_identifiers=["DDN", "Sexe", "CP"], k=12, suppress=True,
        sensitive="Diagnostic",
    )  # fmt: skip
    report = deidentify_table([source], tmp_path / "out", key=KEY, policy=load_policy(policy))
    sheet = report.tables[0].sheets[0]
    assert sheet.risk is not None and sheet.risk.k < 12
    assert sheet.rows_suppressed > 0 and sheet.rows_out == frame.height - sheet.rows_suppressed
    assert sheet.risk_after_suppression is not None and sheet.risk_after_suppression.k >= 12
    out = pl.read_csv(tmp_path / "out" / "export.csv", separator=";", infer_schema=False)
    assert out.height == sheet.rows_out
    assert out.group_by("DDN", "Sexe", "CP").len()["len"].min() >= 12  # type: ignore[operator]


def test_no_quasi_identifier_no_k(tmp_path: Path) -> None:
    """With no quasi-identifier every row is one class: "k=80" was reported and recorded."""
    source, frame = _source(tmp_path, "export.csv", ";", "utf-8")
    policy = _policy(tmp_path, source, quasi_identifiers=[])
    report = deidentify_table([source], tmp_path / "out", key=KEY, policy=load_policy(policy))
    sheet = report.tables[0].sheets[0]
    assert sheet.risk is None and sheet.rows_out == frame.height
    manifest = json.loads(report.manifest.read_text(encoding="utf-8"))
    assert manifest["files"][0]["sheets"][0]["risk"] is None


def test_several_inputs_and_dates_without_patient(tmp_path: Path) -> None:
    source, frame = _source(tmp_path, "a.csv", ";", "utf-8")
    second = source.with_name("b.csv")
    frame.head(5).write_csv(second, separator=";")
    policy = _policy(tmp_path, source)
    report = deidentify_table([source, second], tmp_path / "out", key=KEY, policy=policy)
    assert [t.output.name for t in report.tables] == ["a.csv", "b.csv"]
    manifest = json.loads(report.manifest.read_text(encoding="utf-8"))
    assert [f["path"] for f in manifest["files"]] == ["a.csv", "b.csv"]


def test_malformed_csv_error_shows_no_value(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text('IPP;NOM\n123;"Kerouac\n456;Dupont;extra;\n', encoding="utf-8")
    policy = tmp_path / "p.yaml"
    policy.write_text("columns: {IPP: pseudonymise-patient-id, NOM: drop}\n", encoding="utf-8")
    with pytest.raises(TableReadError) as caught:
        deidentify_table([source], tmp_path / "out", key=KEY, policy=policy)
    assert "Kerouac" not in str(caught.value) and "Dupont" not in str(caught.value)


def test_bad_encoding_and_unknown_format(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_bytes("IPP;NOM\n1;Lefèvre\n".encode("cp1252"))
    policy = tmp_path / "p.yaml"
    policy.write_text("columns: {IPP: pseudonymise-patient-id, NOM: drop}\n", encoding="utf-8")
    with pytest.raises(TableReadError, match="not valid utf-8"):
        deidentify_table([source], tmp_path / "out", key=KEY, policy=policy, encoding="utf-8")
    with pytest.raises(TableReadError, match="unknown table format"):
        deidentify_table([tmp_path / "t.json"], tmp_path / "out", key=KEY, policy=policy)


def test_full_disk_is_a_clear_error_and_leaves_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from pacsguard.core.errors import OutputError
    from pacsguard.tables import deid as tables_deid

    source, _ = _source(tmp_path, "a.csv", ";", "utf-8")
    policy = _policy(tmp_path, source)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tables_deid, "write_sheets", full)
    with pytest.raises(OutputError, match=r"writing a\.csv failed \(No space left on device\)"):
        deidentify_table([source], tmp_path / "out", key=KEY, policy=policy)
    assert not (tmp_path / "out" / "a.csv").exists()


def test_a_worksheet_named_after_a_patient_is_named_by_its_place(tmp_path: Path) -> None:
    """A sheet's name is typed by a person: "DUBOIS Hélène 1234567890" was copied into the
    output workbook and the manifest."""
    frame = make_table(PATIENTS, 20, columns=12, seed=5)
    source = tmp_path / "in" / "suivi.xlsx"
    source.parent.mkdir()
    patient = PATIENTS[0]
    sheet_name = f"{patient.family} {patient.patient_id}"[:31]
    frame.write_excel(source, worksheet=sheet_name)
    report = deidentify_table(
        [source], tmp_path / "out", key=KEY, policy=_policy(tmp_path, source), today=TODAY
    )
    written = pl.read_excel(tmp_path / "out" / "suivi.xlsx", sheet_id=0)
    assert list(written) == ["Sheet1"]
    manifest = report.manifest.read_text(encoding="utf-8")
    assert patient.family not in manifest and patient.patient_id not in manifest
    assert json.loads(manifest)["files"][0]["sheets"][0]["sheet"] == "Sheet1"
