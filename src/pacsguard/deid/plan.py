"""Deciding what happens to one element: pure functions of (element, options, policy, IOD).

``decide`` turns a row of PS3.15 Table E.1-1, the chosen options, the policy and the
attribute's Type in the IOD into one :class:`Act`. Combined codes (X/Z, X/D, X/Z/D, Z/D,
X/Z/U*) are resolved by the Type at the top level of a known SOP Class; nested attributes
and unknown SOP Classes take the alternative that keeps the object conformant (the last
one): every alternative removes the value, so none of them leaks, and the conformant one
does not break the file for its recipient.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pydicom.datadict import keyword_for_tag

from pacsguard.deid.policy import Policy, PolicyRule
from pacsguard.deid.profile import (
    ProfileRow,
    ProfileTable,
    load_allow_list,
    load_iod_types,
    load_safe_private,
    load_table,
)


class Act(enum.StrEnum):
    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    UID = "U"
    SHIFT = "shift"
    CLEAN = "C"
    REPLACE = "replace"
    PSEUDONYMISE = "pseudonymise"
    PATIENT_ID = "patient-id"
    PATIENT_NAME = "patient-name"
    ACCESSION = "accession"
    CLEAN_OVERLAY = "clean-overlay"


class Mode(enum.StrEnum):
    """How the items of a sequence are treated, set by the action on the sequence."""

    NORMAL = "normal"
    DUMMY = "dummy"  # D on a sequence: free text inside becomes dummy values
    CLEAN = "clean"  # C on a sequence: free text inside is cleaned


@dataclass(frozen=True)
class Decision:
    act: Act
    mode: Mode = Mode.NORMAL  # for sequences: how to treat their items
    value: str | None = None
    source: str = "profile"  # profile | option | policy | strict | sweep
    # X/Z/U* resolved to X or Z: U (keep, UIDs remapped) is preferred when the sequence
    # holds references alone (``references_only``), so that references survive.
    references: bool = False


# What a reference item may hold for its sequence to count as "references alone".
REFERENCE_KEYWORDS = frozenset(
    {
        "ReferencedSOPClassUID",
        "ReferencedSOPInstanceUID",
        "ReferencedFrameNumber",
        "ReferencedSegmentNumber",
        "ReferencedFrameOfReferenceUID",
        "SpatialLocationsPreserved",
        "PurposeOfReferenceCodeSequence",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "ReferencedSeriesSequence",
        "ReferencedInstanceSequence",
        "ReferencedImageSequence",
    }
)


def reference_tags() -> frozenset[int]:
    return _REFERENCE_TAGS


def _tags(keywords: frozenset[str]) -> frozenset[int]:
    from pydicom.datadict import tag_for_keyword

    return frozenset(t for t in (tag_for_keyword(k) for k in keywords) if t is not None)


TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"})
DATE_VRS = frozenset({"DA", "DT"})
# Coded concepts and structure stay when free text around them is replaced.
CODED = frozenset(
    {
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "URNCodeValue",
        "ContextIdentifier",
        "ContextUID",
        "MappingResource",
        "MappingResourceUID",
        "MappingResourceName",
        "ContextGroupVersion",
        "ContextGroupExtensionFlag",
        "TemplateIdentifier",
        "ValueType",
        "RelationshipType",
        "ContinuityOfContent",
        "GraphicType",
        "Units",
    }
)
# UI attributes that name classes, syntaxes or registries, never instances.
CLASS_UIDS = frozenset(
    {
        "SOPClassUID",
        "ReferencedSOPClassUID",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "ReferencedSOPClassUIDInFile",
        "ReferencedTransferSyntaxUIDInFile",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "SOPClassesInStudy",
        "CodingSchemeUID",
        "ContextUID",
        "MappingResourceUID",
        "PrivateInformationCreatorUID",
        "ReferencedColorPaletteInstanceUID",
        "AffectedSOPClassUID",
        "RequestedSOPClassUID",
        "SOPClassesSupported",
        "RTReferencedSOPClassUID",
    }
)
PSEUDONYM_ACTS = {
    0x00100020: Act.PATIENT_ID,
    0x00100010: Act.PATIENT_NAME,
    0x00080050: Act.ACCESSION,
}
OPTION_C_ACTS = {
    "retain-long-modified-dates": Act.SHIFT,
    "clean-descriptors": Act.CLEAN,
    "clean-structured-content": Act.CLEAN,
    "clean-graphics": Act.CLEAN,
}


@dataclass(frozen=True)
class Rules:
    """Everything ``decide`` needs besides the element itself."""

    options: frozenset[str] = frozenset()
    policy: Policy = field(default_factory=Policy)
    strict: bool = False
    table: ProfileTable = field(default_factory=load_table)
    safe_private: frozenset[tuple[str, int, int]] = field(default_factory=load_safe_private)
    allow_list: frozenset[str] = field(default_factory=load_allow_list)

    def iod_types(self, sop_class_uid: str | None) -> dict[int, str] | None:
        if not sop_class_uid:
            return None
        return load_iod_types().get(str(sop_class_uid).strip())


def row_code(row: ProfileRow, options: frozenset[str]) -> tuple[str, str | None]:
    """The code in force for ``row``, and the option that set it (None: basic profile).

    Where two chosen options disagree (Retain Device Identity K and Modified Dates C on
    calibration dates), C wins: cleaning is the safer reading.
    """
    chosen = [(opt, code) for opt, code in row.options.items() if opt in options]
    for opt, code in chosen:
        if code == "C":
            return "C", opt
    if chosen:
        return chosen[0][1], chosen[0][0]
    return row.basic, None


def resolve_combined(code: str, tag: int, types: dict[int, str] | None, depth: int) -> str:
    """X/Z/D and friends -> one of X, Z, D or U, by the attribute's Type in the IOD."""
    if "/" not in code:
        return code
    alternatives = code.replace("*", "").split("/")
    if depth > 0 or types is None:
        return alternatives[-1]
    kind = types.get(tag)
    if kind is None:  # not part of this IOD at all
        return alternatives[0]
    if kind.startswith("1"):
        wanted = "U" if "U" in alternatives else "D"
    elif kind.startswith("2"):
        wanted = "Z"
    else:
        wanted = "X"
    if wanted in alternatives:
        return wanted
    # e.g. Type 2 under Z/D-less codes: fall to the next stronger alternative
    order = ["X", "Z", "D", "U"]
    later = [a for a in alternatives if order.index(a) > order.index(wanted)]
    return later[0] if later else alternatives[-1]


