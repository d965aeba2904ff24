"""Policy files: YAML and TOML, strict validation with clear errors, drafts that load."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsguard.tables import inspect_table, load_policy, parse_policy, write_draft
from pacsguard.tables.errors import PolicyError
from pacsguard.tables.synth import make_patients, make_table, write_table

YAML = """
version: 1
patient_id_column: IPP
columns:
  IPP: {action: pseudonymise-patient-id}
  NOM: drop
  DDN: {action: generalise-birth-date, to: age-band, band: 5, reference: "2024-01-01"}
  Date: {action: shift-date, formats: ["%d/%m/%Y"]}
  NOTES: {action: scrub-text, known_values_from: [NOM, IPP]}
  "NO": keep
risk: {quasi_identifiers: [DDN], k: 3, suppress: true}
"""

TOML = """
version = 1
patient_id_column = "IPP"
[columns]
IPP = "pseudonymise-patient-id"
NOM = "drop"
[columns.NDA]
action = "pseudonymise"
domain = "stay-id"
[risk]
quasi_identifiers = []
threshold = 0.1
"""


def test_yaml_and_toml_load(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(YAML, encoding="utf-8")
    policy = load_policy(tmp_path / "p.yaml")
    assert policy.patient_id_column == "IPP"
    assert policy.columns["NOM"].action == "drop"
    assert policy.columns["DDN"].param("band") == 5
    assert policy.columns["NO"].action == "keep"  # quoted: not YAML's boolean
    assert policy.risk is not None and policy.risk.k == 3 and policy.risk.suppress
    assert policy.sha256 and len(policy.sha256) == 64
    (tmp_path / "p.toml").write_text(TOML, encoding="utf-8")
    toml = load_policy(tmp_path / "p.toml")
    assert toml.columns["NDA"].param("domain") == "stay-id"
    assert toml.risk is not None and toml.risk.threshold == 0.1


def _columns(**columns: object) -> dict[str, object]:
    return {"patient_id_column": "IPP", "columns": {"IPP": "pseudonymise-patient-id", **columns}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a mapping"),
        ({"columns": {}}, "missing 'columns'"),
        ({"columns": {"A": "keep"}, "colums": 1}, "unknown key(s) colums"),
        (_columns(A="generalize"), "unknown action 'generalize'"),
        (_columns(A={"kind": "other"}), "missing 'action'"),
        (_columns(A={"action": "drop", "domain": "x"}), "takes no parameter 'domain'"),
        (_columns(A={"action": "pseudonymise"}), "needs 'domain'"),
        (_columns(A={"action": "generalise-age", "band": "10"}), "'band' must be an integer"),
        (_columns(A={"action": "generalise-age", "band": True}), "'band' must be an integer"),
        (_columns(A={"action": "shift-date", "formats": "%d/%m/%Y"}), "list of text values"),
        (_columns(A={"action": "shift-date", "formats": ["%Q"]}), "'%Q' is not a strftime"),
        (_columns(A={"action": "generalise-date", "to": "week"}), "'to' must be one of"),
        (_columns(A={"action": "keep", "kind": "alien"}), "unknown kind 'alien'"),
        (_columns(A={"action": "scrub-text", "known_values_from": ["B"]}), "names 'B'"),
        (_columns(A={"action": "generalise-birth-date", "reference": "soon"}), "'reference'"),
        ({"columns": {"A": "shift-date"}}, "set patient_id_column"),
        ({"patient_id_column": "X", "columns": {"A": "keep"}}, "'X' is not in 'columns'"),
        ({"patient_id_column": "A", "columns": {"A": "keep"}}, "never kept as it is"),
        ({"columns": {"A": "keep"}, "unknown": "allow"}, "'unknown' must be"),
        ({"columns": {"A": "keep"}, "version": 2}, "unsupported version"),
        ({"columns": {True: "keep"}}, "not text; quote it"),
        ({"columns": {"A": "drop"}, "risk": {"quasi_identifiers": ["A"]}}, "not a kept column"),
        ({"columns": {"A": "keep"}, "risk": {"k": 0}}, "'k' must be at least 1"),
        ({"columns": {"A": "keep"}, "risk": {"threshold": 2}}, "within (0, 1]"),
        ({"columns": {"A": "keep"}, "risk": {"suppress": True}}, "'suppress' needs 'k'"),
        ({"columns": {"A": "keep"}, "risk": {"kk": 1}}, "unknown key(s) kk"),
        (
            {"columns": {"A": "keep"}, "risk": {"quasi_identifiers": ["A", "A"]}},
            "names a column twice",
        ),
    ],
)
def test_validation_errors(document: object, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    assert message in str(caught.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.yaml: not valid YAML/TOML \(line"):
        load_policy(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("columns:\n  A: explode\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"wrong\.yaml: column 'A': unknown action"):
        load_policy(wrong)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_draft_policies_load(tmp_path: Path, suffix: str) -> None:
    table = tmp_path / "export.csv"
    write_table(make_table(make_patients(4), 40, columns=26), table)
    inspection = inspect_table(table)
    draft = tmp_path / f"policy{suffix}"
    write_draft(inspection, draft)
    policy = load_policy(draft)
    assert set(policy.columns) == set(inspection.columns[i].name for i in range(26))
    assert policy.patient_id_column == "IPP"
    expected = {
        "IPP": "pseudonymise-patient-id", "NDA": "pseudonymise", "NOM": "drop",
        "Prénom": "drop", "Nom de naissance": "drop", "DDN": "generalise-birth-date",
        "Sexe": "keep", "Age": "generalise-age", "Adresse": "drop",
        "CP": "generalise-postcode", "Ville": "drop", "Tél": "drop", "Portable": "drop",
        "Mail": "drop", "N° sécu": "drop", "INS": "pseudonymise", "Date entrée": "shift-date",
        "Date sortie": "shift-date", "Médecin": "drop", "Diagnostic": "keep", "Poids": "keep",
        "Commentaire": "scrub-text", "mesure_001": "keep",
    }  # fmt: skip
    assert {name: policy.columns[name].action for name in expected} == expected
    assert policy.columns["Date entrée"].param("formats") == ["%d/%m/%Y"]
    assert "NOM" in policy.columns["Commentaire"].param("known_values_from")
    assert policy.risk is not None and "DDN" in policy.risk.quasi_identifiers
    assert draft.stat().st_mode & 0o077 == 0
    text = draft.read_text(encoding="utf-8")
    for patient in make_patients(4):
        for value in patient.planted().values():
            assert value not in text  # notes say kinds and shares, never values


def test_draft_without_patient_id_generalises_dates(tmp_path: Path) -> None:
    table = tmp_path / "export.parquet"
    write_table(make_table(make_patients(3), 30).drop("IPP"), table)
    inspection = inspect_table(table)
    assert inspection.patient_id_column is None
    write_draft(inspection, tmp_path / "policy.yaml")
    policy = load_policy(tmp_path / "policy.yaml")
    assert policy.columns["Date entrée"].action == "generalise-date"
    assert policy.columns["Commentaire"].param("dates") is None  # scrub then redacts dates
