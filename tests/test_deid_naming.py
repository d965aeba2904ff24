"""The committer's naming asks the journal for every output's owner at once.

``plan_names`` used to ask ``Journal.owner`` once per output, between its own changes to the
journal (a superseded record forgotten); it now reads every owner in one query first. Held
to the one-at-a-time reading (kept here as the reference) on hypothesis-made journals and
commits: names shared between the journal and the commit and within the commit, the same
input changed since, other inputs with the same or other bytes, quarantined and duplicate
records that own nothing. The comparison is shown to catch a naming broken the plausible
way (the journal's owner asked before this commit's own claims).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacsguard.core.io import InputItem
from pacsguard.core.manifest import Journal, Outcome
from pacsguard.deid.pipeline import ItemResult, Naming, plan_names

NAMES = ["a/1.dcm", "a/2.dcm", "b/1.dcm"]
INPUTS = ["in-1", "in-2", "in-3"]
SHAS = ["s1", "s2"]


def reference(
    results: list[ItemResult], journal: Journal, output: Path, in_flight: dict[str, InputItem]
) -> Naming:
    """``plan_names`` as it was: the journal asked output by output."""
    claimed: dict[str, Outcome] = {}
    naming = Naming()
    for result in results:
        outcome = result.outcome
        if outcome.status != "output" or result.tmp is None or outcome.output is None:
            naming.named.append(result)
            continue
        owner = claimed.get(outcome.output) or journal.owner(outcome.output)
        if owner is not None and owner.input != outcome.input:
            naming.drops.append(result.tmp)
            if owner.sha256 == outcome.sha256:
                details = {"duplicate_of": owner.input}
                dup = replace(outcome, status="duplicate", details=details)
                naming.named.append(ItemResult(dup, result.size))
            else:
                naming.refused.append(in_flight[outcome.fingerprint])
            continue
        if owner is not None and owner.fingerprint != outcome.fingerprint:
            journal.forget([owner.fingerprint])
        naming.moves.append((result.tmp, str(output / outcome.output)))
        claimed[outcome.output] = outcome
        naming.named.append(replace(result, tmp=None))
    return naming


def journal_first(
    results: list[ItemResult], journal: Journal, output: Path, in_flight: dict[str, InputItem]
) -> Naming:
    """A broken naming: the journal's owner preferred to the one this commit claimed."""
    naming = Naming()
    claimed: dict[str, Outcome] = {}
    for result in results:
        outcome = result.outcome
        if outcome.status != "output" or result.tmp is None or outcome.output is None:
            naming.named.append(result)
            continue
        owner = journal.owner(outcome.output) or claimed.get(outcome.output)
        if owner is not None and owner.input != outcome.input:
            naming.drops.append(result.tmp)
            naming.refused.append(in_flight[outcome.fingerprint])
            continue
        naming.moves.append((result.tmp, str(output / outcome.output)))
        claimed[outcome.output] = outcome
        naming.named.append(replace(result, tmp=None))
    return naming


record = st.tuples(
    st.sampled_from(INPUTS),
    st.sampled_from(["output", "quarantine", "duplicate"]),
    st.sampled_from(NAMES),
    st.sampled_from(SHAS),
)
result = st.tuples(
    st.sampled_from(INPUTS),
    st.sampled_from(["output", "output", "quarantine"]),
    st.sampled_from(NAMES),
    st.sampled_from(SHAS),
    st.booleans(),  # written (a temporary), or not
)


def _journal(path: Path, records: list[tuple[str, str, str, str]]) -> Journal:
    journal = Journal(path)
    counter = itertools.count()
    outcomes = [
        Outcome(label, f"old-{next(counter)}", status, output=name, sha256=sha)  # type: ignore[arg-type]
        for label, status, name, sha in records
    ]
    journal.record_many(outcomes)
    return journal


def _commit(
    spec: list[tuple[str, str, str, str, bool]],
) -> tuple[list[ItemResult], dict[str, InputItem]]:
    results, in_flight = [], {}
    for number, (label, status, name, sha, written) in enumerate(spec):
        fingerprint = f"new-{number}"
        outcome = Outcome(label, fingerprint, status, output=name, sha256=sha)  # type: ignore[arg-type]
        tmp = f"/tmp/.tmp-{fingerprint}" if written else None
        results.append(ItemResult(outcome, 1, tmp=tmp))
        in_flight[fingerprint] = InputItem(label, Path(label))
    return results, in_flight


def _same(
    plan: object,
    tmp: Path,
    records: list[tuple[str, str, str, str]],
    spec: list[tuple[str, str, str, str, bool]],
) -> bool:
    """``plan`` against the reference: the same naming, and the same journal after."""
    results, in_flight = _commit(spec)
    out = tmp / "out"
    answers = []
    for number, naming in enumerate((plan, reference)):
        journal = _journal(tmp / f"j{number}.sqlite", records)
        try:
            answers.append((naming(results, journal, out, in_flight), sorted(journal, key=repr)))  # type: ignore[operator]
        finally:
            journal.close()
    for number in range(2):
        for suffix in ("", "-wal", "-shm"):
            (tmp / f"j{number}.sqlite{suffix}").unlink(missing_ok=True)
    return answers[0] == answers[1]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(record, max_size=6), spec=st.lists(result, max_size=8))
def test_owners_asked_at_once_name_as_one_at_a_time(
    tmp_path: Path,
    records: list[tuple[str, str, str, str]],
    spec: list[tuple[str, str, str, str, bool]],
) -> None:
    assert _same(plan_names, tmp_path, records, spec)


def test_the_comparison_catches_a_naming_that_asks_the_journal_first(tmp_path: Path) -> None:
    # in-1 owns a/1.dcm; this commit has in-1 changed since, then in-2 with the same bytes.
    records = [("in-1", "output", "a/1.dcm", "s1")]
    spec = [("in-1", "output", "a/1.dcm", "s2", True), ("in-2", "output", "a/1.dcm", "s2", True)]
    assert _same(plan_names, tmp_path, records, spec)
    assert not _same(journal_first, tmp_path, records, spec)


def test_owners_reads_past_one_query(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        names = [f"x/{n}.dcm" for n in range(1234)]
        journal.record_many(
            [Outcome(f"in-{n}", f"f{n}", "output", output=name) for n, name in enumerate(names)]
        )
        owners = journal.owners([*names, "missing.dcm", names[0]])
        assert len(owners) == len(names)
        assert all(owners[name] == journal.owner(name) for name in names[::97])
    finally:
        journal.close()


@pytest.mark.parametrize("status", ["quarantine", "duplicate"])
def test_a_record_that_is_no_output_owns_nothing(tmp_path: Path, status: str) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        journal.record_many([Outcome("in", "f", status, output="a.dcm")])  # type: ignore[arg-type]
        assert journal.owners(["a.dcm"]) == {} and journal.owner("a.dcm") is None
    finally:
        journal.close()
