"""Known source values found again in a text (whole words, however written)."""

from __future__ import annotations

from pacsguard.core.names import common_names, is_wide, technical_words
from pacsguard.core.names import fold_letters as fold
from pacsguard.verify.known import KnownValues
from pacsguard.verify.policy import DEID_PLACEHOLDER, Policy

SHORT_ID = 6  # identifiers shorter than this must stand as whole tokens, not inside others
MIN_UID = 10  # as for UIDs found inside text


def _has_phrase(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def _has_name(folded: str, compact: str, name: str) -> bool:
    """A whole name as words, or, in a script written without spaces, anywhere."""
    return _has_phrase(folded, name) or (is_wide(name) and name.replace(" ", "") in compact)


def known_in_text(text: str, known: KnownValues, policy: Policy, *, uid: bool = False) -> list[str]:
    """The kinds (``patient-name``, ``identifier``…) of known values that ``text`` contains."""
    kinds: list[str] = []
    if uid:
        value = text.strip(" \x00")
        # A UID too short to be a real one ("0" in a test file's references) is no link back.
        if not policy.uids_retained and len(value) >= MIN_UID and value in known.uids:
            kinds.append("uid")
        return kinds
    # deid's own placeholders ("[NAME]", docs/contracts.md) stand where a value was: not a
    # residue, even for a patient whose name part is "Name".
    folded = fold(DEID_PLACEHOLDER.sub(" ", text))
    if not folded:
        return kinds
    compact = folded.replace(" ", "")
    tokens = set(folded.split())
    if any(_has_name(folded, compact, name) for name in known.full_names):
        kinds.append("person-name")
    elif any(_telling(part) for part in tokens & known.name_parts) or any(
        part in compact for part in known.name_parts if is_wide(part)
    ):
        kinds.append("name-part")
    if any(_matches_id(ident, compact, tokens) for ident in known.identifiers):
        kinds.append("identifier")
    if not policy.device_retained and any(
        _matches_id(dev, compact, tokens) for dev in known.devices
    ):
        kinds.append("device")
    if any(_has_phrase(folded, t) for t in known.texts):
        kinds.append("address")
    if not policy.institution_retained and any(_has_phrase(folded, t) for t in known.institutions):
        kinds.append("institution")
    if not policy.dates_retained and any(_has_phrase(folded, d) for d in known.date_texts):
        kinds.append("date")
    if any(u in text for u in known.uids if len(u) >= MIN_UID) and not policy.uids_retained:
        kinds.append("uid")
    return kinds


def _telling(part: str) -> bool:
    """A name part found alone tells of its patient unless it is a word of the DICOM
    vocabulary that no one is commonly named ("Name", "Report", "Field"): a patient called
    "Last Name^First Name" must not make every "Manufacturer name" a leak. Whole names and
    name forms are matched above whatever their words."""
    upper = part.upper()
    return upper not in technical_words() or upper in common_names()


def _matches_id(ident: str, compact: str, tokens: set[str]) -> bool:
    if len(ident) >= SHORT_ID:
        return ident in compact
    return ident in tokens or ident == compact
