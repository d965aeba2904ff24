"""Evidence from the whole tree: how many pseudonymous patients a value recurs under.

A value found under many patients ("Liver", "Field 1", a device model, a technologist's
name in every protocol) is not one patient's identifier; a name-like value found in one
patient's files only is suspicious. Person names that rest on the lexicons alone (a given and
a family name, spaCy's entity, a lone lexicon name) move to *review* when they recur under
``RECUR`` patients or more; names with a title, a label or the DICOM name form stay
identifiers (a staff member's name is identifying too). Every finding whose value was
weighed says so in its reason; review findings are ranked, the least recurring first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pacsguard.core.shapes import fold
from pacsguard.verify.findings import IDENTIFIER, REVIEW, Finding
from pacsguard.verify.policy import is_pseudonym

RECUR = 3  # patients a value must recur under to be nobody's in particular
LEXICON_ONLY = frozenset({"given and family name", "named entity", "lexicon name only"})
WEIGHED_KINDS = frozenset({"person-name", "text-not-allowed", "date-in-text", "postcode-town"})


@dataclass
class TreeEvidence:
    """Patients per value, gathered while the tree is walked (kept in memory only)."""

    patient_labels: dict[str, str] = field(default_factory=dict)  # patient key -> label
    study_labels: dict[str, str] = field(default_factory=dict)
    series_labels: dict[str, str] = field(default_factory=dict)
    patients_of: dict[str, set[str]] = field(default_factory=dict)  # folded value -> keys
    patient_of_finding: list[str] = field(default_factory=list)

    @staticmethod
    def _label(value: str, labels: dict[str, str], what: str) -> str:
        if value not in labels:
            labels[value] = (
                value
                if value and is_pseudonym(value)
                else f"{what} {len(labels) + 1}"
                + ("" if value else f" (no {what} identifier)")
                + (" (not pseudonymous)" if value else "")
            )
        return labels[value]

    def groups(self, patient: str, study: str, series: str) -> tuple[str, str, str, str]:
        """(patient key, patient label, study label, series label) of a file's Patient ID,
        Study and Series Instance UIDs."""
        return (
            patient,
            self._label(patient, self.patient_labels, "patient"),
            self._label(study, self.study_labels, "study"),
            self._label(series, self.series_labels, "series"),
        )

    def note(self, patient_key: str, findings: list[Finding]) -> None:
        for finding in findings:
            if finding.kind in WEIGHED_KINDS and finding.value:
                key = fold(finding.value)
                self.patients_of.setdefault(key, set()).add(patient_key)

    @property
    def patients(self) -> int:
        return len(self.patient_labels)

    def weigh(self, findings: list[Finding]) -> list[Finding]:
        """The findings reclassified and explained by recurrence, ranked for action."""
        total = self.patients
        weighed: list[tuple[int, Finding]] = []
        for finding in findings:
            count = 0
            if finding.kind in WEIGHED_KINDS and finding.value:
                count = len(self.patients_of.get(fold(finding.value), ()))
            weighed.append((count, self._reclassify(finding, count, total)))
        identifiers = [f for _, f in weighed if f.finding_class == IDENTIFIER]
        reviews = sorted(
            ((c, f) for c, f in weighed if f.finding_class == REVIEW),
            key=lambda cf: (cf[0] if cf[0] else total + 1, cf[1].file, cf[1].location),
        )
        return identifiers + [f for _, f in reviews]

    @staticmethod
    def _reclassify(finding: Finding, count: int, total: int) -> Finding:
        if not count:
            return finding
        base = finding.why
        if count >= RECUR:
            note = f"recurs under {count} of {total} patients: not one patient's"
            if finding.kind == "person-name" and finding.detail in LEXICON_ONLY:
                return replace(finding, klass=REVIEW, reason=f"{base}; {note}")
            return replace(finding, reason=f"{base}; {note}")
        if total >= RECUR and count == 1:
            return replace(finding, reason=f"{base}; only in this patient's files (1 of {total})")
        return replace(finding, reason=f"{base}; under {count} of {total} patients")
