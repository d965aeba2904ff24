"""Fake people, places and identifiers that look real (French and English)."""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass

from pacsguard.core.nir import is_valid_nir, nir_key

FRENCH_GIVEN_F = ("Hélène", "Camille", "Nathalie", "Gaëlle", "Sophie", "Isabelle", "Bérénice")
FRENCH_GIVEN_M = ("Jean", "François", "Jérôme", "Mathieu", "Nicolas", "Olivier", "Thierry")
ENGLISH_GIVEN_F = ("Margaret", "Emily", "Charlotte", "Hannah", "Abigail", "Rachel")
ENGLISH_GIVEN_M = ("William", "Thomas", "Edward", "Oliver", "Harry", "George")
FRENCH_FAMILY = (
    "Dupont", "Lefèvre", "Rousseau", "Fontaine", "Chevalier", "Marchand", "Girard", "Mercier",
    "Lambert", "Bonnet", "Faure", "Garnier", "Guérin", "Boyer", "Perrin", "Blanchard",
)  # fmt: skip
ENGLISH_FAMILY = (
    "Whitmore", "Ashworth", "Pemberton", "Holloway", "Fairbanks", "Thornton", "Kendrick",
    "Blackwood", "Hargreaves", "Winslow", "Caldwell", "Prescott",
)  # fmt: skip
# Staff names come from separate lists so that no patient shares a family name with a doctor.
STAFF = (
    ("MOREAU", "Claire"), ("BERTRAND", "Luc"), ("RENAUD", "Anne-Sophie"), ("ARNAUD", "Pierre"),
    ("FLETCHER", "Susan"), ("GALLAGHER", "Mark"), ("VASSEUR", "Élodie"), ("PRATT", "Daniel"),
)  # fmt: skip
STREETS = (
    "rue des Lilas", "avenue Jean Jaurès", "boulevard Victor Hugo", "rue de la République",
    "impasse des Tilleuls", "chemin du Moulin",
)  # fmt: skip
TOWNS = (
    ("Lyon", "69003"), ("Grenoble", "38000"), ("Nantes", "44000"), ("Rennes", "35000"),
    ("Dijon", "21000"), ("Toulouse", "31400"), ("Lille", "59000"),
)  # fmt: skip
ENGLISH_STREETS = ("Harbour Road", "Mill Lane", "Church Street", "Elm Grove")
ENGLISH_TOWNS = (("Bristol", "BS1 4XY"), ("York", "YO1 7HH"), ("Leeds", "LS2 9JT"))
INSTITUTIONS = (
    ("Centre Hospitalier de Valmont", "12 avenue des Tilleuls, 38100 Valmont"),
    ("Clinique Sainte-Aurélie", "4 rue Pasteur, 69007 Lyon"),
    ("Hôpital Privé du Belvédère", "88 route de Rouen, 76000 Rouen"),
    ("St Aldhelm General Hospital", "44 Harbour Road, Bristol BS1 4XY"),
)
MAIDEN_NAMES = ("Delacroix", "Vernier", "Lemaire", "Carpentier", "Mallet", "Royer")
MAIL_DOMAINS = ("example.fr", "example.org", "example.net")


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def french_date(day: dt.date) -> str:
    return day.strftime("%d/%m/%Y")


