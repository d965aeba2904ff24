"""Synthetic clinical exports with planted identifiers, for tests and benchmarks.

Rows belong to given patients (for instance the sample generator's, so that the table
joins the sample images); every identifying column and the free text carry their values.
"""

from __future__ import annotations

import datetime as dt
import difflib
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


# --- A corpus of clinical notes with an answer key for name scrubbing ----------------------
# The patients' own names (known values of the row), names of other people (physicians with a
# title, relatives by given and family name, a neighbour by a lone given name found in one
# patient's rows only) and words that must stay although the name lexicons hold many of them:
# towns of the hospitals ("Lyon", "Nancy", "Valence" are names too), eponyms ("Wilson",
# "Gilbert", "Parkinson"), drugs, and the ordinary words of the notes ("Patient" is a given name).
_NOTE_FAMILY = (
    "Whitmore", "Lefèvre", "Fairbanks", "Rousseau", "Guérin", "Pemberton", "Marchand",
    "Holloway", "Chevalier", "Blackwood", "Delaunay-Briard", "Kerouac", "Nguyen", "Benali",
    "Kowalczyk", "Martin", "Bernard", "Petit", "Durand", "Leroy", "Garnier", "Faure",
    "Mercier", "Boyer", "Perrin", "Morel", "Girard", "Lambert", "Fontaine", "Roux", "Haddad",
    "Traoré", "Diallo", "Ferreira", "Schmitt", "Meyer", "Lemaire", "Caron", "Brunet",
    "Barbier", "Renaud", "Picard", "Roche", "Aubert", "Vidal", "Colin", "Masson", "Dumas",
    "Quéméner", "Zielinski", "Okafor", "Abramowicz", "Kervella", "Hamon", "Bouvier", "Duval",
)  # fmt: skip
_NOTE_GIVEN = (
    "Hélène", "Gaëlle", "Margaret", "Bérénice", "Anne-Sophie", "Océane", "Jérôme", "François",
    "Edward", "Thibault", "Oliver", "Loïc", "Claire", "Nathalie", "Sylvie", "Mohamed",
    "Karim", "Yasmine", "Julien", "Camille", "Pierre-Yves", "Maëlle", "Ginette", "Rémi",
)  # fmt: skip
_RELATIVE_GIVEN = ("Bérangère", "Ginette", "Solange", "Marcel", "Gisèle", "Armand", "Huguette",
                   "Lucien", "Odette", "Fernand", "Yvette", "Raymonde")  # fmt: skip
_PHYSICIANS = ("Dr Moreau", "Dr Vasseur", "Pr Bertrand", "Dr Fletcher", "Dr Sophie Lemoine",
               "Docteur Aubry", "Dr Hamel", "Pr Jean-Marc Tessier", "Dr Benhamou",
               "Dr N'Diaye", "Dr Martin", "Mme le Dr Roussel", "Dr. Wilson")  # fmt: skip
_HOME_TOWNS = ("Ajaccio", "Bastia", "Pointe-à-Pitre", "Grenoble", "Bourg-en-Bresse", "Annecy",
               "Royan", "Vienne")  # fmt: skip
_SITE_TOWNS = ("Lyon", "Paris", "Nancy", "Valence", "Laval", "Tours", "Nantes", "Toulouse",
               "Lens", "Orange")  # fmt: skip
_EPONYMS = ("Parkinson", "Alzheimer", "Crohn", "Hodgkin", "Wilson", "Horton", "Cushing",
            "Raynaud", "Barrett", "Paget", "Basedow", "Addison", "Gilbert", "Marfan",
            "Charcot", "Turner")  # fmt: skip
# Hospitals named after people: no patient's identifier, yet a given and a family name.
_HOSPITALS = ("Édouard Herriot", "Henri Mondor", "Robert Debré", "Georges Pompidou", "Necker",
              "Léon Bérard", "Louis Pradel", "Pitié-Salpêtrière", "Lariboisière")  # fmt: skip
_DRUGS = ("Doliprane", "Kardégic", "Lovenox", "Eliquis", "Metformine", "Amoxicilline",
          "Lasilix", "Tahor", "Levothyrox", "Bisoprolol")  # fmt: skip
# {row:given} / {row:FAMILY} / {row:family} / {row:town}: the row's own values;
# {titled}: a physician with a title; {pair}: a relative (given + family); {lone}: the
# patient's neighbour by given name; {site}, {eponym}, {drug}, {hospital}: words that must stay.
NOTE_TEMPLATES = (
    "Patient {row:given} {row:FAMILY} vu à {site} par {titled}.",
    "Vu à {site} par {titled}.",
    "Antécédents : maladie de {eponym}, traitement par {drug}.",
    "{row:FAMILY} {row:given}, syndrome de {eponym}. Prévenir sa fille {pair} si besoin.",
    "Contrôle à {site} dans 3 mois. Rappeler {lone} (voisine) avant.",
    "Courrier adressé au {titled} et à sa sœur {pair}.",
    "RAS. {drug} poursuivi, revoir à {site}.",
    "Consultation à {site} : {row:family} revu, {eponym} stable. Domicile à {row:town}.",
    "Mr {row:given} {row:family} seen in {site} by {titled}; {eponym} disease ruled out.",
    "Patient adressé par {titled} pour bilan. {lone} accompagne le patient.",
    "Transféré à l'hôpital {hospital} le lendemain, {drug} arrêté.",
)  # fmt: skip
_SLOT = re.compile(r"\{([a-z:A-Z]+)\}")
_TOKEN = re.compile(r"\[[^\]]*\]|[^\W_]+(?:[-'’][^\W_]+)*")


