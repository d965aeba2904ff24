"""``find_known`` searches with the terms whose first word is in the text, and finds
exactly what one alternation of every term finds (the reference below, the code it
replaced): the same spans, the same kinds, in the same order."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pacsguard.deid import text
from pacsguard.deid.text import MIN_FREE_ID, Hit, KnownValues, find_known


def _reference(value: str, known: KnownValues) -> list[Hit]:
    terms = text._known_pairs(known)  # the same terms: the search is what is compared
    if not terms or not value:
        return []
    parts = []
    for i, (term, _kind) in enumerate(terms):
        bounded = not (term in known.ids and len(term) >= MIN_FREE_ID)
        parts.append(f"(?P<k{i}>{text._term_pattern(term, bounded)})")
    regex = re.compile("|".join(parts))
    return [
        Hit(m.start(), m.end(), terms[int((m.lastgroup or "k0")[1:])][1])
        for m in regex.finditer(text.fold(value))
    ]


_WORDS = ["Dupont", "dupont", "Jean", "JEAN-PIERRE", "Éloïse", "eloise", "12345678",
          "1234", "19600312", "12/03/1960", "Lyon", "rue", "^", " ", ",", "  ", "x", "ß",
          "İ", "7"]  # fmt: skip
_word = st.sampled_from(_WORDS) | st.text(min_size=1, max_size=6)
_term = st.lists(_word, min_size=1, max_size=3).map(" ".join)
_terms = st.frozensets(_term, max_size=5)


@settings(max_examples=400, deadline=None)
@given(
    names=_terms,
    ids=_terms,
    dates=_terms,
    places=_terms,
    words=st.lists(_word | st.sampled_from(["^", " ", "\\", "-", "."]), max_size=14),
)
def test_find_known_is_one_alternation_of_every_term(
    names: frozenset[str],
    ids: frozenset[str],
    dates: frozenset[str],
    places: frozenset[str],
    words: list[str],
) -> None:
    known = KnownValues(names, ids, dates, places)
    value = "".join(words)
    assert find_known(value, known) == _reference(value, known)


def test_a_text_without_the_terms_compiles_nothing() -> None:
    known = KnownValues(
        frozenset({"Dupont^Jean"}), frozenset({"PID998877"}), frozenset(), frozenset()
    )
    text._known_regex.cache_clear()
    assert find_known("CT THORAX ROUTINE", known) == []
    assert text._known_regex.cache_info().currsize == 0
    assert [h.kind for h in find_known("Report for DUPONT JEAN, PID998877", known)] == [
        "NAME",
        "ID",
    ]
