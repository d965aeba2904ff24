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
(:func:`name_candidates`): ``verify`` weighs it with the evidence of the whole tree, ``tables``
with the evidence of its column (:func:`lone_name_spans`, how many patients it recurs under).

:func:`person_name_spans` says where the names of that evidence lie (the name words only: a
title or a label stays, so that "Dr [NOM]" still reads), for ``tables`` to replace them.
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

from pacsguard.core import lazyre

NER_MODEL = "fr_core_news_sm"
NER_LABELS = frozenset({"PER", "PERSON"})
MIN_NAME = 3


@dataclass(frozen=True)
class Hit:
    kind: str
    detail: str
    text: str


@dataclass(frozen=True)
class Span:
    """Where a person name lies in a text (``text[start:end]``) and the evidence it rests on."""

    start: int
    end: int
    detail: str


def fold(text: str) -> str:
    """Upper case, accents removed, every run of non-alphanumerics one space."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_ALNUM.split(ascii_text.upper())).strip()


_NON_ALNUM = lazyre.Pattern(r"[^0-9A-Za-z]+")


def fold_letters(text: str) -> str:
    """``fold`` keeping the letters of every script: a name in kanji, kana, Hangul, Greek
    or Cyrillic folds to itself (upper case, marks removed, Hangul syllables recomposed),
    not to nothing. For matching known values, where both sides are folded alike; the
    lexicons, which hold Latin words, are matched through ``fold``. Format characters
    (category Cf: soft hyphen, zero-width space and joiners, byte-order mark) are dropped:
    they split no word as a reader sees it."""
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.split(unicodedata.normalize("NFC", bare).upper())).strip()


_NON_WORD = lazyre.Pattern(r"[\W_]+")


def width(text: str) -> int:
    """``text``'s length in columns: an ideograph, kana or Hangul syllable counts two, as it
    is displayed (a two-ideograph family name tells as much as a three-letter one)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def is_wide(text: str) -> bool:
    """Whether ``text`` holds a character of a script written without spaces between
    words (ideographs, kana, Hangul): a name there is found inside a longer run."""
    return any(unicodedata.east_asian_width(c) in "WF" for c in text)


fold_word = lru_cache(maxsize=1 << 16)(fold)  # the same, remembered: for single words


@cache
def lexicon(name: str) -> frozenset[str]:
    """The words of ``core/lexicon/NAME`` (folded; ``#`` lines are comments)."""
    return lexicon_words(
        resources.files("pacsguard.core").joinpath("lexicon", name).read_text("utf-8")
    )


def lexicon_words(text: str) -> frozenset[str]:
    """The words of a lexicon file's ``text``: one a line, or several (hand-written lists);
    ``#`` lines are comments."""
    while text.startswith("#"):  # the header: where the words come from
        text = text.partition("\n")[2]
    if "#" in text:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    # a lexicon of 125,000 names is a ~20 ms split, where a filter line by line took twice that
    return frozenset(text.split())


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


@lru_cache(maxsize=1 << 16)
def _key(word: str) -> str:
    """A word's lexicon key: folded; a name with an elided particle ("O'Brien", "D'Arcy")
    run together, as the lexicons hold it, when they do ("O BRIEN" is no name)."""
    key = fold_word(word)
    if " " in key and ("'" in word or "’" in word):
        joined = key.replace(" ", "")
        if joined in family_names() or joined in given_names():
            return joined
    return key


@lru_cache(maxsize=1 << 16)  # words recur: a text is many lookups of few words
def _plain_name(folded: str) -> bool:
    """A name word that is no DICOM word, or a name so common that it is a name anyway."""
    return is_name_word(folded) and (
        not _is_technical(folded) or all(p in common_names() for p in folded.split())
    )


@lru_cache(maxsize=1 << 16)
def is_name_word(folded: str) -> bool:
    """A word of the given- or family-name lexicon ("MARIE CLAIRE": each of its parts)."""
    parts = folded.split()
    given, family = given_names(), family_names()
    return bool(parts) and all(len(p) >= MIN_NAME and (p in given or p in family) for p in parts)


