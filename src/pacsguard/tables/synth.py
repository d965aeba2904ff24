"""Synthetic clinical exports with planted identifiers, for tests and benchmarks.

Rows belong to given patients (for instance the sample generator's, so that the table
joins the sample images); every identifying column and the free text carry their values.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pacsguard.core.nir import nir_key

_FAMILY = ("Whitmore", "Lefèvre", "Fairbanks", "Rousseau", "Guérin", "Pemberton", "Marchand",
           "Holloway", "Chevalier", "Blackwood", "Delaunay-Briard", "Kerouac")  # fmt: skip
_GIVEN_F = ("Hélène", "Gaëlle", "Margaret", "Bérénice", "Anne-Sophie", "Océane")
_GIVEN_M = ("Jérôme", "François", "Edward", "Thibault", "Oliver", "Loïc")
_MAIDEN = ("Delacroix", "Vernier", "Carpentier", "Mallet")
_STREETS = ("rue des Lilas", "avenue Jean Jaurès", "impasse des Tilleuls", "chemin du Moulin")
_TOWNS = (("Lyon", "69003"), ("Grenoble", "38000"), ("Ajaccio", "20000"), ("Bastia", "20200"),
          ("Pointe-à-Pitre", "97110"), ("Bourg-en-Bresse", "01000"))  # fmt: skip
_DOCTORS = ("Dr Moreau", "Dr Vasseur", "Pr Bertrand", "Dr Fletcher")
_DIAGNOSES = ("C34.1", "I21.0", "J18.9", "E11.9", "N18.3", "M16.1")
_TEMPLATES = (
    "Patient {given} {family} (IPP {ipp}) vu le {date} par {doctor}. Tél {phone}.",
    "Mme/M. {FAMILY} {given}, né(e) le {birth}, adresse {street}, {postcode} {town}.",
    "Contrôle à 3 mois. Joindre {family} au {mobile} ou {email}. NIR {nir_spaced}.",
    "Scanner du {date} sans particularité. Cœur normal. Dossier {ipp}.",
    "RAS.",
)


@dataclass(frozen=True)
class TablePatient:
    """One patient's identifiers as a clinical export holds them."""

    patient_id: str
    family: str
    given: str
    birth_name: str | None
    sex: str
    birth_date: dt.date
    street: str
    postcode: str
    town: str
    phone: str
    mobile: str
    email: str
    nir: str

    @property
    def nir_spaced(self) -> str:
        n = self.nir
        return f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:15]}"

    def planted(self) -> dict[str, str]:
        """Every identifying value, by kind: none may survive de-identification."""
        values = {
            "patient-id": self.patient_id, "family": self.family, "given": self.given,
            "birth-date": self.birth_date.strftime("%d/%m/%Y"), "street": self.street,
            "phone": self.phone, "mobile": self.mobile, "email": self.email, "nir": self.nir,
            "nir-spaced": self.nir_spaced,
        }  # fmt: skip
        if self.birth_name:
            values["birth-name"] = self.birth_name
        return values


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def make_nir(rng: random.Random, sex: str, birth: dt.date, postcode: str) -> str:
    department = postcode[:2]
    if department == "20":
        department = "2A" if postcode[2] in "01" else "2B"
    body = f"{1 if sex == 'M' else 2}{birth.year % 100:02d}{birth.month:02d}{department}"
    body += f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    return body + f"{nir_key(body):02d}"


def make_patients(count: int, seed: int = 0) -> list[TablePatient]:
    rng = random.Random(seed)
    people = []
    for index in range(count):
        sex = rng.choice("FM")
        family = _FAMILY[index % len(_FAMILY)] + (
            f"-{index // len(_FAMILY)}" if index >= 12 else ""
        )
        given = rng.choice(_GIVEN_F if sex == "F" else _GIVEN_M)
        birth = dt.date(1925, 1, 1) + dt.timedelta(days=rng.randint(0, 80 * 365))
        town, postcode = rng.choice(_TOWNS)
        pairs = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
        mobile = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
        local = strip_accents(f"{given}.{family}").lower()
        people.append(
            TablePatient(
                patient_id=str(rng.randint(10**9, 10**10 - 1)),
                family=family,
                given=given,
                birth_name=rng.choice(_MAIDEN) if sex == "F" else None,
                sex=sex,
                birth_date=birth,
                street=f"{rng.randint(1, 120)} {rng.choice(_STREETS)}",
                postcode=postcode,
                town=town,
                phone=f"04 {pairs}",
                mobile=f"06 {mobile}",
                email=f"{local}@example.fr",
                nir=make_nir(rng, sex, birth, postcode),
            )
        )
    return people


def _patient_frame(patients: Sequence[TablePatient]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "IPP": [p.patient_id for p in patients],
            "NOM": [p.family.upper() for p in patients],
            "Prénom": [p.given for p in patients],
            "Nom de naissance": [p.birth_name for p in patients],
            "DDN": [p.birth_date.strftime("%d/%m/%Y") for p in patients],
            "Sexe": [p.sex for p in patients],
            "Adresse": [p.street for p in patients],
            "CP": [p.postcode for p in patients],
            "Ville": [p.town for p in patients],
            "Tél": [p.phone for p in patients],
            "Portable": [p.mobile for p in patients],
            "Mail": [p.email for p in patients],
            "N° sécu": [p.nir for p in patients],
            "INS": [p.nir for p in patients],
            "_given": [p.given for p in patients],
            "_family": [p.family for p in patients],
            "_nir_spaced": [p.nir_spaced for p in patients],
            "_birth": [p.birth_date for p in patients],
        }
    )


