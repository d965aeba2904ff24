"""Evidence of the whole tree: recurrence under many patients demotes lexicon-only names to
review; a title keeps a name an identifier; the reason says what was weighed."""

from __future__ import annotations

from pacsguard.verify.evidence import TreeEvidence
from pacsguard.verify.findings import Finding


def tree(findings_per_patient: dict[str, list[Finding]]) -> list[Finding]:
    evidence = TreeEvidence()
    everything: list[Finding] = []
    for n, (patient, findings) in enumerate(findings_per_patient.items()):
        key, _, _, _ = evidence.groups(patient, f"2.25.{n}", f"2.25.{n}0")
        evidence.note(key, findings)
        everything += findings
    return evidence.weigh(everything)


def name(value: str, detail: str = "given and family name") -> Finding:
    return Finding("f", "(0008,1030) StudyDescription", "person-name", detail, value)


def test_recurring_lexicon_names_are_reviewed_and_lone_ones_stay() -> None:
    patients = {f"PG{c * 16}": [name("Jean Martin")] for c in "ABCD"}
    patients["PG" + "E" * 16] = [name("Sophie Durand"), name("Dr Moreau", "title")]
    patients["PG" + "F" * 16] = [name("Dr Moreau", "title")]
    patients["PG" + "G" * 16] = [name("Dr Moreau", "title")]
    weighed = tree(patients)
    by_value = {(f.value, f.finding_class) for f in weighed}
    assert ("Jean Martin", "review") in by_value and ("Jean Martin", "identifier") not in by_value
    assert ("Sophie Durand", "identifier") in by_value
    assert ("Dr Moreau", "identifier") in by_value  # a title: a person, however often
    lone = next(f for f in weighed if f.value == "Sophie Durand")
    assert "only in this patient's files (1 of 7)" in lone.reason
    recurring = next(f for f in weighed if f.value == "Jean Martin")
    assert "recurs under 4 of 7 patients" in recurring.reason
    assert [f.finding_class for f in weighed][:4] == ["identifier"] * 4  # identifiers first


def test_non_pseudonymous_groups_are_never_named() -> None:
    evidence = TreeEvidence()
    _, label, study, _ = evidence.groups("123456789", "1.2.3.4", "")
    assert "123456789" not in label and label.startswith("patient 1")
    assert "1.2.3.4" not in study
    assert evidence.groups("PG" + "A" * 16, "2.25.1", "2.25.2")[1] == "PG" + "A" * 16
