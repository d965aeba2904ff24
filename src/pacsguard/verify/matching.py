"""Known source values found again in a text (whole words, however written)."""

from __future__ import annotations

from pacsguard.core.shapes import fold
from pacsguard.verify.known import KnownValues
from pacsguard.verify.policy import Policy

SHORT_ID = 6  # identifiers shorter than this must stand as whole tokens, not inside others


def _has_phrase(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def known_in_text(text: str, known: KnownValues, policy: Policy, *, uid: bool = False) -> list[str]:
    """The kinds (``patient-name``, ``identifier``…) of known values that ``text`` contains."""
    kinds: list[str] = []
    if uid:
        if not policy.uids_retained and text.strip(" \x00") in known.uids:
            kinds.append("uid")
        return kinds
    folded = fold(text)
    if not folded:
        return kinds
    compact = folded.replace(" ", "")
    tokens = set(folded.split())
    if any(_has_phrase(folded, name) for name in known.full_names):
        kinds.append("person-name")
    elif tokens & known.name_parts:
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
    if any(u in text for u in known.uids if len(u) >= 10) and not policy.uids_retained:
        kinds.append("uid")
    return kinds


def _matches_id(ident: str, compact: str, tokens: set[str]) -> bool:
    if len(ident) >= SHORT_ID:
        return ident in compact
    return ident in tokens or ident == compact