def dicom_date(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


@dataclass(frozen=True)
class Person:
    family: str
    given: str
    title: str = ""

    @property
    def dicom(self) -> str:
        """DICOM PN form: FAMILY^Given (with the prefix when there is a title)."""
        if self.title:
            return f"{self.family.upper()}^{self.given}^^{self.title}"
        return f"{self.family.upper()}^{self.given}"

    @property
    def natural(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def natural_forms(self) -> tuple[str, ...]:
        """Forms written in free text and drawn in pixels."""
        upper = self.family.upper()
        return (
            f"{self.given} {self.family}",
            f"{self.given} {upper}",
            f"{upper} {self.given}",
            strip_accents(f"{upper} {self.given.upper()}"),
        )


@dataclass(frozen=True)
class Identity:
    """One synthetic patient and every identifier planted for them."""

    index: int
    person: Person
    sex: str
    birth_date: dt.date
    patient_id: str
    other_ids: tuple[str, ...]
    other_name: Person  # maiden name, or a misspelt duplicate registration
    street: str
    town: str
    postcode: str
    phones: tuple[str, ...]
    email: str
    nir: str
    patient_uid_suffix: int

    @property
    def address(self) -> str:
        return f"{self.street}, {self.postcode} {self.town}"

    @property
    def nir_spaced(self) -> str:
        n = self.nir
        return f"{n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:10]} {n[10:13]} {n[13:15]}"

    @property
    def phone_international(self) -> str:
        digits = self.phones[0].replace(" ", "")
        if digits.startswith("0"):
            return "+33 " + " ".join([digits[1]] + [digits[i : i + 2] for i in range(2, 10, 2)])
        return "+44 " + digits[1:]

    def age_at(self, day: dt.date) -> str:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return f"{years:03d}Y"


def make_nir(rng: random.Random, sex: str, birth: dt.date, postcode: str) -> str:
    department = postcode[:2] if postcode[:2].isdigit() else f"{rng.randint(1, 95):02d}"
    if department == "20":  # Corsica uses 2A/2B, which a 15-digit number cannot carry
        department = "21"
    body = (
        ("1" if sex == "M" else "2")
        + f"{birth.year % 100:02d}{birth.month:02d}{department}"
        + f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    )
    return body + f"{nir_key(body):02d}"


def nir_is_valid(nir: str) -> bool:
    return len(nir) == 15 and nir.isdigit() and is_valid_nir(nir)


def _phone(rng: random.Random, prefix: str) -> str:
    pairs = [f"{rng.randint(0, 99):02d}" for _ in range(4)]
    return " ".join([prefix, *pairs])


def _family_names(rng: random.Random, count: int) -> list[tuple[str, bool]]:
    """Distinct family names, each with whether it is French."""
    pool = [(n, True) for n in FRENCH_FAMILY] + [(n, False) for n in ENGLISH_FAMILY]
    rng.shuffle(pool)
    names = pool[:count]
    while len(names) < count:
        first, french = pool[len(names) % len(pool)]
        second, _ = pool[(len(names) * 7 + 3) % len(pool)]
        names.append((f"{first}-{second}", french))
    return names


def make_identities(rng: random.Random, count: int) -> list[Identity]:
    people: list[Identity] = []
    for index, (family, french) in enumerate(_family_names(rng, count)):
        sex = rng.choice("FM")
        if french:
            given = rng.choice(FRENCH_GIVEN_F if sex == "F" else FRENCH_GIVEN_M)
            street, (town, postcode) = rng.choice(STREETS), rng.choice(TOWNS)
            phones = (_phone(rng, rng.choice(("01", "04", "02"))), _phone(rng, "06"))
        else:
            given = rng.choice(ENGLISH_GIVEN_F if sex == "F" else ENGLISH_GIVEN_M)
            street, (town, postcode) = rng.choice(ENGLISH_STREETS), rng.choice(ENGLISH_TOWNS)
            phones = (_phone(rng, "07"), _phone(rng, "01"))
        birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randint(0, 70 * 365))
        number = rng.randint(1, 120)
        person = Person(family, given)
        if sex == "F":
            other_name = Person(MAIDEN_NAMES[index % len(MAIDEN_NAMES)], given)
        else:
            other_name = Person(family[:-1] + family[-2:], given)
        local = strip_accents(f"{given}.{family}").lower().replace(" ", "")
        people.append(
            Identity(
                index=index,
                person=person,
                sex=sex,
                birth_date=birth,
                patient_id=f"{rng.randint(10**9, 10**10 - 1)}",
                other_ids=(
                    f"NIP{rng.randint(10**7, 10**8 - 1)}",
                    f"MRN-{rng.randint(10**5, 10**6 - 1)}",
                ),
                other_name=other_name,
                street=f"{number} {street}",
                town=town,
                postcode=postcode,
                phones=phones,
                email=f"{local}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}",
                nir=make_nir(rng, sex, birth, postcode),
                patient_uid_suffix=rng.randint(10**6, 10**7 - 1),
            )
        )
    return people


def staff(rng: random.Random, count: int) -> list[Person]:
    picked = rng.sample(STAFF, count)
    return [Person(family.capitalize(), given, "Dr") for family, given in picked]
