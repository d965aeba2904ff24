"""The ``pacsguard tables`` commands: inspect, deid, risk; errors as one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pacsguard.cli import app
from pacsguard.core.keys import new_key
from pacsguard.tables.synth import leaks, make_patients, make_table, write_table

PATIENTS = make_patients(5, seed=11)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacsguard", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_inspect_deid_risk_commands(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    write_table(make_table(PATIENTS, 50, columns=24, seed=2), source, encoding="cp1252")
    key = tmp_path / "project.key"
    new_key(key)
    runner = CliRunner()
    policy = tmp_path / "policy.toml"
    inspected = runner.invoke(app, ["tables", "inspect", str(source), "--policy-out", str(policy)])
    assert inspected.exit_code == 0, inspected.output
    assert "patient-id" in inspected.output and policy.exists()
    out = tmp_path / "out"
    args = ["tables", "deid", str(source), str(out), "--key", str(key), "--policy", str(policy)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "50/50 rows" in done.output and "k=" in done.output
    risk = runner.invoke(app, ["tables", "risk", str(out / "export.csv"), "--qi", "DDN",
                               "--qi", "Sexe", "--sensitive", "Diagnostic"])  # fmt: skip
    assert risk.exit_code == 0, risk.output
    assert "l-diversity=" in risk.output
    by_policy = runner.invoke(
        app, ["tables", "risk", str(out / "export.csv"), "--policy", str(policy)]
    )
    assert by_policy.exit_code == 0, by_policy.output
    for output in (inspected.output, done.output, risk.output):
        assert leaks(output, PATIENTS) == []
    assert leaks((out / "export.csv").read_text(encoding="utf-8"), PATIENTS) == []
    assert pl.read_csv(out / "export.csv", separator=";").height == 50


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    source = tmp_path / "export.csv"
    write_table(make_table(PATIENTS, 10, seed=2).with_columns(pl.lit("x").alias("Autre")), source)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "patient_id_column: IPP\ncolumns:\n  IPP: pseudonymise-patient-id\n", encoding="utf-8"
    )
    key_hex = "ab" * 32
    refused = _run("tables", "deid", str(source), str(tmp_path / "out"), "--policy", str(policy),
                   env={"PACSGUARD_KEY": key_hex})  # fmt: skip
    assert refused.returncode == 2
    assert "not classified by the policy" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert leaks(refused.stderr + refused.stdout, PATIENTS) == []
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("columns:\n  IPP: hash\n", encoding="utf-8")
    invalid = _run("tables", "deid", str(source), str(tmp_path / "out"), "--policy",
                   str(bad_policy), env={"PACSGUARD_KEY": key_hex})  # fmt: skip
    assert invalid.returncode == 2 and "unknown action 'hash'" in invalid.stderr
    no_key = _run("tables", "deid", str(source), str(tmp_path / "out"), "--policy", str(policy),
                  env={"PACSGUARD_KEY": "", "PACSGUARD_KEY_FILE": ""})  # fmt: skip
    assert no_key.returncode == 2 and "no project key" in no_key.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_bracketed_names_are_read_and_shown_whole(suffix: str, tmp_path: Path) -> None:
    """Units in brackets are common in exports. polars read "visit[v2].csv" as a glob
    pattern (no such file: "malformed table"); Rich markup read "[kg]" as a style and
    dropped it from the table."""
    frame = pl.DataFrame(
        {"weight [kg]": ["71", "64"], "height [cm]": ["180", "165"], "IPP": ["12345678", "2"]}
    )
    source = tmp_path / f"visit[v2]{suffix}"
    if suffix == ".csv":
        frame.write_csv(source, separator=";")
    else:
        frame.write_parquet(source)
    policy, key, out = tmp_path / "policy.toml", tmp_path / "project.key", tmp_path / "out"
    new_key(key)
    runner = CliRunner()
    inspected = runner.invoke(
        app, ["tables", "inspect", str(source), "--policy-out", str(policy)], terminal_width=200
    )
    assert inspected.exit_code == 0, inspected.output
    assert "weight [kg]" in inspected.output and "height [cm]" in inspected.output
    assert source.name in inspected.output
    args = ["tables", "deid", str(source), str(out), "--key", str(key), "--policy", str(policy)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert (out / source.name).is_file()


def test_a_field_over_the_csv_modules_limit_is_read(tmp_path: Path) -> None:
    """The separator sniff used the csv module's 128 KiB field limit: "internal error"."""
    source = tmp_path / "big.csv"
    source.write_text("IPP;Commentaire\n1234567890;" + "Vu en consultation. " * 8000 + "\n")
    done = _run("tables", "risk", str(source), "--qi", "Commentaire")
    assert done.returncode == 0, done.stderr
    assert "k=1" in done.stdout