def _from_policy(rule: PolicyRule, vr: str) -> Decision:
    acts = {
        "keep": Act.KEEP,
        "remove": Act.REMOVE,
        "empty": Act.EMPTY,
        "dummy": Act.DUMMY,
        "replace": Act.REPLACE,
        "pseudonymise": Act.PSEUDONYMISE,
        "shift": Act.SHIFT,
        "clean": Act.CLEAN,
        "uid": Act.UID,
    }
    act = acts[rule.action]
    mode = Mode.CLEAN if act is Act.CLEAN and vr == "SQ" else Mode.NORMAL
    return Decision(act, mode, rule.value, "policy")


def _code_to_decision(code: str, option: str | None, tag: int, vr: str) -> Decision:
    source = "option" if option else "profile"
    if code == "X":
        return Decision(Act.REMOVE, source=source)
    if code == "Z":
        return Decision(Act.EMPTY, source=source)
    if code == "D":
        if vr == "SQ":
            return Decision(Act.KEEP, Mode.DUMMY, source=source)
        if vr == "UI":  # a keyed UID is the consistent dummy for a UID
            return Decision(Act.UID, source=source)
        return Decision(Act.DUMMY, source=source)
    if code == "U":
        return Decision(Act.KEEP if vr == "SQ" else Act.UID, source=source)
    if code == "K":
        return Decision(Act.KEEP, source=source)
    if code == "C":
        act = OPTION_C_ACTS.get(option or "", Act.CLEAN)
        if vr == "SQ":
            return Decision(Act.KEEP, Mode.CLEAN, source=source)
        if act is Act.SHIFT:
            return Decision(Act.SHIFT if vr in DATE_VRS else Act.KEEP, source=source)
        if option == "clean-graphics" and (tag >> 16) & 0xFF00 == 0x6000 and tag & 0xFFFF == 0x3000:
            return Decision(Act.CLEAN_OVERLAY, source=source)
        if vr in TEXT_VRS:
            return Decision(Act.CLEAN, source=source)
        return Decision(Act.KEEP, source=source)
    raise ValueError(f"unknown action code {code!r}")


