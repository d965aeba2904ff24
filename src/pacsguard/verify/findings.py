"""What the verifier reports: findings (file, location, kind) and the report that gathers them.

A finding keeps the offending value so that an operator who asks for it (``--show-phi``)
can see it; every rendering leaves it out unless told otherwise, and ``repr`` never shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds of residual identifiers, with a short human description.
KINDS: dict[str, str] = {
    "known-value": "a value known from the source (patient, study or mapping)",
    "person-name": "a person's name",
    "nir": "a French social security number (NIR) with a valid key",
    "ins": "a French national health identifier (INS)",
    "phone": "a telephone number",
    "email": "an e-mail address",
    "street-address": "a street address",
    "postcode-town": "a postcode with a town name",
    "unshifted-date": "a date that was not shifted",
    "date-in-text": "a date written in free text (never shifted)",
    "text-not-allowed": "free text in an attribute outside the allow-list",
    "burned-in-text": "text burned into the pixels",
    "unreadable": "a DICOM file or pixel data the verifier could not read (fail closed)",
}


@dataclass(frozen=True)
class Finding:
    """One residual identifier: where it is and what kind it is.

    ``detail`` names the sub-kind (``patient-name``, ``birth-date``…) and carries no value.
    """

    file: str
    location: str
    kind: str
    detail: str = ""
    value: str = field(default="", repr=False, compare=False)

    def to_dict(self, *, show_phi: bool = False) -> dict[str, str]:
        out = {"file": self.file, "location": self.location, "kind": self.kind}
        if self.detail:
            out["detail"] = self.detail
        if show_phi:
            out["value"] = self.value
        return out

    def describe(self, *, show_phi: bool = False) -> str:
        what = self.kind + (f" ({self.detail})" if self.detail else "")
        text = f"{self.file}: {self.location}: {what}"
        if show_phi:
            text += f": {self.value!r}"
        return text

    def with_file(self, file: str) -> Finding:
        return Finding(file, self.location, self.kind, self.detail, self.value)


@dataclass
class VerifyReport:
    """The outcome of verifying a folder or a file."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    files_checked: int = 0
    files_skipped: int = 0  # not DICOM
    ocr_checked: int = 0  # instances whose pixels were read by OCR
    ocr: bool = True
    mapping_used: bool = False

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self, *, show_phi: bool = False) -> dict[str, Any]:
        return {
            "tool": "pacsguard verify",
            "clean": self.clean,
            "files_checked": self.files_checked,
            "files_skipped": self.files_skipped,
            "ocr": self.ocr,
            "ocr_checked": self.ocr_checked,
            "mapping_used": self.mapping_used,
            "values_shown": show_phi,
            "counts": self.counts_by_kind(),
            "findings": [f.to_dict(show_phi=show_phi) for f in self.findings],
        }