def _note(template: str) -> pl.Expr:
    """A template as a polars expression over the row's columns."""
    fields = {
        "given": pl.col("_given"), "family": pl.col("_family"), "FAMILY": pl.col("NOM"),
        "ipp": pl.col("IPP"), "date": pl.col("Date entrée"), "doctor": pl.col("Médecin"),
        "phone": pl.col("Tél"), "birth": pl.col("DDN"), "street": pl.col("Adresse"),
        "postcode": pl.col("CP"), "town": pl.col("Ville"), "mobile": pl.col("Portable"),
        "email": pl.col("Mail"), "nir_spaced": pl.col("_nir_spaced"),
    }  # fmt: skip
    parts: list[pl.Expr] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        parts += [pl.lit(head), fields[name]]
    parts.append(pl.lit(rest))
    return pl.concat_str(parts)


def make_table(
    patients: Sequence[TablePatient], rows: int, *, columns: int = 0, seed: int = 0
) -> pl.DataFrame:
    """``rows`` rows spread over ``patients``; ``columns`` > the identifying ones adds
    numeric and categorical measurement columns up to that width."""
    gen = np.random.default_rng(seed)
    people = _patient_frame(patients)
    pick = gen.integers(0, len(patients), rows)
    table = people[pick]
    first_day = np.datetime64("2005-01-01")
    admission = first_day + gen.integers(0, 20 * 365, rows).astype("timedelta64[D]")
    stay = gen.integers(0, 30, rows)
    base = pl.DataFrame(
        {
            "NDA": [f"{n:09d}" for n in gen.integers(10**8, 10**9 - 1, rows)],
            "_in": admission,
            "_out": admission + stay.astype("timedelta64[D]"),
            "Médecin": np.array(_DOCTORS)[gen.integers(0, len(_DOCTORS), rows)],
            "Diagnostic": np.array(_DIAGNOSES)[gen.integers(0, len(_DIAGNOSES), rows)],
            "Poids": np.round(gen.normal(72, 12, rows), 1),
            "_template": gen.integers(0, len(_TEMPLATES), rows),
        }
    )
    table = pl.concat([table, base], how="horizontal").with_columns(
        pl.col("_in").dt.strftime("%d/%m/%Y").alias("Date entrée"),
        pl.col("_out").dt.strftime("%Y-%m-%d").alias("Date sortie"),
        (pl.col("_in").dt.year() - pl.col("_birth").dt.year()).alias("Age"),
    )
    note = pl.lit(None, dtype=pl.String)
    for index, template in enumerate(_TEMPLATES):
        note = pl.when(pl.col("_template") == index).then(_note(template)).otherwise(note)
    table = table.with_columns(note.alias("Commentaire"))
    ordered = [
        "IPP", "NDA", "NOM", "Prénom", "Nom de naissance", "DDN", "Sexe", "Age", "Adresse",
        "CP", "Ville", "Tél", "Portable", "Mail", "N° sécu", "INS", "Date entrée",
        "Date sortie", "Médecin", "Diagnostic", "Poids", "Commentaire",
    ]  # fmt: skip
    table = table.select(ordered)
    extra = max(0, columns - len(ordered))
    fillers: dict[str, Any] = {}
    for index in range(extra):
        name = f"mesure_{index + 1:03d}"
        if index % 3 == 2:
            fillers[name] = np.array(["bas", "normal", "haut"])[gen.integers(0, 3, rows)]
        else:
            fillers[name] = np.round(gen.normal(100, 15, rows), 2)
    if fillers:
        table = pl.concat([table, pl.DataFrame(fillers)], how="horizontal")
    return table


def write_table(
    frame: pl.DataFrame, path: Path, *, separator: str = ";", encoding: str = "utf-8"
) -> None:
    """Write ``frame`` in the format its suffix names (CSV in ``encoding``)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".xlsx":
        frame.write_excel(path, worksheet="Patients", autofit=False)
    elif encoding == "utf-8":
        frame.write_csv(path, separator=separator)
    else:
        utf8 = path.with_name(path.name + ".utf8")
        frame.write_csv(utf8, separator=separator)
        _encode(utf8, path, encoding)
        utf8.unlink()


def _encode(source: Path, target: Path, encoding: str) -> None:
    text = source.read_text(encoding="utf-8")
    if encoding == "latin-1":
        text = text.replace("œ", "oe").replace("Œ", "OE")
    target.write_bytes(text.encode(encoding))


def leaks(text: str, patients: Sequence[TablePatient]) -> list[str]:
    """The kinds of planted values found in ``text`` (case and accents ignored; names as
    whole words)."""
    folded = strip_accents(text).lower()
    found = []
    for patient in patients:
        for kind, value in patient.planted().items():
            needle = strip_accents(value).lower()
            if kind in ("family", "given", "birth-name", "street"):
                hit = re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", folded) is not None
            else:
                hit = needle in folded
            if hit:
                found.append(kind)
    return found