def decide_private(
    rules: Rules, tag: int, vr: str, creator: str | None, mode: Mode = Mode.NORMAL
) -> Decision:
    """A private data element (odd group, element >= 0x1000)."""
    group, low = tag >> 16, tag & 0xFF
    if creator is not None:
        rule = rules.policy.for_private(creator, group, low)
        if rule is not None:
            return _from_policy(rule, vr)
        if "retain-safe-private" in rules.options and (creator.strip(), group, low) in (
            rules.safe_private
        ):
            return Decision(Act.KEEP, mode, source="option")
    return Decision(Act.REMOVE)


def decide(
    rules: Rules,
    tag: int,
    vr: str,
    *,
    depth: int = 0,
    mode: Mode = Mode.NORMAL,
    types: dict[int, str] | None = None,
) -> Decision:
    """The action for a standard (even group) element; private ones go to decide_private."""
    rule = rules.policy.for_tag(tag)
    if rule is not None:
        return _from_policy(rule, vr)
    if tag & 0xFFFF == 0 and tag >> 16 != 0x0002:
        return Decision(Act.REMOVE)  # group lengths: retired, and wrong after any change
    if tag in PSEUDONYM_ACTS:
        return Decision(PSEUDONYM_ACTS[tag])
    row = rules.table.row_for(tag)
    if row is not None:
        code, option = row_code(row, rules.options)
        decision = _code_to_decision(resolve_combined(code, tag, types, depth), option, tag, vr)
        if vr == "SQ" and "U*" in code and decision.act in (Act.REMOVE, Act.EMPTY):
            return Decision(decision.act, decision.mode, decision.value, decision.source, True)
        return decision
    keyword = keyword_for_tag(tag)
    if rules.strict and keyword not in rules.allow_list:
        return Decision(Act.REMOVE, source="strict")
    if vr == "SQ":
        return Decision(Act.KEEP, mode)
    if vr == "UI" and keyword not in CLASS_UIDS and "retain-uids" not in rules.options:
        return Decision(Act.UID)
    if mode is not Mode.NORMAL and vr in TEXT_VRS and keyword not in CODED:
        return Decision(Act.DUMMY if mode is Mode.DUMMY else Act.CLEAN)
    return Decision(Act.KEEP)


_REFERENCE_TAGS = _tags(REFERENCE_KEYWORDS | CODED)  # codes: a purpose of reference
_REFERENCING_TAGS = _tags(
    frozenset(
        {
            "ReferencedSOPInstanceUID",
            "ReferencedFrameOfReferenceUID",
            "SeriesInstanceUID",
            "StudyInstanceUID",
        }
    )
)


def references_only(items: list[set[int]]) -> bool:
    """True when every item references an instance (series, study, frame of reference) and
    holds nothing but reference attributes (their tags given, nested items' folded in);
    an empty sequence, or one of coded concepts alone, is not a reference sequence."""
    allowed, referencing = _REFERENCE_TAGS, _REFERENCING_TAGS
    return bool(items) and all(
        tags <= allowed and not tags.isdisjoint(referencing) for tags in items
    )
