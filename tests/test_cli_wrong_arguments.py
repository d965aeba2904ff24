"""Every command, given the arguments people get wrong: one ``error:`` line that says what is
wrong and what to do, exit code 2, no traceback, and nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pacsguard.cli import main
from pacsguard.core.keys import new_key

# (arguments, a word the message must hold)
CASES: list[tuple[str, str]] = [
    ("dide in out", "did you mean 'deid'"),
    ("--verbose", "no such option"),
    ("sample", "missing argument"),
    ("sample out --patients 0", "--patients"),
    ("sample out --seed x", "--seed"),
    ("sample out --bogus", "no such option"),
    ("key new", "missing argument"),
    ("key new folder", "exists"),
    ("key new-identity", "missing argument"),
    ("key new-signing-key", "missing argument"),
    ("key rotate k", "no such command"),
    ("deid", "missing argument"),
    ("deid only-one", "OUTPUT"),
    ("deid notdicom.txt out --key folder", "is a folder"),
    ("deid notdicom.txt out --key nope.key", "does not exist"),
    ("deid notdicom.txt out --key empty.key", "64 hex characters"),
    ("deid notdicom.txt out --key project.key --jobs x", "--jobs"),
    ("deid notdicom.txt out --key project.key --date-shift-range=0:-10", "MIN must be below"),
    ("deid notdicom.txt out --key project.key --date-shift-range=5:5", "MIN must be below"),
    ("deid notdicom.txt out --key project.key --date-shift-range=soon", "MIN:MAX"),
    ("deid notdicom.txt out --kye project.key", "--key"),
    ("verify", "missing argument"),
    ("verify nope", "nope"),
    ("tables inspect", "missing argument"),
    ("tables inspect nope.csv --policy-out p.yaml", "no such file"),
    ("tables inspect empty.csv --policy-out p.yaml", "empty"),
    ("tables inspect utf16.tsv --policy-out p.yaml --encoding latin-1", "--encoding"),
    ("tables inspect export.csv --policy-out p.yaml --encoding klingon", "--encoding"),
    ("tables inspect export.json --policy-out p.yaml", "unknown table format"),
    ("tables deid export.csv", "--policy"),
    ("tables deid export.csv out --policy nope.yaml --key project.key", "nope.yaml"),
    ("tables deid export.csv out --policy policy.yaml --key project.key --unknown x", "--unknown"),
    ("tables deid latin.csv out --policy partial.yaml --key project.key", "not classified"),
    ("tables deid broken.csv out --policy full.yaml --key project.key", "malformed"),
    ("tables risk", "missing argument"),
    ("tables risk export.csv", "--qi"),
    ("tables risk export.csv --qi age_band", "age_band"),
    ("tables risk export.csv --qi sexe --sensitive nope", "nope"),
    ("tables risk export.csv --qi sexe --threshold 5", "probability"),
    ("tables risk export.csv --qi sexe --threshold x", "--threshold"),
    ("pack", "missing argument"),
    ("pack folder out.age", "recipient"),
    ("pack folder out.age --to age1xyz", "recipient"),
    ("pack folder out.age --to-file folder", "is a folder"),
    ("pack folder out.age --volume-size lots --to-file folder", "is a folder"),
    ("unpack", "missing argument"),
    ("unpack nope.age out", "does not exist"),
    ("unpack notdicom.txt out --identity folder", "is a folder"),
    ("scan", "target"),
    ("scan 300.1.1.1 --no-history", "not a valid address"),
    ("scan 127.0.0.1 --ports x --no-history", "port"),
    ("scan 127.0.0.1 --fail-on bad --no-history", "--fail-on"),
    ("scan 127.0.0.1 --timeout 0 --no-history", "--timeout"),
    ("scan diff --db nope.sqlite", "no scan history"),
    ("scan history --db nope.sqlite", "no scan history"),
    ("scan diff --base x", "--base"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("PACSGUARD_KEY", "PACSGUARD_KEY_FILE", "PACSGUARD_IDENTITY_FILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notdicom.txt").write_text("not a DICOM file\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "export.json").write_text("{}")
    (tmp_path / "export.csv").write_text("ipp;sexe;diagnostic\n1;F;x\n2;M;y\n", encoding="utf-8")
    (tmp_path / "latin.csv").write_bytes("ipp;nom\n1;Lefèvre\n".encode("cp1252"))
    (tmp_path / "broken.csv").write_text('ipp;nom\n1;"x\n2;y;z;w\n', encoding="utf-8")
    (tmp_path / "partial.yaml").write_text("columns: {ipp: pseudonymise-patient-id}\n")
    (tmp_path / "full.yaml").write_text("columns: {ipp: pseudonymise-patient-id, nom: drop}\n")
    (tmp_path / "utf16.tsv").write_text("ipp\tnom\n1\tFONTAINE\n", encoding="utf-16")
    (tmp_path / "policy.yaml").write_text(
        "patient_id_column: ipp\ncolumns: {ipp: pseudonymise-patient-id, sexe: keep, "
        "diagnostic: keep}\n"
    )
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"")
    empty.chmod(0o600)
    new_key(tmp_path / "project.key")
    return tmp_path


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("args", "says"), CASES, ids=[c[0] for c in CASES])
def test_wrong_arguments_give_one_error_line_and_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: str, says: str
) -> None:
    before = _listing(workdir)
    with pytest.raises(SystemExit) as stopped:
        main(args.split())
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert stopped.value.code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert says.lower() in lines[0].lower(), lines[0]
    assert "FONTAINE" not in captured.err
    left = _listing(workdir) - before
    assert not left, f"left behind: {sorted(left)}"


def test_a_bug_is_one_line_too(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pacsguard.tables.cli as tables_cli

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a value from a file: FONTAINE")

    monkeypatch.setattr(tables_cli, "inspect_table", broken)
    monkeypatch.delenv("PACSGUARD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["tables", "inspect", "export.csv", "--policy-out", "p.yaml"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.startswith("error: internal error (ZeroDivisionError)") and "FONTAINE" not in err
    monkeypatch.setenv("PACSGUARD_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["tables", "inspect", "export.csv", "--policy-out", "p.yaml"])


def test_groups_without_a_command_show_their_help(capsys: pytest.CaptureFixture[str]) -> None:
    for group in ("tables", "key"):
        main([group])
        out = capsys.readouterr().out
        assert out.startswith(f"Usage: pacsguard {group} [OPTIONS] COMMAND")
    assert os.environ.get("PACSGUARD_DEBUG") is None
