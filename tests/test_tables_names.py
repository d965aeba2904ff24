"""Person names in tables, measured: free-text scrubbing on a corpus of notes with an answer key
(the floors below are those measured, see docs/tables.md), and column detection that tells a
town from a surname by the patients its values recur under."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacsguard.core.keys import ProjectKey
from pacsguard.core.names import family_names, fold
from pacsguard.tables import deidentify_table, inspect_table, parse_policy
from pacsguard.tables.detect import classify_values
from pacsguard.tables.evidence import folded
from pacsguard.tables.scrub import replace_names
from pacsguard.tables.synth import NameScore, make_note_corpus, score_names

KEY = ProjectKey(bytes(range(1, 33)))
POLICY = {
    "version": 1,
    "patient_id_column": "IPP",
    "columns": {
        "IPP": {"action": "pseudonymise-patient-id"},
        "NOM": "drop",
        "Prénom": "drop",
        "Ville": {"action": "drop", "kind": "city"},
        "Site": "keep",
        "Note": {"action": "scrub-text", "known_values_from": ["IPP", "NOM", "Prénom", "Ville"]},
    },
}
# Big French towns: 30 of these 66 are names of the lexicons too (Paris, Lyon, Nancy, Tours…).
TOWNS = (
    "Paris Marseille Lyon Toulouse Nice Nantes Montpellier Strasbourg Bordeaux Lille Rennes "
    "Reims Toulon Grenoble Dijon Angers Nîmes Villeurbanne Clermont-Ferrand Le Mans "
    "Aix-en-Provence Brest Tours Amiens Limoges Annecy Perpignan Boulogne-Billancourt Metz "
    "Besançon Orléans Rouen Mulhouse Caen Nancy Argenteuil Montreuil Roubaix Tourcoing Avignon "
    "Poitiers Versailles Pau Calais Cannes Colmar Valence Vannes Quimper Bayonne Lorient "
    "Chartres Niort Troyes Cherbourg Béziers Ajaccio Bastia Laval Belfort Vienne Orange Lens "
    "Sens Agen Royan"
).replace("Le Mans", "Le-Mans")


def _scrub_corpus(tmp_path: Path, patients: int, rows: int, seed: int) -> NameScore:
    frame, notes = make_note_corpus(patients, rows, seed)
    source = tmp_path / "notes.csv"
    frame.write_csv(source, separator=";")
    out = tmp_path / "out"
    deidentify_table([source], out, key=KEY, policy=parse_policy(POLICY), today=dt.date(2025, 1, 1))
    result = pl.read_csv(out / "notes.csv", separator=";", infer_schema=False)
    return score_names(notes, result["Note"].to_list())


def test_names_in_notes_of_many_patients(tmp_path: Path) -> None:
    score = _scrub_corpus(tmp_path, patients=400, rows=4000, seed=0)
    assert score.recall("go:row") == 1.0  # the row's own values: always
    assert score.recall("go:titled") >= 0.99
    assert score.recall("go:pair") >= 0.95
    assert score.precision >= 0.97
    for kept in ("stay:site", "stay:eponym", "stay:drug", "stay:word"):
        assert score.kept(kept) >= 0.99, kept
    # hospitals named after people ("Henri Mondor") are a given and a family name: the cost
    assert score.kept("stay:hospital") >= 0.7
    # a neighbour's given name shared by many patients' notes is common evidence, not a name:
    # what is measured, not a goal (docs/tables.md)
    assert score.recall("go:lone") <= 0.2


def test_lone_names_of_one_patient_go(tmp_path: Path) -> None:
    score = _scrub_corpus(tmp_path, patients=24, rows=2400, seed=1)
    assert score.recall("go:row") == 1.0
    assert score.recall("go:lone") >= 0.85
    assert score.name_recall >= 0.95
    assert score.precision >= 0.97
    assert score.kept("stay:site") >= 0.99 and score.kept("stay:eponym") >= 0.99


def test_without_evidence_lone_names_go_fail_closed(tmp_path: Path) -> None:
    score = _scrub_corpus(tmp_path, patients=2, rows=300, seed=1)
    assert score.name_recall == 1.0
    assert score.kept("stay:site") < 0.5  # two patients cannot show a town is common


_WORD = st.text(alphabet="abcdefghéèàô-'[]NOMVILE ", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(_WORD, max_size=5),
    after=st.lists(_WORD, max_size=5),
    name=st.sampled_from(["Lefèvre", "Delaunay-Briard", "N'Diaye", "Ève", "Kowalczyk", "Martin"]),
    spelling=st.sampled_from([str.upper, str.lower, str.title, str.strip]),
    recurring=st.frozensets(st.sampled_from(["MARTIN", "LEFEVRE", "EVE", "KOWALCZYK"])),
)
def test_the_rows_own_name_never_survives(
    before: list[str],
    after: list[str],
    name: str,
    spelling: Callable[[str], str],
    recurring: frozenset[str],
) -> None:
    text = " ".join([*before, spelling(name), *after])
    markers = {name.lower().replace("è", "e").replace("È", "e"): "[NOM]"}
    out = replace_names(text, recurring, markers)
    words = out.lower().replace("è", "e").split()
    assert markers.keys().isdisjoint(words), out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20))
def test_column_evidence_folds_words_as_the_detector_does(words: list[str]) -> None:
    # a word the two folds disagree on would never be found common: removed, not leaked
    keys = pl.select(folded(pl.Series(words, dtype=pl.String))).to_series().to_list()
    latin = [i for i, w in enumerate(words) if all(c < "\u0250" for c in w)]
    assert [keys[i] for i in latin] == [fold(words[i]) for i in latin]


def _column_table(patients: int, rows: int, seed: int = 0) -> pl.DataFrame:
    """Opaque headers: values alone must tell what each column holds."""
    rng = random.Random(seed)
    towns = TOWNS.split()
    surnames = rng.sample(sorted(family_names()), patients)  # most patients' names differ
    people = [
        (str(10**9 + i), surnames[i], rng.choice(towns), rng.choice(["Jean", "Marie", "Léa"]))
        for i in range(patients)
    ]
    picks = [rng.choice(people) for _ in range(rows)]
    physicians = ["Dr Moreau", "Dr Vasseur", "Pr Bertrand", "Dr Fletcher"]
    return pl.DataFrame(
        {
            "IPP": [p[0] for p in picks],
            "Champ A": [p[1] for p in picks],
            "Champ B": [p[2] for p in picks],
            "Champ C": [rng.choice(physicians) for _ in picks],
            "Champ D": [p[3] for p in picks],
        }
    )


def test_a_town_column_is_no_name_column() -> None:
    frame = _column_table(300, 3000)
    patients = frame["IPP"]
    kinds = {c: classify_values(frame[c], None, patients).kind for c in frame.columns[1:]}
    assert kinds == {
        "Champ A": "last-name",
        "Champ B": "city",
        "Champ C": "staff-name",
        # nearly every common given name is a family name of the lexicons too, and given
        # names recur: values alone cannot tell them from towns (the header does); dropped
        "Champ D": "city",
    }
    # without patient IDs the lexicons alone cannot tell a town from a surname: fail closed
    assert classify_values(frame["Champ B"]).kind == "last-name"


@pytest.mark.parametrize("patients", [300, 2000])
def test_inspect_weighs_columns_by_their_patients(tmp_path: Path, patients: int) -> None:
    source = tmp_path / "export.csv"
    _column_table(patients, 5 * patients, seed=patients).write_csv(source, separator=";")
    found = {c.name: c for c in inspect_table(source, today=dt.date(2025, 1, 1)).columns}
    assert found["Champ B"].kind == "city"
    assert found["Champ B"].action == "drop"
    assert "several patients" in found["Champ B"].note
    assert found["Champ A"].kind == "last-name"
    assert found["Champ C"].kind == "staff-name"
