"""What an output may legitimately hold, given the options it was de-identified with.

- The allow-list (``deid/profile/allow-list.txt``): attributes that carry no identity.
- Options widen it: ``clean-descriptors`` keeps cleaned descriptions, ``retain-*`` keep
  device, institution or patient characteristics (PS3.15 Table E.1-1 option columns, in
  ``option-attributes.json``); text kept that way is still scanned for identifiers.
- ``retain-uids`` and ``retain-long-full-dates`` make source UIDs and dates legitimate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from pacsguard.core.pseudonym import PATIENT_PREFIX

# Values the de-identification writes in place of identity: pseudonyms and placeholders.
PSEUDONYM_RES = (
    re.compile(rf"{PATIENT_PREFIX}[A-Z2-7]{{16}}"),  # patient ID and name
    re.compile(r"A[A-Z2-7]{15}"),  # accession number
    re.compile(r"[A-Z2-7]{16}"),  # other identifiers
    re.compile(r"2\.25\.\d{1,39}"),  # UIDs
)
DEID_PLACEHOLDER = re.compile(r"\[(?:NAME|ID|DATE|ADDR|PHONE|EMAIL|NIR)\]")
PLACEHOLDERS = frozenset(
    {"ANONYMOUS", "ANONYMIZED", "ANONYMISED", "REMOVED", "DEIDENTIFIED", "DE-IDENTIFIED"}
    | {"UNKNOWN", "NONE", "YES", "NO", "PACSGUARD"}
)


@lru_cache(maxsize=1 << 16)
def is_pseudonym(value: str) -> bool:
    """A value that is only pseudonyms or placeholders (PN components included)."""
    parts = [p for p in re.split(r"[\^=\\ ]+", value.strip().upper()) if p]
    return bool(parts) and all(
        p in PLACEHOLDERS or any(r.fullmatch(p) for r in PSEUDONYM_RES) for p in parts
    )


@cache
def allow_list() -> frozenset[str]:
    """Keywords of ``deid/profile/allow-list.txt``."""
    text = (
        resources.files("pacsguard.deid").joinpath("profile", "allow-list.txt").read_text("utf-8")
    )
    return frozenset(w for line in text.splitlines() if (w := line.split("#", 1)[0].strip()))


@cache
def option_attributes() -> dict[str, frozenset[str]]:
    text = resources.files("pacsguard.verify").joinpath("option-attributes.json").read_text("utf-8")
    doc = json.loads(text)
    return {k: frozenset(v) for k, v in doc.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Policy:
    """The verifier's view of the profile an output was made with."""

    allowed: frozenset[str]
    by_option: frozenset[str] = frozenset()  # kept or cleaned by a chosen option (and items)
    retained: frozenset[str] = frozenset()  # kept as is by a chosen retain-* option
    private_text_allowed: bool = False
    uids_retained: bool = False
    dates_retained: bool = False
    device_retained: bool = False
    institution_retained: bool = False

    @classmethod
    def from_options(cls, options: Iterable[str] = ()) -> Policy:
        chosen = set(options)
        by_option: set[str] = set()
        retained: set[str] = set()
        for option, keywords in option_attributes().items():
            if option in chosen:
                by_option |= keywords
                if option.startswith("retain-"):
                    retained |= keywords
        return cls(
            allowed=allow_list() | by_option,
            by_option=frozenset(by_option),
            retained=frozenset(retained),
            private_text_allowed="retain-safe-private" in chosen,
            uids_retained="retain-uids" in chosen,
            dates_retained="retain-long-full-dates" in chosen,
            device_retained="retain-device-identity" in chosen,
            institution_retained="retain-institution-identity" in chosen,
        )
