"""The clinical table of a sample: one row per study, the same patients as the images.

A French hospital export as people meet it: ``;``-separated UTF-8 CSV, French headers,
dates as DD/MM/YYYY, identifiers in their own columns and again in free text. Its IPP is the
images' Patient ID, so ``pacsguard tables deid`` under the project key gives each row the
pseudonym and the date offset its studies got from ``pacsguard deid``.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from pathlib import Path

from pacsguard.core.io import atomic_write_text
from pacsguard.sample.identities import french_date
from pacsguard.sample.plan import StudyPlan

CLINICAL_DIR = "clinical"
TABLE_NAME = "export.csv"
HEADER = (
    "IPP", "NOM", "Prénom", "DDN", "Sexe", "CP", "Ville", "Tél", "Mail", "N° sécu",
    "N° accession", "Date examen", "Modalité", "Examen", "Diagnostic", "Poids", "Commentaire",
)  # fmt: skip
_DIAGNOSES = {"CT": ("C34.1", "J18.9"), "MR": ("G35", "I63.9"), "US": ("I21.0", "I50.9")}


def _comment(study: StudyPlan, rng: random.Random) -> str:
    who = study.identity
    person = who.person
    templates = (
        f"Patient {person.given} {person.family} (IPP {who.patient_id}) vu le "
        f"{french_date(study.date)} par {study.referring.title} {study.referring.family}.",
        f"Mme/M. {person.family.upper()} {person.given}, né(e) le {french_date(who.birth_date)}, "
        f"joignable au {who.phones[1]}.",
        f"Contrôle à 3 mois. Écrire à {who.email}. NIR {who.nir_spaced}.",
        "RAS.",
    )
    return rng.choice(templates)


def clinical_rows(plans: Sequence[Sequence[StudyPlan]], seed: int) -> list[list[str]]:
    """The table's rows (header first), deterministic for a seed."""
    rng = random.Random(seed * 7919 + 17)
    rows = [list(HEADER)]
    for studies in plans:
        for study in studies:
            who = study.identity
            rows.append(
                [
                    who.patient_id, who.person.family.upper(), who.person.given,
                    french_date(who.birth_date), who.sex, who.postcode, who.town,
                    who.phones[0], who.email, who.nir, study.accession,
                    french_date(study.date), study.procedure.modality, study.procedure.meaning,
                    rng.choice(_DIAGNOSES.get(study.procedure.modality, ("R69",))),
                    f"{rng.gauss(72, 12):.1f}", _comment(study, rng),
                ]
            )  # fmt: skip
    return rows


def write_clinical_table(out: Path, plans: Sequence[Sequence[StudyPlan]], seed: int) -> Path:
    """Write ``out/clinical/export.csv`` (atomically) and return its path."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(clinical_rows(plans, seed))
    target = out / CLINICAL_DIR / TABLE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, buffer.getvalue())
    return target
