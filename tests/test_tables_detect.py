"""Column classification: NIR keys, headers (French and English), sampled values."""

from __future__ import annotations

import polars as pl
import pytest

from pacsguard.core.nir import is_valid_nir, nir_key
from pacsguard.tables.detect import classify_values
from pacsguard.tables.headers import classify_header
from pacsguard.tables.inspect import decide_kind


@pytest.mark.parametrize(
    "nir",
    [
        "255081416802538",  # published examples, keys checked by hand: 97 - (n mod 97)
        "1 84 12 76 451 089 46",
        "1.84.12.76.451.089.46",
        "185072A123456" + f"{97 - 1850719123456 % 97:02d}",  # Corsica: 2A counts as 19
        "285072B123456" + f"{97 - 2850718123456 % 97:02d}",  # 2B counts as 18
    ],
)
def test_valid_nir_accepted(nir: str) -> None:
    assert is_valid_nir(nir)


@pytest.mark.parametrize(
    "nir",
    [
        "255081416802539",  # wrong key
        "255081416802500",
        "185072A123456" + f"{97 - 1850718123456 % 97:02d}",  # 2A keyed as if it were 2B
        "555081416802538",  # no such sex digit
        "255131416802538",  # month 13
        "25508141680253",  # too short
        "2550814168025380",
        "phone 0612345678",
    ],
)
def test_invalid_nir_rejected(nir: str) -> None:
    assert not is_valid_nir(nir)


def test_nir_key_formula() -> None:
    assert nir_key("2550814168025") == 38
    assert nir_key("185072A123456") == 97 - 1850719123456 % 97


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("NOM", "last-name"), ("Nom usuel", "last-name"), ("surname", "last-name"),
        ("Prénom", "first-name"), ("FIRST_NAME", "first-name"),
        ("Nom de naissance", "birth-name"), ("nom_jeune_fille", "birth-name"),
        ("DDN", "birth-date"), ("Date de naissance", "birth-date"), ("DOB", "birth-date"),
        ("adresse", "address"), ("Adresse postale", "address"), ("CP", "postcode"),
        ("Code postal", "postcode"), ("ZIP", "postcode"), ("Ville", "city"),
        ("Lieu de naissance", "city"), ("Tél.", "phone"), ("telephone_portable", "phone"),
        ("Mail", "email"), ("E-mail", "email"), ("Adresse mail", "email"), ("courriel", "email"),
        ("NIR", "nir"), ("N° sécu", "nir"), ("Numéro de sécurité sociale", "nir"),
        ("INS", "ins"), ("matricule INS", "ins"), ("IPP", "patient-id"),
        ("PatientID", "patient-id"), ("N° patient", "patient-id"), ("NDA", "stay-id"),
        ("Numéro de séjour", "stay-id"), ("N° examen", "accession"),
        ("AccessionNumber", "accession"), ("Médecin traitant", "staff-name"),
        ("Date d'entrée", "date"), ("date_sortie", "date"), ("Age", "age"),
        ("Sexe", "sex"), ("Commentaires", "free-text"), ("Compte rendu", "free-text"),
        ("Notes", "free-text"), ("Diagnostic", None), ("Poids (kg)", None),
    ],
)  # fmt: skip
def test_header_kinds(header: str, kind: str | None) -> None:
    assert classify_header(header) == kind


def _kind(values: list[object], header_kind: str | None = None) -> str | None:
    return classify_values(pl.Series("v", values), header_kind).kind


def test_values_emails_phones_nir() -> None:
    assert _kind(["a.b@example.fr", "c_d+x@hopital.example.org"] * 5) == "email"
    phones = ["06 12 34 56 78", "+33 4 12 34 56 78", "0033612345678", "04.12.34.56.78"]
    assert _kind(phones * 3) == "phone"
    assert _kind(["+44 20 7946 0958", "+1 (415) 555-0100"] * 3) == "phone"
    assert _kind(["255081416802538", "1 84 12 76 451 089 46"] * 3) == "nir"
    # NIR-shaped numbers with wrong keys are not NIRs
    assert _kind(["255081416802539", "184127645108947"] * 3) != "nir"


def test_values_dates_and_formats() -> None:
    evidence = classify_values(pl.Series(["12/03/2020", "01/12/1999", "31/01/2001"]))
    assert evidence.kind == "date"
    assert evidence.formats == ("%d/%m/%Y",)
    iso = classify_values(pl.Series(["2020-03-12", "2020-03-12 08:15:00"]))
    assert iso.kind == "date"
    assert set(iso.formats) == {"%Y-%m-%d", "%Y-%m-%d %H:%M:%S"}
    assert _kind(["20200312", "19991201"]) != "date"  # bare digits need a date header
    assert _kind(["20200312", "19991201"], "date") == "date"


def test_values_postcodes_names_text() -> None:
    assert _kind(["69003", "75011", "20000", "97110"] * 3) == "postcode"
    assert _kind(["12 rue des Lilas", "4 bis avenue Jean Jaurès", "44 Harbour Road"] * 3) == (
        "address"
    )
    assert _kind(["Jean Dupont", "Marie Martin", "Sophie Bernard"] * 4) == "person-name"
    assert _kind(["Dupont", "Martin", "Bernard", "Petit"] * 4) == "last-name"
    notes = ["Patient vu en consultation, pas de plainte particulière."] * 5
    assert _kind(notes) == "free-text"
    assert _kind(["C34.1", "I21.0", "J18.9"] * 5) is None
    assert _kind([70.5, 80.1, 65.0]) is None


def test_header_and_values_combined() -> None:
    dates = classify_values(pl.Series(["Domicile", "Transfert", "Décès"] * 5), "date")
    assert decide_kind("date", dates) == "other"  # "Mode de sortie" is not a date
    emails = classify_values(pl.Series(["a@example.fr"] * 5), "free-text")
    assert decide_kind("free-text", emails) == "email"
    assert decide_kind("ins", classify_values(pl.Series(["255081416802538"] * 5))) == "ins"
    mixed = classify_values(pl.Series(["ok", "rappeler au 06 12 34 56 78", "ok"] * 3))
    assert decide_kind(None, mixed) == "free-text"


def test_cells_that_hold_nothing_are_not_evidence() -> None:
    """30 IDs and 4 "inconnu" (88 % ID-shaped) were below the identifier rule's 90 %."""
    ids = [str(1_000_000_000 + 7919 * i) for i in range(30)]
    found = classify_values(pl.Series([*ids, "inconnu", "Inconnu", "N/A", "-"]))
    assert found.kind == "identifier"