def name_parts(value: str) -> tuple[bool, bool]:
    """Whether ``value`` holds a given name, and a family name, of the lexicons: words of three
    letters or more outside the DICOM vocabulary (unless among the most common names)."""
    given = family = False
    for word in WORD_RE.findall(value):
        key = _key(word)
        if not _plain_name(key):
            continue
        given = given or _is_given(key)
        family = family or any(p in family_names() for p in key.split())
    return given, family


@lru_cache(maxsize=1 << 16)
def _is_given(folded: str) -> bool:
    return any(p in given_names() for p in folded.split())


@lru_cache(maxsize=1 << 16)
def _is_technical(folded: str) -> bool:
    return any(p in technical_words() for p in folded.split())


# Titles: written with their capital ("Dr", "Mme") or, when unambiguous, in capitals
# ("MADAME", "DR."); bare "MR" and "DR" are modalities, not titles.
_TITLES = (
    r"M\.|Mr\.?|Mrs\.?|Ms\.?|Mme\.?|Mlle\.?|Dr\.?|Pr\.?|Prof\.?|Docteur|Professeur|Madame"
    r"|Monsieur|Mademoiselle|Doctor|Miss|MR\.|MRS\.?|MME\.?|MLLE\.?|DR\.|PR\.|PROF\."
    r"|DOCTEUR|PROFESSEUR|MADAME|MONSIEUR|MADEMOISELLE|DOCTOR"
)
TITLE_RE = lazyre.Pattern(rf"(?<![\w.])(?:{_TITLES})\s+([A-ZÀ-ÝĀ-ɏ][A-Za-zÀ-ɏ'’\-]+)")
LABEL_RE = lazyre.Pattern(
    r"(?<!\w)(?:(?i:(nom(?: de naissance| d'usage)?|pr[ée]nom|name|surname|first name|last name"
    r"|patient))|(?i:n[ée]e? le|born|dob|ddn|date de naissance))\s*:\s*([A-Za-zÀ-ɏ0-9][\w'’\-/.]*)"
)
PN_SHAPE_RE = lazyre.Pattern(r"(?<![\w^])[A-Za-zÀ-ɏ'’\-]{2,}\^[A-Za-zÀ-ɏ'’\-]{2,}")
# Words of letters only: a run of letters inside "PGFT7ZW3" or "[ADDR]_MEC" is no name.
# Latin letters with their extensions (Ł, Ś, Ő: Latin Extended-A and -B) are letters too.
WORD_RE = lazyre.Pattern(r"(?<![\w])[A-Za-zÀ-ɏ'’\-]+(?![\w])")
_LINKS = frozenset({"LE", "LA", "LES", "DE", "DU", "DES", "ET", "AND", "THE", "OF", "ST", "STE"})


@lru_cache(maxsize=1 << 16)
def _capitalised(word: str) -> bool:
    """Title case or capitals: how names are written ("Dupont", "DUPONT", "Marie-Claire")."""
    parts = [p for p in re.split(r"[-'’]", word) if p]
    return len(word) >= 2 and all(
        (p[0].isupper() and (p[1:].islower() or p.isupper() or len(p) == 1)) or _MC.fullmatch(p)
        for p in parts
    )


_MC = lazyre.Pattern(r"(?:Mc|Mac)[A-Z][a-z]+")  # "McDonald", "MacArthur": capitalised twice


def _name_pairs(words: list[re.Match[str]]) -> list[tuple[Hit, list[tuple[int, int]]]]:
    found: list[tuple[Hit, list[tuple[int, int]]]] = []
    texts = [w.group(0) for w in words]
    capitalised = [_capitalised(t) for t in texts]
    for i in range(len(words) - 1):
        if not (capitalised[i] and capitalised[i + 1]):
            continue
        a, b = _key(texts[i]), _key(texts[i + 1])
        if a in _LINKS or b in _LINKS:
            continue
        if (
            (_is_given(a) or _is_given(b))
            and _plain_name(a)
            and _plain_name(b)
            and not (_is_technical(a) and _is_technical(b))
        ):
            hit = Hit("person-name", "given and family name", f"{texts[i]} {texts[i + 1]}")
            found.append((hit, _pair_words(words[i], words[i + 1])))
    return found