@dataclass(frozen=True)
class NoteRow:
    """One note and the label of each of its words: ``go:<why>`` (must be removed) or
    ``stay:<what>`` (must be kept)."""

    text: str
    words: tuple[tuple[str, str], ...]


def _note_people(count: int, rng: random.Random) -> list[dict[str, str]]:
    people = []
    for index in range(count):
        family = _NOTE_FAMILY[index % len(_NOTE_FAMILY)]
        if index >= len(_NOTE_FAMILY):  # more patients than names: families share names
            family = rng.choice(_NOTE_FAMILY)
        relative = rng.choice([f for f in _NOTE_FAMILY if f != family])
        people.append(
            {
                "ipp": str(rng.randint(10**9, 10**10 - 1)),
                "family": family,
                "given": rng.choice(_NOTE_GIVEN),
                "town": rng.choice(_HOME_TOWNS),
                "pair": f"{rng.choice(_NOTE_GIVEN)} {relative}",
                "lone": _RELATIVE_GIVEN[index % len(_RELATIVE_GIVEN)],
            }
        )
    return people


def _fill(template: str, person: dict[str, str], rng: random.Random) -> NoteRow:
    pieces: list[tuple[str, str | None]] = []
    rest = 0
    for match in _SLOT.finditer(template):
        pieces.append((template[rest : match.start()], None))
        slot = match.group(1)
        if slot.startswith("row:"):
            field_name = slot[4:]
            value = person[field_name.lower()]
            pieces.append((value.upper() if field_name == "FAMILY" else value, "go:row"))
        elif slot == "titled":
            physician = rng.choice(_PHYSICIANS)
            title, name = _split_title(physician)
            pieces += [(title, None), (name, "go:titled")]
        elif slot in ("pair", "lone"):
            pieces.append((person[slot], f"go:{slot}"))
        else:
            pools = {
                "site": _SITE_TOWNS,
                "eponym": _EPONYMS,
                "drug": _DRUGS,
                "hospital": _HOSPITALS,
            }
            pool = pools[slot]
            pieces.append((rng.choice(pool), f"stay:{slot}"))
        rest = match.end()
    pieces.append((template[rest:], None))
    words: list[tuple[str, str]] = []
    for text, label in pieces:
        words += [(w, label or "stay:word") for w in _TOKEN.findall(text)]
    return NoteRow("".join(text for text, _ in pieces), tuple(words))


def _split_title(physician: str) -> tuple[str, str]:
    """("Mme le Dr ", "Roussel"): the title words stay, the name goes."""
    words = physician.split(" ")
    at = max(i for i, w in enumerate(words) if w.rstrip(".") in ("Dr", "Pr", "Docteur"))
    return " ".join(words[: at + 1]) + " ", " ".join(words[at + 1 :])


def make_note_corpus(patients: int, rows: int, seed: int = 0) -> tuple[pl.DataFrame, list[NoteRow]]:
    """A table (IPP, NOM, Prénom, Ville, Site, Note) and, row for row, its answer key."""
    rng = random.Random(seed)
    people = _note_people(patients, rng)
    records: list[dict[str, str]] = []
    notes: list[NoteRow] = []
    for _ in range(rows):
        person = rng.choice(people)
        note = _fill(rng.choice(NOTE_TEMPLATES), person, rng)
        notes.append(note)
        records.append(
            {
                "IPP": person["ipp"], "NOM": person["family"].upper(), "Prénom": person["given"],
                "Ville": person["town"], "Site": rng.choice(_SITE_TOWNS), "Note": note.text,
            }
        )  # fmt: skip
    return pl.DataFrame(records), notes


@dataclass(frozen=True)
class NameScore:
    """Word counts by label: how many there were and how many the scrubber removed."""

    total: dict[str, int]
    removed: dict[str, int]

    def recall(self, label: str) -> float:
        return self.removed.get(label, 0) / max(self.total.get(label, 0), 1)

    def kept(self, label: str) -> float:
        return 1 - self.recall(label)

    @property
    def precision(self) -> float:
        """Of the words removed, the share that had to go."""
        gone = sum(n for label, n in self.removed.items() if label.startswith("go:"))
        return gone / max(sum(self.removed.values()), 1)

    @property
    def name_recall(self) -> float:
        go = [label for label in self.total if label.startswith("go:")]
        return sum(self.removed.get(g, 0) for g in go) / max(sum(self.total[g] for g in go), 1)


def score_names(notes: Sequence[NoteRow], scrubbed: Sequence[str | None]) -> NameScore:
    """Align each note's words with its scrubbed text: a word not found in place was removed."""
    total: dict[str, int] = {}
    removed: dict[str, int] = {}
    for note, out in zip(notes, scrubbed, strict=True):
        before = [w for w, _ in note.words]
        after = _TOKEN.findall(out or "")
        kept: set[int] = set()
        matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
        for block in matcher.get_matching_blocks():
            kept.update(range(block.a, block.a + block.size))
        for index, (_, label) in enumerate(note.words):
            total[label] = total.get(label, 0) + 1
            if index not in kept:
                removed[label] = removed.get(label, 0) + 1
    return NameScore(total, removed)
