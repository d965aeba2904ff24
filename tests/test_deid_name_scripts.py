"""Names in every script and of every length.

Found by a campaign on pydicom's own files: a Japanese, Chinese or Korean name written in
its ideographic or Hangul form, and a one-part name of two letters, stayed verbatim in a
kept Code Meaning, because the tokens of a name were taken from its first component group
only, counted ideographs as Latin letters, and were folded one way (Hangul syllables into
jamo) where the sweep folded the text another (each syllable to its leading consonant).
Now one fold serves the tokens, the sweep and the post-write check (``text.fold``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from conftest import local_test_files
from pacsguard.core.keys import ProjectKey
from pacsguard.deid import DeidConfig, DeidReport, deidentify
from pacsguard.deid.identity import Identity, _name_tokens
from pacsguard.deid.postcheck import check_bytes
from pacsguard.deid.text import KnownValues, find_known, fold

# (Specific Character Set, Patient's Name, the text planted in a kept Code Meaning)
CASES = [
    ("ISO_IR 192", "山田^太郎", "山田^太郎"),
    ("ISO_IR 192", "YAMADA^TARO=山田^太郎", "山田^太郎"),
    ("ISO_IR 192", "YAMADA^TARO=山田^太郎=やまだ^たろう", "やまだ たろう"),
    ("ISO_IR 192", "WANG^WEI=王^伟", "王伟"),
    (["", "ISO 2022 IR 149"], "KIM^CHEOLSU=김^철수", "김^철수"),
    ("ISO_IR 192", "김^철수", "김철수"),
    ("ISO_IR 192", "김^철수", "검사 김철수 님"),
    (["", "ISO 2022 IR 87"], "YAMADA^TARO=山田^太郎=やまだ^たろう", "胸部 山田^太郎"),
    ("ISO_IR 192", "ＹＡＭＡＤＡ^ＴＡＲＯ", "yamada taro"),
    ("ISO_IR 100", "KO", "KO"),
    ("ISO_IR 100", "OB^^^^", "OB"),
]


def _ct(folder: Path, charset: str | list[str], name: str, meaning: str) -> Path:
    ds = pydicom.dcmread(local_test_files("CT_small.dcm")[0])
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = "MRN84736251"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-1", "SRT", meaning
    ds.ProcedureCodeSequence = Sequence([code])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _deid(tmp_path: Path, key: ProjectKey, *inputs: Path) -> DeidReport:
    """One run of ``inputs`` (default: ``in``) into ``out``, its state in ``state``."""
    return deidentify(
        list(inputs) or [tmp_path / "in"], tmp_path / "out", key=key,
        config=DeidConfig(jobs=1, state_dir=tmp_path / "state", quarantine_dir=tmp_path / "q"),
    )  # fmt: skip


def _outcomes(state: Path) -> list[dict[str, object]]:
    manifest = json.loads((state / "manifest.json").read_text())
    return list(manifest["outcomes"])


@pytest.mark.parametrize(("charset", "name", "meaning"), CASES)
def test_a_name_in_any_script_is_cleaned_from_a_code_meaning(
    tmp_path: Path, project_key: ProjectKey, charset: str | list[str], name: str, meaning: str
) -> None:
    _ct(tmp_path / "in", charset, name, meaning)
    out, state = tmp_path / "out", tmp_path / "state"
    _deid(tmp_path, project_key)
    # written, not quarantined: the sweep cleaned it, the post-write check found nothing
    assert [o["status"] for o in _outcomes(state)] == ["output"]
    (written,) = out.rglob("*.dcm")
    kept = pydicom.dcmread(written).ProcedureCodeSequence[0].CodeMeaning
    assert "[NAME]" in kept
    for group in name.split("="):
        for part in group.split("^"):
            if len(part) >= 2:
                assert part not in kept, part


NAMES = st.text(
    alphabet=st.characters(codec="utf-8", categories=("Lu", "Ll", "Lo")), min_size=2, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(family=NAMES, given_name=NAMES, before=st.sampled_from(["", "CT ", "検査 ", "x "]))
def test_the_sweep_finds_a_name_as_the_tokens_fold_it(
    family: str, given_name: str, before: str
) -> None:
    tokens = _name_tokens(fold(f"{family}^{given_name}"))
    known = Identity(names=frozenset(tokens)).known()
    for written in (f"{family}^{given_name}", f"{family} {given_name}", family + given_name):
        text = before + written
        assert len(fold(text)) == len(text)
        hits = find_known(text, known)
        assert hits, (text, tokens)
        assert any(h.start <= len(before) and h.end == len(text) for h in hits), (text, hits)


def test_fold_keeps_hangul_syllables_and_unifies_full_width_letters() -> None:
    assert fold("김철수") == "김철수"
    assert fold("ＹＡＭＡＤＡ") == "yamada"
    assert fold("Hélène ß") == "helene ß"
    # the sweep's old fold took each syllable's leading consonant: 김철수 matched 기차 ...
    assert find_known("기차 시간", KnownValues(names=frozenset({"김철수"}))) == []


def test_a_two_letter_name_is_left_to_the_sweep_by_the_byte_search() -> None:
    """Every explicit VR file holds "OB" as a word (a VR code in its File Meta)."""
    data = local_test_files("CT_small.dcm")[0].read_bytes()
    assert check_bytes(data, Identity(names=frozenset({"ob"}))) is None
    assert check_bytes(data, Identity(names=frozenset({"ct_small"}))) is None


@pytest.mark.parametrize(
    ("attribute", "value", "written"),
    [
        ("OtherPatientIDs", "SSN-998877665", "998877665"),
        ("PatientID", "0012345678", "12345678"),
        ("PatientID", "MRN84736251", "MRN 84736251"),
        ("PatientAddress", "12 rue des Qrolls, 75011 Paris", "rue des Qrolls"),
    ],
)
def test_an_identifier_as_people_write_it_again_is_cleaned(
    tmp_path: Path, project_key: ProjectKey, attribute: str, value: str, written: str
) -> None:
    """Found by the same campaign: the number inside an ID, an ID without its leading
    zeros, a street without its house number stayed in a kept Code Meaning."""
    path = _ct(tmp_path / "in", "ISO_IR 100", "ZQXWOMBAT^JOHN", written)
    ds = pydicom.dcmread(path)
    setattr(ds, attribute, value)
    ds.save_as(path, enforce_file_format=True)
    state = tmp_path / "state"
    _deid(tmp_path, project_key)
    assert [o["status"] for o in _outcomes(state)] == ["output"]
    (out,) = (tmp_path / "out").rglob("*.dcm")
    kept = pydicom.dcmread(out).ProcedureCodeSequence[0].CodeMeaning
    assert written not in kept and written.split()[-1] not in kept, kept


def test_a_town_alone_is_not_a_token() -> None:
    from pacsguard.deid.identity import _place_tokens

    assert "paris" not in _place_tokens(fold("12 rue des Qrolls, 75011 Paris"))
    assert "paris" not in _place_tokens(fold("75011 Paris"))


INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_an_invisible_character_inside_a_name_does_not_hide_it(
    tmp_path: Path, project_key: ProjectKey, invisible: str
) -> None:
    """A soft hyphen or a zero-width character (Unicode format characters, category Cf:
    word processors and web forms put them in text pasted into a RIS) splits no word as a
    reader sees it, so it must not split a name for the sweep either."""
    written = f"Scanner ZQX{invisible}WOMBAT JO{invisible}HN"
    _ct(tmp_path / "in", "ISO_IR 192", "ZQXWOMBAT^JOHN", written)
    _deid(tmp_path, project_key)
    assert [o["status"] for o in _outcomes(tmp_path / "state")] == ["output"]
    (out,) = (tmp_path / "out").rglob("*.dcm")
    kept = pydicom.dcmread(out).ProcedureCodeSequence[0].CodeMeaning
    visible = kept.replace(invisible, "")
    assert "WOMBAT" not in visible and "ZQX" not in visible and "JOHN" not in visible, kept
    assert kept.startswith("Scanner [NAME]"), kept


def test_the_sweep_maps_a_hit_across_invisible_characters_to_the_text() -> None:
    known = KnownValues(names=frozenset({"dupont"}))
    text = "vu par Du\u00adpont\u200b hier"
    (hit,) = find_known(text, known)
    assert text[hit.start : hit.end] == "Du\u00adpont"


def test_a_name_given_with_an_invisible_character_is_found_without_it(
    tmp_path: Path, project_key: ProjectKey
) -> None:
    """The tokens are the name as a reader sees it: the attribute's own soft hyphen is not
    a letter that the text must hold too."""
    _ct(tmp_path / "in", "ISO_IR 192", "ZQX\u00adWOMBAT^JOHN", "Scanner ZQXWOMBAT")
    _deid(tmp_path, project_key)
    assert [o["status"] for o in _outcomes(tmp_path / "state")] == ["output"]
    (out,) = (tmp_path / "out").rglob("*.dcm")
    kept = pydicom.dcmread(out).ProcedureCodeSequence[0].CodeMeaning
    assert kept == "Scanner [NAME]", kept


def test_fold_never_turns_a_letter_into_a_space() -> None:
    """Arabic isolated-form diacritics (U+FC5E, U+FE70…) decompose to a space and marks: as a
    space, they cut a name's token short of the text (found by the property above)."""
    assert fold("a\ufc5e") == "a\ufc5e" and fold("x\ufe70") == "x\ufe70"
    assert fold("a\u00a0b") == "a b"  # a no-break space is a space