_TITLE_WORDS = frozenset(fold(t) for t in _TITLES.replace("\\.", "").replace("?", "").split("|"))


def _pair_words(first: re.Match[str], second: re.Match[str]) -> list[tuple[int, int]]:
    """Where a pair's names lie: only words side by side ("Dupont, Jean" in a list may be
    two people's), and never a title that the lexicons also hold ("Mme", "Miss")."""
    if first.string[first.end() : second.start()].strip():
        return []
    return [w.span() for w in (first, second) if fold_word(w.group(0)) not in _TITLE_WORDS]


@lru_cache(maxsize=1 << 16)
def _is_candidate(word: str) -> bool:
    return (
        _capitalised(word)
        and not (word.isupper() and len(word) < 4)
        and not _is_technical(key := _key(word))
        and is_name_word(key)
    )


def name_candidates(text: str) -> list[str]:
    """Capitalised lexicon names outside the DICOM vocabulary: doubt, not evidence. Words in
    capitals shorter than four letters are acronyms more often than names ("HFS", "CT")."""
    return [w for w in WORD_RE.findall(text) if _is_candidate(w)]


# The particles of surnames ("Le Gall", "De La Fontaine", "Van der Berg", "Di Stefano"): after
# a title or a label, one of them followed by a capitalised name is part of the name.
_PARTICLES = frozenset(
    {"LE", "LA", "DE", "DU", "DES", "VAN", "VON", "DER", "DEN", "TER", "DI", "DA", "DEL",
     "DELLA", "DOS", "DAS", "ST", "STE", "SAINT", "SAINTE", "MC", "MAC", "BEN", "IBN", "AL",
     "EL"}
)  # fmt: skip


def _following_names(text: str, end: int, limit: int = 2) -> int:
    """``end`` moved over the names that follow it ("Dr Jean" + " Kowalczyk", "Nom : DUPONT"
    + " Jean", "Dr Le" + " Gall", "Dr Van" + " der Berg"): capitalised words after a space,
    none a DICOM word or a link word, and the surname particles that lead to one."""
    names = 0
    while names < limit:
        match = _next_word(text, end)
        if match is None:
            break
        word, key = match.group(0), _key(match.group(0))
        if key in _PARTICLES:
            after = _next_word(text, match.end())
            if after is not None and _continues_name(after.group(0)):
                end = match.end()  # the particle; the name after it on the next turn
                continue
        if key in _LINKS or not _continues_name(word):
            break
        end, names = match.end(), names + 1
    return end


def _next_word(text: str, end: int) -> re.Match[str] | None:
    return WORD_RE.match(text, end + 1) if text[end : end + 1] == " " else None


def _continues_name(word: str) -> bool:
    key = _key(word)
    return _capitalised(word) and not (_is_technical(key) and not _plain_name(key))


def _evidence(text: str, ner: bool) -> list[tuple[Hit, list[tuple[int, int]]]]:
    """Each hit of the module's evidence, with where its name words lie."""
    found: list[tuple[Hit, list[tuple[int, int]]]] = []
    # a title's or a label's hit holds the whole name that follows it: its text is what the
    # cleaning redacts ("Dr Le" alone left "Gall")
    for m in TITLE_RE.finditer(text):
        if _plain_name(key := fold(m.group(1))) or key not in technical_words():
            end = _following_names(text, m.end(1))
            found.append((Hit("person-name", "title", text[m.start() : end]), [(m.start(1), end)]))
    for m in LABEL_RE.finditer(text):
        if (m.group(1) or "").lower() == "patient" and m.group(2)[:1].islower():
            continue  # "Patient: head first supine" (a position), not "Patient: Dupont"
        end = _following_names(text, m.end(2)) if m.group(1) else m.end()
        value = [(m.start(2), end)] if m.group(1) else []
        found.append((Hit("person-name", "label", text[m.start() : end]), value))
    for m in PN_SHAPE_RE.finditer(text):
        found.append((Hit("person-name", "DICOM name form", m.group(0)), [m.span()]))
    words = list(WORD_RE.finditer(text))
    found += _name_pairs(words)
    if ner and not found and _ner_doubt([w.group(0) for w in words]):
        candidates = tuple(w.group(0) for w in words if _is_candidate(w.group(0)))
        for entity, start, end in _ner_names(text, candidates):
            found.append((Hit("person-name", "named entity", entity), [(start, end)]))
    return found