def test_rows_of_different_widths_are_refused_with_the_way_out(tmp_path: Path) -> None:
    """Ragged rows were read as one column named by the whole header line, exit 0."""
    source = tmp_path / "r.csv"
    source.write_text("IPP;Examen;Commentaire\n1234567890;Scanner;RAS\n22;IRM\n33;Echo;RAS;x\n")
    done = _run("tables", "inspect", str(source), "--policy-out", str(tmp_path / "p.yaml"))
    assert done.returncode == 2
    assert "same number of fields" in done.stderr and "--separator" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "p.yaml").exists()


def test_one_column_tables_are_still_read(tmp_path: Path) -> None:
    source = tmp_path / "ids.csv"
    source.write_text("IPP\n1234567890\n2234567890\n")
    done = _run("tables", "inspect", str(source), "--policy-out", str(tmp_path / "p.yaml"))
    assert done.returncode == 0, done.stderr


def test_a_quasi_identifier_named_twice(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("age,sex\n30,F\n31,M\n")
    done = _run("tables", "risk", str(source), "--qi", "age", "--qi", "age")
    assert done.returncode == 0, done.stderr
    assert "classes=2" in done.stdout


@pytest.mark.parametrize(
    ("given", "ok"), [(";;", False), ("ab", False), ("\\t", True), (";", True)]
)
def test_a_separator_is_one_character(tmp_path: Path, given: str, ok: bool) -> None:
    source = tmp_path / "a.csv"
    source.write_text("IPP;Examen\n1234567890;Scanner\n")
    done = _run("tables", "inspect", str(source), "--separator", given,
                "--policy-out", str(tmp_path / "p.yaml"))  # fmt: skip
    assert done.returncode == (0 if ok else 2), done.stderr
    assert "internal error" not in done.stderr
    if not ok:
        assert "one character" in done.stderr


def test_a_parquet_file_with_nested_columns_is_refused_clearly(tmp_path: Path) -> None:
    source = tmp_path / "nested.parquet"
    contacts = [["DUPONT Jean", "0612345678"], ["MARTIN Paul"]]
    pl.DataFrame({"IPP": ["1234567890", "2234567890"], "Contacts": contacts}).write_parquet(source)
    done = _run("tables", "inspect", str(source), "--policy-out", str(tmp_path / "p.yaml"))
    assert done.returncode == 2
    assert "nested values" in done.stderr and "'Contacts'" in done.stderr
    assert "DUPONT" not in done.stderr and "internal error" not in done.stderr


def test_a_title_line_above_the_header_is_refused(tmp_path: Path) -> None:
    """The title made the header and the rows data of unnamed columns, kept as they were:
    every IPP went out in clear."""
    source = tmp_path / "export.csv"
    source.write_text(
        "Export patients radiologie du 12/03/2021;;;;\nIPP;NOM;Prénom;DDN;Tél\n"
        "1234567890;DUBOIS;Hélène;03/02/1961;06 12 34 56 78\n"
    )
    done = _run("tables", "inspect", str(source), "--policy-out", str(tmp_path / "p.yaml"))
    assert done.returncode == 2
    assert "title line" in done.stderr and "Export patients" not in done.stderr
    assert "DUBOIS" not in done.stderr


def test_a_header_cell_over_the_csv_modules_limit_with_a_separator_given(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    source.write_text("IPP;" + "C" * 200_000 + "\n1234567890;x\n")
    done = _run("tables", "inspect", str(source), "--separator", ";",
                "--policy-out", str(tmp_path / "p.yaml"))  # fmt: skip
    assert "internal error" not in done.stderr, done.stderr
