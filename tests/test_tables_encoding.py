"""Every encoding that Excel and LibreOffice export is read as what it is, or refused.

A table read under a wrong guess has a header that matches no policy column, so its
identifiers go out untouched: the leak of issue 16 (UTF-16 read as Latin-1, exit 0).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacsguard.core.keys import new_key
from pacsguard.tables.deid import deidentify_table
from pacsguard.tables.encoding import detect_encoding, header_problem, nul_pattern
from pacsguard.tables.errors import TableReadError
from pacsguard.tables.inspect import inspect_table
from pacsguard.tables.tableio import open_table

HEADER = "patient_id\tnom\tprénom\tdate_naissance\tcommentaire"
ROWS = [
    "9594842949\tFONTAINE\tMathieu\t1936-04-05\tsuivi à Créteil",
    "1234567890\tLEFÈVRE\tHélène\t1951-11-30\tcontrôle œil",
]
POLICY = """\
patient_id_column: patient_id
columns:
  patient_id: pseudonymise-patient-id
  nom: drop
  prénom: drop
  date_naissance: {action: generalise-birth-date, reference: "2026-01-01"}
  commentaire: drop
"""
# (what writes it, Python codec, the encoding pacsguard reports)
EXPORTS = [
    ("Excel CSV UTF-8 (with BOM)", "utf-8-sig", "utf-8-sig"),
    ("LibreOffice UTF-8", "utf-8", "utf-8"),
    ("Excel Unicode text (UTF-16 LE, BOM)", "utf-16-le+bom", "utf-16"),
    ("LibreOffice UTF-16 BE with BOM", "utf-16-be+bom", "utf-16"),
    ("LibreOffice UTF-16 LE without BOM", "utf-16-le", "utf-16-le"),
    ("LibreOffice UTF-16 BE without BOM", "utf-16-be", "utf-16-be"),
    ("LibreOffice UTF-32 LE with BOM", "utf-32-le+bom", "utf-32"),
    ("LibreOffice UTF-32 BE with BOM", "utf-32-be+bom", "utf-32"),
    ("LibreOffice UTF-32 LE without BOM", "utf-32-le", "utf-32-le"),
    ("Excel CSV (Windows, cp1252)", "cp1252", "cp1252"),
    ("LibreOffice ISO-8859-1", "latin-1", "latin-1"),
]
BOMS = {
    "utf-16-le": "\ufeff".encode("utf-16-le"),
    "utf-16-be": "\ufeff".encode("utf-16-be"),
    "utf-32-le": "\ufeff".encode("utf-32-le"),
    "utf-32-be": "\ufeff".encode("utf-32-be"),
}


def _encode(text: str, how: str) -> bytes:
    codec, _, bom = how.partition("+")
    if codec == "latin-1":
        text = text.replace("œ", "oe")
    return (BOMS[codec] if bom else b"") + text.encode(codec)


def _write(tmp_path: Path, how: str, name: str = "export.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(_encode("\r\n".join([HEADER, *ROWS]) + "\r\n", how))
    return path


@pytest.mark.parametrize(("label", "how", "reported"), EXPORTS, ids=[e[0] for e in EXPORTS])
def test_each_export_is_read_as_itself_and_deidentified(
    tmp_path: Path, label: str, how: str, reported: str
) -> None:
    source = _write(tmp_path, how)
    assert detect_encoding(source) == reported, label
    inspection = inspect_table(source)
    assert [c.name for c in inspection.columns] == HEADER.split("\t")
    assert inspection.patient_id_column == "patient_id"
    key = tmp_path / "k"
    new_key(key)
    from pacsguard.core.keys import load_key

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    out = tmp_path / "out"
    deidentify_table([source], out, key=load_key(key), policy=policy)
    written = (out / "export.tsv").read_text(encoding="utf-8")
    assert not written.startswith("\ufeff")
    for planted in ("9594842949", "FONTAINE", "Mathieu", "1936-04-05", "Créteil", "1234567890"):
        assert planted not in written
    assert written.splitlines()[0].split("\t") == ["patient_id", "date_naissance"]


def test_issue_repro_utf16_is_not_read_as_latin1(tmp_path: Path) -> None:
    source = tmp_path / "x.tsv"
    source.write_text(
        "patient_id\tnom\tdate_naissance\n9594842949\tFONTAINE Mathieu\t1936-04-05\n",
        encoding="utf-16",
    )
    with open_table(source) as table:
        assert table.encoding == "utf-16"
        assert table.sheets[0].frame.collect_schema().names() == [
            "patient_id", "nom", "date_naissance"
        ]  # fmt: skip


@pytest.mark.parametrize("wrong", ["latin-1", "cp1252", "utf-8", "mac-roman"])
def test_a_wrong_encoding_given_is_refused_with_the_way_out(tmp_path: Path, wrong: str) -> None:
    source = _write(tmp_path, "utf-16-le+bom")
    with pytest.raises(TableReadError) as caught:
        inspect_table(source, encoding=wrong)
    message = str(caught.value)
    assert "header row does not decode cleanly" in message or "not valid" in message
    assert "--encoding" in message and "utf-16" in message
    assert "FONTAINE" not in message


@pytest.mark.parametrize("wrong", ["utf-16", "utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("actual", ["utf-8", "cp1252"])
def test_one_byte_text_forced_into_utf16_or_32_is_refused(
    tmp_path: Path, wrong: str, actual: str
) -> None:
    """Read as UTF-16-LE, a UTF-8 file was one header cell spelling the whole input in
    CJK-looking pairs; deid kept that column and wrote the input back as its name."""
    source = _write(tmp_path, actual)
    with pytest.raises(TableReadError) as caught:
        inspect_table(source, encoding=wrong)
    assert "--encoding" in str(caught.value) and "FONTAINE" not in str(caught.value)


def test_utf8_forced_into_a_single_byte_encoding_is_refused(tmp_path: Path) -> None:
    source = _write(tmp_path, "utf-8")
    with pytest.raises(TableReadError, match="UTF-8"):
        inspect_table(source, encoding="latin-1")
    assert header_problem(HEADER.encode("utf-8"), "cp1252") is not None
    assert header_problem(HEADER.encode("cp1252"), "cp1252") is None


def test_nul_bytes_in_no_pattern_are_not_text(tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_bytes(b"a;b\n\x00\x00\x01\x02\x00zz\x00\x01;\x00\x00\x00q\n" * 40)
    assert nul_pattern(source.read_bytes()) == "binary"
    with pytest.raises(TableReadError, match="NUL"):
        inspect_table(source)


def test_a_nul_in_the_body_of_a_utf16_table_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    source.write_bytes(_encode("a;b\n1;2\x00\n", "utf-16-le+bom"))
    with pytest.raises(TableReadError, match="NUL"):
        inspect_table(source)


def test_empty_csv_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    with pytest.raises(TableReadError, match="empty"):
        inspect_table(source)


def test_cli_refuses_with_one_error_line(tmp_path: Path) -> None:
    source = _write(tmp_path, "utf-16-le+bom")
    run = subprocess.run(
        [sys.executable, "-m", "pacsguard", "tables", "inspect", str(source),
         "--policy-out", str(tmp_path / "p.yaml"), "--encoding", "latin-1"],
        capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "60"},
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert not (tmp_path / "p.yaml").exists()


# Built to break it: random headers and cells, in every encoding that can hold them, with or
# without a BOM. The header read back is the header written, or the table is refused.
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-éèêëàâäîïôöùûüçœÉÈÇ°€’"
CODECS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
          "utf-32-be", "cp1252", "latin-1", "iso-8859-15", "mac-roman", "cp850"]  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(st.text(ALPHABET, min_size=1, max_size=12).map(str.strip).filter(bool),
                    min_size=1, max_size=5, unique=True),
    cells=st.lists(st.text(ALPHABET, max_size=20), min_size=1, max_size=5),
    codec=st.sampled_from(CODECS),
    given_encoding=st.booleans(),
)  # fmt: skip
def test_a_header_reads_back_as_written_or_is_refused(
    tmp_path: Path, header: list[str], cells: list[str], codec: str, given_encoding: bool
) -> None:
    row = [(cells * len(header))[i] for i in range(len(header))]
    text = "\t".join(header) + "\n" + "\t".join(row) + "\n"
    try:
        data = text.encode(codec)
    except UnicodeEncodeError:
        return  # this export cannot hold these characters: nothing to read
    if not given_encoding and codec in ("iso-8859-15", "mac-roman", "cp850"):
        return  # not detected: the bytes of random text cannot tell them apart (see below)
    source = tmp_path / "t.tsv"
    source.write_bytes(data)
    try:
        with open_table(source, encoding=codec if given_encoding else "auto") as table:
            names = table.sheets[0].frame.collect_schema().names()
    except TableReadError:
        return  # refused, with the way out: never a guess
    assert names == header, (codec, table.encoding)


@pytest.mark.parametrize("codec", ["iso-8859-15", "mac-roman", "cp850"])
def test_exports_auto_detection_cannot_name_are_refused_with_the_right_hint(
    tmp_path: Path, codec: str
) -> None:
    """French headers in Mac, MS-DOS or ISO-8859-15 exports: the accents read wrong as
    cp1252, so the table is refused with the encoding to give, and read right with it."""
    header = "IPP;Prénom;Nom d'épouse;Date d'entrée;Œdème;Commentaire"
    if codec != "iso-8859-15":  # only ISO-8859-15 has Œ; there it is the one byte that differs
        header = header.replace("Œ", "Oe")
    source = tmp_path / "t.csv"
    source.write_bytes((header + "\n1;Hélène;Lefèvre;01/02/2003;non;vue à Créteil\n").encode(codec))
    with pytest.raises(TableReadError, match=f"--encoding {codec}"):
        inspect_table(source)
    with open_table(source, encoding=codec) as table:
        assert table.sheets[0].frame.collect_schema().names() == header.split(";")
