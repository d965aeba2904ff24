"""Classify a column by its header (French and English names and abbreviations)."""

from __future__ import annotations

import re
import unicodedata

_STOPWORDS = frozenset({"de", "du", "des", "la", "le", "les", "d", "l", "of", "the", "a"})
_NUMBER_WORDS = frozenset({"numero", "num", "no", "nr", "nro", "number", "nb", "n"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def _singular(token: str) -> str:
    return token[:-1] if len(token) > 3 and token.endswith("s") else token


def tokens(header: str) -> tuple[str, ...]:
    """Header words: accents, case, punctuation, stop words and plurals gone; n° -> n."""
    text = unicodedata.normalize("NFKD", _CAMEL.sub(" ", header))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words = [w for w in _NON_ALNUM.split(text) if w and w not in _STOPWORDS]
    return tuple("n" if w in _NUMBER_WORDS else _singular(w) for w in words)


# (kind, phrases); the first kind with a phrase found in the header wins.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("email", ("mail", "email", "e mail", "courriel", "adresse electronique")),
    ("birth-name", ("nom naissance", "nom jeune fille", "maiden", "birth name",
                    "nom patronymique", "maiden name")),
    ("city", ("lieu naissance", "birth place", "birthplace", "place birth")),
    ("birth-date", ("ddn", "date naissance", "dob", "birth date", "birthdate", "date birth",
                    "naissance", "ne le", "nee le")),
    ("ins", ("matricule ins", "ins c", "insc")),
    ("nir", ("nir", "secu", "securite sociale", "ssn", "nss", "social security", "n ss",
             "insee", "n sec")),
    ("ins", ("ins", "identite nationale sante", "identifiant national sante")),
    ("accession", ("accession", "n examen", "id examen", "n exam", "exam id", "n acte")),
    ("stay-id", ("nda", "iep", "n sejour", "id sejour", "sejour id", "identifiant sejour",
                 "n venue", "visit id", "visit n", "encounter", "stay id", "n admission",
                 "admission id", "n hospitalisation")),
    ("patient-id", ("ipp", "patient id", "id patient", "n patient", "identifiant patient",
                    "mrn", "nip", "patientid", "pid", "dossier patient", "n dossier")),
    ("identifier", ("rpps", "adeli", "passport", "passeport", "n cni", "permis", "iban",
                    "n carte")),
    ("staff-name", ("medecin", "prescripteur", "docteur", "physician", "doctor",
                    "radiologue", "referent", "praticien", "redacteur", "author", "auteur",
                    "operateur", "interne", "infirmier")),
    ("first-name", ("prenom", "first name", "firstname", "given name", "forename")),
    ("last-name", ("nom", "last name", "lastname", "surname", "family name", "nom usuel",
                   "nom marital")),
    ("person-name", ("name", "patient name", "full name", "identite")),
    ("phone", ("tel", "telephone", "portable", "mobile", "phone", "fax", "gsm", "telephon")),
    ("postcode", ("cp", "code postal", "postal code", "postcode", "zip", "zipcode",
                  "code post")),
    ("address", ("adresse", "address", "adr", "rue", "voie", "street", "domicile", "addr",
                 "lieu dit", "residence")),
    ("city", ("ville", "commune", "city", "town", "localite")),
    ("age", ("age",)),
    ("sex", ("sexe", "sex", "gender", "genre")),
    ("free-text", ("commentaire", "comment", "note", "observation", "compte rendu", "cr",
                   "texte", "text", "remarque", "motif", "conclusion", "antecedent",
                   "histoire", "description", "resume", "synthese", "indication", "report",
                   "narrative", "anamnese", "courrier", "memo", "free text")),
    ("date", ("date", "dt", "deces", "dod", "timestamp", "datetime", "entree", "sortie",
              "jour")),
    ("identifier", ("id", "identifiant", "identifier", "ref", "reference", "code barre")),
)  # fmt: skip

_COMPILED = tuple((kind, tuple(tokens(p) for p in phrases)) for kind, phrases in _RULES)


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    width = len(phrase)
    return any(words[i : i + width] == phrase for i in range(len(words) - width + 1))


def classify_header(header: str) -> str | None:
    """The kind a header names, or None when it names none that we know."""
    words = tokens(header)
    for kind, phrases in _COMPILED:
        if any(_contains(words, phrase) for phrase in phrases):
            return kind
    return None
