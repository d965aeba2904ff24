"""Identifier shapes the verifier recognises in text, and technical text it leaves alone."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from pacsguard.core.errors import InputError
from pacsguard.core.shapes import find_identifiers, fold
from pacsguard.verify.known import KnownValues, date_forms, parse_da
from pacsguard.verify.matching import known_in_text
from pacsguard.verify.policy import Policy, is_pseudonym


def kinds(text: str) -> set[str]:
    return {hit.kind for hit in find_identifiers(text)}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("NIR 1 85 05 78 006 084 91", "nir"),
        ("269029934173285", "nir"),
        ("n° sécu 1 84 02 2A 004 123 57", "nir"),
        ("INS: 185057800608491", "ins"),
        ("issuer 1.2.250.1.213.1.4.8", "ins"),
        ("tél. 06 12 34 56 78", "phone"),
        ("01.23.45.67.89", "phone"),
        ("+33 6 12 34 56 78", "phone"),
        ("call (555) 123-4567", "phone"),
        ("020 7946 0018", "phone"),
        ("jean.dupont@example.fr", "email"),
        ("12 rue de la Paix", "street-address"),
        ("3 bis, avenue Jean Jaurès", "street-address"),
        ("221 Baker Street", "street-address"),
        ("69007 Lyon", "postcode-town"),
        ("F-13001 Marseille", "postcode-town"),
        ("YO1 7HH", "postcode-town"),
        ("Springfield, IL 62704", "postcode-town"),
        ("né le 12/03/1956", "date-in-text"),
        ("1956-03-12", "date-in-text"),
        ("12 mars 1956", "date-in-text"),
        ("March 12, 1956", "date-in-text"),
        ("Dr Moreau", "person-name"),
        ("MADAME DURAND", "person-name"),
        ("Jean Dupont", "person-name"),
        ("DUPONT JEAN", "person-name"),
        ("Marie-Claire Lefebvre", "person-name"),
        ("DUPONT^JEAN", "person-name"),
        ("Nom: Martin", "person-name"),
    ],
)
def test_identifier_shapes_are_found(text: str, kind: str) -> None:
    assert kind in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "MR Vision 3",
        "CT Vision 3",
        "THORAX 2.5mm",
        "B30f",
        "120 kV 250 mAs",
        "T1 SE AXIAL",
        "ECHO CARDIAQUE",
        "IRM CEREBRALE",
        "ACME Medical",
        "1.2.840.10008.5.1.4.1.1.2",
        "185057800608490",  # NIR shape, wrong key
        "1.2.840.113619.2.274045997629788.1",  # a UID's component of NIR shape, valid key
        "1.2.3.185057800608491.1",
        "0.5 1.25 3.75",
        "PS3.15 Basic Profile",
        "pacsguard 0.1.0",
        "ORIGINAL\\PRIMARY\\AXIAL",
        "Contours RT",
    ],
)
def test_technical_text_is_left_alone(text: str) -> None:
    assert kinds(text) == set()


def test_dates_in_text_can_be_ignored() -> None:
    assert find_identifiers("12/03/1956", dates=False) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PGABCDEFGHIJKLMN23", True),
        ("PGABCDEFGHIJKLMN23^PGABCDEFGHIJKLMN23", True),
        ("ANONYMOUS", True),
        ("2.25.1234567890", True),
        ("DUPONT^JEAN", False),
        ("", False),
    ],
)
def test_pseudonyms(value: str, expected: bool) -> None:
    assert is_pseudonym(value) is expected


def source() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DUPONT^Jean-Marie^^M."
    ds.PatientID = "IPP004518"
    ds.PatientBirthDate = "19560312"
    ds.StudyDate = "20190102"
    ds.AccessionNumber = "RX1234"
    ds.StudyInstanceUID = "1.2.3.4.5.6.7.8.9"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.InstitutionName = "CHU de Nantes"
    ds.PatientAddress = "12 rue de la Paix, 44000 Nantes"
    ds.DeviceSerialNumber = "SN-99812"
    return ds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jean-marie dupont", "person-name"),
        ("Dupont, Jean-Marie", "person-name"),
        ("Mme Dupont", "name-part"),
        ("dossier ipp004518", "identifier"),
        ("IPP 004 518", "identifier"),
        ("acc RX1234", "identifier"),
        ("né le 12 mars 1956", "date"),
        ("12.03.1956", "date"),
        ("chu de nantes", "institution"),
        ("12 RUE DE LA PAIX, 44000 NANTES", "address"),
        ("serial sn99812", "device"),
        ("ref 1.2.3.4.5.6.7.8.9", "uid"),
    ],
)
def test_known_values_in_any_form(text: str, expected: str) -> None:
    known = KnownValues.from_dataset(source())
    assert expected in known_in_text(text, known, Policy.from_options())


def test_known_values_respect_retained_options() -> None:
    known = KnownValues.from_dataset(source())
    policy = Policy.from_options(["retain-institution-identity", "retain-device-identity"])
    assert known_in_text("CHU de Nantes", known, policy) == []
    assert known_in_text("SN-99812", known, policy) == []
    assert known_in_text("1.2.3.4.5.6.7.8.9", known, Policy.from_options(), uid=True) == ["uid"]
    assert known_in_text("1.2.840.10008.5.1.4.1.1.2", known, Policy.from_options(), uid=True) == []
    assert (
        known_in_text("1.2.3.4.5.6.7.8.9", known, Policy.from_options(["retain-uids"]), uid=True)
        == []
    )


def test_known_values_never_show_in_repr() -> None:
    assert "DUPONT" not in repr(KnownValues.from_dataset(source()))


def test_mapping_csv(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "map.csv"  # type: ignore[operator]
    path.write_text(
        "kind,original,pseudonym\n"
        "patient-id,IPP004518,PGAAAAAAAAAAAAAAAA\n"
        "patient-name,DUPONT^Jean,PGAAAAAAAAAAAAAAAA\n"
        "birth-date,19560312,\n"
        "uid,1.2.3.4.5,2.25.1\n"
        "date-offset,IPP004518,-400\n",
        encoding="utf-8",
    )
    known = KnownValues.from_mapping(path)
    assert known.birth_dates == {"19560312"} and known.uids == {"1.2.3.4.5"}
    assert "IPP004518" in known.identifiers and "JEAN DUPONT" in known.full_names
    bad = tmp_path / "bad.csv"  # type: ignore[operator]
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError):
        KnownValues.from_mapping(bad)


def test_date_forms_and_folding() -> None:
    day = parse_da("19560312")
    assert day is not None and parse_da("19561312") is None
    forms = date_forms(day)
    assert {"19560312", "12 03 1956", "12 MARS 1956", "MARCH 12 1956"} <= forms
    assert fold("  Élodie   d'Arc ") == "ELODIE D ARC"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Tarou Yamada", "person-name"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "CT 山田^太郎 様", "person-name"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "患者山田太郎", "person-name"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "やまだ たろう", "person-name"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "山田先生", "name-part"),
        ("김^철수", "검사 김철수 님", "person-name"),
        ("Παπαδόπουλος^Γιώργος", "Γιώργος Παπαδόπουλος", "person-name"),
        ("Иванов^Иван", "пациент ИВАНОВ", "name-part"),
        ("DUPONT^JEAN", "DUPONTJEAN", "person-name"),  # burned-in capitals read run together
        # format characters (Cf) split no word as a reader sees it
        ("DUPONT^JEAN", "Vu par Jean Du\u00adpont", "person-name"),
        ("DUPONT^JEAN", "DU\u200bPONT JE\u200cAN", "person-name"),
        ("DUPONT^JEAN", "\ufeffDUPONT\u2060JEAN", "person-name"),
    ],
)
def test_known_names_in_every_script(name: str, text: str, expected: str) -> None:
    """Names were folded to ASCII, so a name in kanji, Hangul, Greek or Cyrillic folded to
    nothing and was never found again; and only the first component group was read."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    known = KnownValues.from_dataset(ds)
    assert expected in known_in_text(text, known, Policy.from_options())


@pytest.mark.parametrize("text", ["CT THORAX", "胸部 CT", "검사 결과", "κανονικό"])
def test_a_name_in_another_script_does_not_flag_other_text(text: str) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert known_in_text(text, KnownValues.from_dataset(ds), Policy.from_options()) == []
