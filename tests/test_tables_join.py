"""A de-identified table joins the de-identified images of the same patients.

The sample generator writes DICOM studies with an answer key; ``pacsguard.deid`` turns
them into pseudonymous images; a clinical export of the same patients (one row per study)
goes through ``pacsguard.tables``. Patient IDs, accession numbers and shifted study dates
must then be equal on both sides.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pydicom

from pacsguard.core.keys import ProjectKey
from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid import DeidConfig, deidentify
from pacsguard.sample import AnswerKey, generate
from pacsguard.tables import deidentify_table, parse_policy
from pacsguard.tables.synth import TablePatient, leaks

KEY = ProjectKey(bytes(range(2, 34)))

POLICY = {
    "patient_id_column": "IPP",
    "columns": {
        "IPP": "pseudonymise-patient-id",
        "N° examen": "pseudonymise-accession",
        "Date examen": {"action": "shift-date", "formats": ["%d/%m/%Y"]},
        "NOM": "drop",
        "Prénom": "drop",
        "Nom de naissance": "drop",
        "DDN": {"action": "generalise-birth-date", "to": "year", "reference": "2025-01-01"},
        "Adresse": "drop",
        "Tél": "drop",
        "Mail": "drop",
        "NIR": "drop",
        "Sexe": "keep",
        "Compte rendu": {
            "action": "scrub-text",
            "known_values_from": ["IPP", "NOM", "Prénom", "Nom de naissance", "Adresse", "DDN"],
        },
    },
}


def _patients(key: AnswerKey) -> list[TablePatient]:
    """The answer key's patients as a clinical export would list them."""
    people = []
    for p in key.patients:
        street, _, place = p.address.partition(", ")
        postcode, _, town = place.partition(" ")
        maiden = p.other_names[0].split("^")[0].capitalize() if p.other_names else None
        people.append(
            TablePatient(
                patient_id=p.patient_id,
                family=p.family_name,
                given=p.given_name,
                birth_name=maiden if maiden and maiden != p.family_name else None,
                sex=p.sex,
                birth_date=dt.datetime.strptime(p.birth_date, "%Y%m%d").date(),
                street=street,
                postcode=postcode,
                town=town,
                phone=p.phones[0],
                mobile=p.phones[1],
                email=p.email,
                nir=p.nir,
            )
        )
    return people


def _export(key: AnswerKey, people: list[TablePatient]) -> pl.DataFrame:
    rows = []
    for p, person in zip(key.patients, people, strict=True):
        for study in p.studies:
            day = dt.datetime.strptime(study.study_date, "%Y%m%d").strftime("%d/%m/%Y")
            rows.append(
                {
                    "IPP": p.patient_id,
                    "N° examen": study.accession_number,
                    "Date examen": day,
                    "NOM": p.family_name.upper(),
                    "Prénom": p.given_name,
                    "Nom de naissance": person.birth_name,
                    "DDN": person.birth_date.strftime("%d/%m/%Y"),
                    "Adresse": p.address,
                    "Tél": p.phones[0],
                    "Mail": p.email,
                    "NIR": p.nir,
                    "Sexe": p.sex,
                    "Compte rendu": f"{study.description}: {p.given_name} {p.family_name.upper()}"
                    f" (IPP {p.patient_id}) vu le {day}, né(e) le {person.birth_date:%d/%m/%Y},"
                    f" joignable au {p.phones[0]}.",
                }
            )
    return pl.DataFrame(rows)


def _images(output: Path) -> set[tuple[str, str, str]]:
    found = set()
    for path in output.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found.add((str(ds.PatientID), str(ds.AccessionNumber), str(ds.StudyDate)))
    return found


def test_table_rows_join_their_deidentified_studies(tmp_path: Path) -> None:
    answer = generate(tmp_path / "sample", seed=5, patients=3)
    options = frozenset({"retain-long-modified-dates"})  # dates shifted, not removed
    config = DeidConfig(options=options)
    deidentify([tmp_path / "sample" / "dicom"], tmp_path / "images", key=KEY, config=config)
    images = _images(tmp_path / "images")
    assert len({pid for pid, _, _ in images}) == 3

    people = _patients(answer)
    source = tmp_path / "export.csv"
    _export(answer, people).write_csv(source, separator=";")
    deidentify_table([source], tmp_path / "tables", key=KEY, policy=parse_policy(POLICY))
    table = pl.read_csv(tmp_path / "tables" / "export.csv", separator=";", infer_schema=False)

    def as_dicom(day: str) -> str:
        return dt.datetime.strptime(day, "%d/%m/%Y").strftime("%Y%m%d")

    rows = {
        (r["IPP"], r["N° examen"], as_dicom(r["Date examen"])) for r in table.iter_rows(named=True)
    }
    assert rows == images  # same patient pseudonym, accession pseudonym and shifted date
    assert leaks((tmp_path / "tables" / "export.csv").read_text(encoding="utf-8"), people) == []


def test_join_at_the_pseudonym_level(tmp_path: Path) -> None:
    """Without images: the table's values are exactly the images' keyed functions."""
    pz = Pseudonymizer(KEY)
    frame = pl.DataFrame(
        {"IPP": ["0012345", "0012345 ", "98765"], "Date examen": ["12/03/2020"] * 3}
    )
    source = tmp_path / "t.csv"
    frame.write_csv(source, separator=";")
    policy = parse_policy(
        {
            "patient_id_column": "IPP",
            "columns": {"IPP": "pseudonymise-patient-id", "Date examen": "shift-date"},
        }
    )
    deidentify_table([source], tmp_path / "out", key=KEY, policy=policy)
    out = pl.read_csv(tmp_path / "out" / "t.csv", separator=";", infer_schema=False)
    assert out["IPP"].to_list() == [pz.patient_id("0012345")] * 2 + [pz.patient_id("98765")]
    for pid, day in zip(["0012345", "0012345", "98765"], out["Date examen"], strict=True):
        expected = dt.date(2020, 3, 12) + dt.timedelta(pz.date_offset_days(pid))
        assert day == expected.strftime("%d/%m/%Y")
