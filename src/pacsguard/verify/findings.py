"""What the verifier reports: findings (file, location, kind) and the report that gathers them.

A finding keeps the offending value so that an operator who asks for it (``--show-phi``)
can see it; every rendering leaves it out unless told otherwise, and ``repr`` never shows it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

IDENTIFIER = "identifier"  # fails the run: exit 1, and `pack` refuses the tree
REVIEW = "review"  # reported with its reason; fails only under --strict
CLASSES = (IDENTIFIER, REVIEW)


@dataclass(frozen=True)
class KindRule:
    meaning: str
    default_class: str
    fix: str


@cache
def kind_rules() -> dict[str, KindRule]:
    """``verify/kinds.toml``: each kind's meaning, class and the option or rule that removes it."""
    text = resources.files("pacsguard.verify").joinpath("kinds.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    rules = {k: KindRule(v["meaning"], v["class"], v["fix"]) for k, v in doc.items()}
    bad = sorted(k for k, r in rules.items() if r.default_class not in CLASSES)
    if bad:
        raise ValueError(f"kinds.toml: unknown class for {', '.join(bad)}")
    return rules


# Kinds of residual identifiers, with a short human description.
KINDS: dict[str, str] = {kind: rule.meaning for kind, rule in kind_rules().items()}


@dataclass(frozen=True)
class Finding:
    """One residual identifier (or text to review): where it is, what kind, which class, why.

    ``detail`` names the sub-kind (``patient-name``, ``birth-date``…) and carries no value;
    ``reason`` says in words what the finding rests on (evidence of the tree included), never
    quoting the value. ``klass`` overrides the kind's class (``kinds.toml``) on evidence.
    ``patient``, ``study``, ``series``: the pseudonymous group the file belongs to.
    """

    file: str
    location: str
    kind: str
    detail: str = ""
    value: str = field(default="", repr=False, compare=False)
    klass: str = ""
    reason: str = ""
    patient: str = ""
    study: str = ""
    series: str = ""

    @property
    def finding_class(self) -> str:
        if self.klass:
            return self.klass
        rule = kind_rules().get(self.kind)
        return rule.default_class if rule is not None else IDENTIFIER  # unknown: fail closed

    @property
    def fix(self) -> str:
        rule = kind_rules().get(self.kind)
        return rule.fix if rule is not None else ""

    @property
    def why(self) -> str:
        if self.reason:
            return self.reason
        rule = kind_rules().get(self.kind)
        meaning = rule.meaning if rule is not None else self.kind
        return meaning + (f" ({self.detail})" if self.detail else "")

    def to_dict(self, *, show_phi: bool = False) -> dict[str, str]:
        out = {
            "file": self.file,
            "location": self.location,
            "kind": self.kind,
            "class": self.finding_class,
            "reason": self.why,
            "detail": self.detail,
            "fix": self.fix,
            "patient": self.patient,
            "study": self.study,
            "series": self.series,
        }
        if show_phi:
            out["value"] = self.value
        return out

    def describe(self, *, show_phi: bool = False) -> str:
        what = self.kind + (f" ({self.detail})" if self.detail else "")
        text = f"{self.finding_class}: {self.file}: {self.location}: {what}"
        if self.reason:
            text += f" — {self.reason}"
        if show_phi:
            text += f": {self.value!r}"
        return text

    def with_file(self, file: str) -> Finding:
        return replace(self, file=file)


@dataclass
class VerifyReport:
    """The outcome of verifying a folder or a file."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    files_checked: int = 0
    files_skipped: int = 0  # not DICOM: read as text, or reviewed (verify/others.py)
    ocr_checked: int = 0  # instances whose pixels were read by OCR
    ocr: bool = True
    mapping_used: bool = False
    strict: bool = False
    patients: int = 0  # distinct patients seen (the evidence of recurrence)
    # (file, frame) -> PNG bytes of the frame, reduced, boxes of burned-in text drawn on it
    thumbnails: dict[tuple[str, int], bytes] = field(default_factory=dict, repr=False)

    @property
    def identifiers(self) -> list[Finding]:
        return [f for f in self.findings if f.finding_class == IDENTIFIER]

    @property
    def reviews(self) -> list[Finding]:
        return [f for f in self.findings if f.finding_class == REVIEW]

    @property
    def failing(self) -> list[Finding]:
        return self.findings if self.strict else self.identifiers

    @property
    def clean(self) -> bool:
        """No identifier finding (and, under ``strict``, no review finding either)."""
        return not self.failing

    def counts_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return dict(sorted(counts.items()))

    def counts_by_class(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {c: {} for c in CLASSES}
        for finding in self.findings:
            per = counts.setdefault(finding.finding_class, {})
            per[finding.kind] = per.get(finding.kind, 0) + 1
        return {c: dict(sorted(v.items())) for c, v in counts.items()}

    def to_dict(self, *, show_phi: bool = False) -> dict[str, Any]:
        return {
            "tool": "pacsguard verify",
            "clean": self.clean,
            "strict": self.strict,
            "files_checked": self.files_checked,
            "files_skipped": self.files_skipped,
            "patients": self.patients,
            "ocr": self.ocr,
            "ocr_checked": self.ocr_checked,
            "mapping_used": self.mapping_used,
            "values_shown": show_phi,
            "counts": self.counts_by_kind(),
            "counts_by_class": self.counts_by_class(),
            "findings": [f.to_dict(show_phi=show_phi) for f in self.findings],
        }
