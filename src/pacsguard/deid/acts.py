"""What each act does to an element's values, and what the final sweep does to a kept value.

The one meaning of de-identification, below the plan (``plan.decide``: which act for which
element): both layers that apply it call these functions on decoded values (``list[str]``)
and differ only in how they read and write elements — the engine on pydicom datasets
(``engine.py``), the byte-level rewriter on raw bytes (``rawpath.py``). A layer never
decides a value itself; the tests hold the two byte-identical on every file both accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pacsguard.core.pseudonym import Pseudonymizer
from pacsguard.deid.actions import DUMMY_BY_VR, fit
from pacsguard.deid.dates import shift_da, shift_dt
from pacsguard.deid.plan import Act
from pacsguard.deid.text import KnownValues, clean_text, contains_known, sweep_text

if TYPE_CHECKING:
    from pacsguard.deid.engine import Transformer

# The values the acts below change as text; an act on any other VR (numbers, bytes) is the
# layer's own encoding matter (a zero of the VR's width, zero bytes of the same length).
CLEANED_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC"})
FORMATTED_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "DS", "IS", "UR"})
TEXT_DUMMIES = {vr: value for vr, value in DUMMY_BY_VR.items() if isinstance(value, str)}


class NotText(Exception):
    """The act changes this VR's value as bytes or numbers, not as text: the layer does it."""


class Uncleanable(Exception):
    """A kept value still holds an identifying value after the sweep: quarantine."""


@dataclass(frozen=True)
class Replacements:
    """The patient's replacements in one file: pseudonymous ID and name, the date offset."""

    key: str
    patient_id: str
    patient_name: str
    offset: int

    @classmethod
    def of(cls, transformer: Transformer, key: str) -> Replacements:
        """An explicit mapping's pseudonyms when the patient has one, else the keyed ones."""
        pseudo = transformer.pseudonymizer
        explicit = transformer.patients.get(key)
        pid = explicit[0] if explicit else pseudo.patient_id(key)
        name = explicit[1] if explicit else pseudo.patient_name(key)
        return cls(key, pid, name, pseudo.date_offset_days(key))


def mapping_rows(
    transformer: Transformer,
    replacements: Replacements,
    *,
    name: str,
    accession: str | None,
    birth: str | None,
    uids: dict[str, str],
) -> list[tuple[str, str, str]]:
    """The re-identification mapping of one file (kind, original, pseudonym)."""
    rows = [
        ("patient-id", replacements.key, replacements.patient_id),
        ("patient-name", name, replacements.patient_name),
    ]
    if accession:
        rows.append(("accession", accession, transformer.pseudonymizer.accession(accession)))
    if birth:
        rows.append(("birth-date", birth, ""))
    options = transformer.rules.options
    if "retain-long-modified-dates" in options:
        rows.append(("date-offset", replacements.key, str(replacements.offset)))
    if "retain-uids" not in options:
        rows.extend(("uid", old, new) for old, new in uids.items())
    return rows


@dataclass
class ActOn:
    """One file's context for the acts: its patient's replacements, the identity known from
    it, the UIDs remapped so far (``touched`` records each lookup, for a layer's memo)."""

    pseudonymizer: Pseudonymizer
    replacements: Replacements
    known: KnownValues
    uids: dict[str, str] = field(default_factory=dict)
    touched: list[tuple[str, str]] | None = None

    def uid(self, original: str) -> str:
        new = self.uids.get(original)
        if new is None:
            new = self.uids[original] = self.pseudonymizer.uid(original)
        if self.touched is not None:
            self.touched.append((original, new))
        return new

    def values(
        self, act: Act, vr: str, values: list[str], *, tag: int, replacement: str | None = None
    ) -> list[str] | None:
        """The element's new values under ``act`` (``[]``: empty); None when the act leaves
        this VR's value as it is. Raises :class:`NotText` for a dummy of a binary or numeric
        VR. Removal, sequences and overlays are structure, not values: the layer's."""
        if act is Act.EMPTY:
            return []
        if act is Act.DUMMY or (act is Act.CLEAN and vr == "PN"):
            if vr in TEXT_DUMMIES:
                return [TEXT_DUMMIES[vr]]
            raise NotText(vr)
        if act is Act.PATIENT_ID:
            return [self.replacements.patient_id]
        if act is Act.PATIENT_NAME:
            return [self.replacements.patient_name]
        if act is Act.REPLACE:
            return [replacement] if replacement else []
        if act is Act.UID or (act is Act.PSEUDONYMISE and vr == "UI"):
            return self._uids(values)
        if act is Act.SHIFT or (act is Act.PSEUDONYMISE and vr in ("DA", "DT")):
            return _shift(values, vr, self.replacements.offset) if vr in ("DA", "DT") else None
        if act is Act.CLEAN:
            if vr not in CLEANED_VRS:
                return None
            return [fit(clean_text(v, self.known), vr) for v in values]
        if act is Act.ACCESSION:
            return [self.pseudonymizer.accession(values[0])] if values else []
        if act is Act.PSEUDONYMISE:
            domain = f"policy-{tag:08x}"
            return [fit(self.pseudonymizer.identifier(domain, v), vr) for v in values]
        return None  # Act.KEEP

    def _uids(self, values: list[str]) -> list[str]:
        out = []
        for value in values:
            original = value.strip("\x00 ")
            if original:
                out.append(self.uid(original))
        return out


def _shift(values: list[str], vr: str, days: int) -> list[str]:
    """Every date shifted by ``days``; a value that is not a date empties the element."""
    fn: Callable[[str, int], str | None] = shift_da if vr == "DA" else shift_dt
    shifted = [fn(v, days) for v in values]
    return [] if any(s is None for s in shifted) else [s for s in shifted if s is not None]


def replace_uids(text: str, uids: dict[str, str]) -> str:
    """``text`` with every remapped UID it quotes replaced by its new UID."""
    if "." not in text or not uids:
        return text
    for old in sorted(uids, key=len, reverse=True):
        if old in text:
            text = text.replace(old, uids[old])
    return text


def swept(vr: str, values: list[str], known: KnownValues, uids: dict[str, str]) -> list[str] | None:
    """A kept element's values after the final sweep: the patient's own identifying values
    replaced by placeholders, remapped UIDs replaced, a formatted value with a hit dropped.
    None when nothing changes. Raises :class:`Uncleanable` when a value still identifies."""
    changed = False
    out: list[str] = []
    for text in values:
        if vr == "UI":
            new = uids.get(text, text)
            changed |= new != text
            out.append(new)
            continue
        cleaned = replace_uids(sweep_text(text, known), uids)
        if cleaned != text:
            changed = True
            if vr in FORMATTED_VRS:
                continue  # a formatted value with a hit is dropped, not rewritten
            cleaned = fit(cleaned, vr)
            if contains_known(cleaned, known):
                raise Uncleanable(vr)
        out.append(cleaned)
    return out if changed else None


def binary_identifies(raw: bytes, known: KnownValues) -> bool:
    """Whether a binary value holds a known identifying value (it cannot be rewritten)."""
    return bool(raw) and contains_known(raw.decode("latin-1"), known)