def find_person_names(text: str, *, ner: bool = False) -> list[Hit]:
    """Person names in ``text`` that rest on evidence (see the module's docstring)."""
    return [hit for hit, _ in _evidence(text, ner)]


_STRENGTH = ("title", "label", "DICOM name form", "given and family name", "named entity")


def person_name_spans(text: str, *, ner: bool = False) -> list[Span]:
    """Where the names of :func:`find_person_names` lie, sorted, names a space apart merged:
    the name words only (a title or a label stays; a date after a birth label is no name)."""
    spans = sorted(
        (start, end, hit.detail) for hit, where in _evidence(text, ner) for start, end in where
    )
    merged: list[Span] = []
    for start, end, detail in spans:
        if merged and not text[merged[-1].end : start].strip():  # touching, or a space apart
            last = merged[-1]
            strongest = min(last.detail, detail, key=_STRENGTH.index)
            merged[-1] = Span(last.start, max(last.end, end), strongest)
        else:
            merged.append(Span(start, end, detail))
    return merged


# Eponyms: a name after "maladie de", "syndrome de" (or before "disease") names a disease.
_EPONYM_HEADS = frozenset({
    "maladie", "syndrome", "signe", "test", "score", "manœuvre", "manoeuvre", "classification",
    "triade", "réflexe", "reflexe", "sonde", "lymphome", "sarcome", "tumeur", "disease", "sign",
})  # fmt: skip
_EPONYM_AFTER = lazyre.Pattern(r"(?:['’]s)?\s+(?i:disease|syndrome|sign)\b")


def _eponym(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 40) : start].lower().split()
    if before and before[-1] == "de":
        before.pop()
    return bool(before and before[-1] in _EPONYM_HEADS) or bool(_EPONYM_AFTER.match(text, end))


def lone_name_spans(text: str) -> list[Span]:
    """The candidates of :func:`name_candidates` with where they lie, less eponyms ("maladie
    de Wilson", "Crohn's disease"): the words a caller weighs with evidence of its own."""
    spans = []
    for m in WORD_RE.finditer(text):
        if not _is_candidate(m.group(0)) or fold_word(m.group(0)) in _TITLE_WORDS:
            continue
        if _eponym(text, m.start(), m.end()):
            continue
        spans.append(Span(m.start(), m.end(), "lexicon name only"))
    return spans


def _ner_doubt(words: list[str]) -> bool:
    """A given name beside a capitalised word the lexicons lack: what NER may settle."""
    for i, word in enumerate(words):
        key = fold_word(word)
        if not (_capitalised(word) and _is_given(key) and _plain_name(key)):
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(words) and _capitalised(words[j]):
                other = fold_word(words[j])
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
def _ner_names(text: str, candidates: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Persons the model sees that hold a given name of the lexicons and another capitalised
    word the lexicons lack ("Jean Kowalczykowski"); a lone word is never enough. Each as
    (text, start, end)."""
    doc = ner_pipeline()(text)
    given = {key for c in candidates if _is_given(key := fold(c))}
    found: list[tuple[str, int, int]] = []
    for ent in doc.ents:
        words = WORD_RE.findall(ent.text)
        if ent.label_ not in NER_LABELS or len(words) < 2 or not all(map(_capitalised, words)):
            continue
        if given & {fold(w) for w in words}:
            found.append((ent.text, ent.start_char, ent.end_char))
    return found
