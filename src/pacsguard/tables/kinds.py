"""What a column holds (its kind), and what a draft policy does with each kind."""

from __future__ import annotations

from typing import Any

# kind -> (draft action, its parameters)
DRAFT_ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "patient-id": ("pseudonymise-patient-id", {}),
    "stay-id": ("pseudonymise", {"domain": "stay-id"}),
    "accession": ("pseudonymise-accession", {}),
    "ins": ("pseudonymise", {"domain": "ins"}),
    "nir": ("drop", {}),
    "identifier": ("drop", {}),
    "last-name": ("drop", {}),
    "birth-name": ("drop", {}),
    "first-name": ("drop", {}),
    "person-name": ("drop", {}),
    "staff-name": ("drop", {}),
    "address": ("drop", {}),
    "city": ("drop", {}),
    "phone": ("drop", {}),
    "email": ("drop", {}),
    "postcode": ("generalise-postcode", {}),
    "birth-date": ("generalise-birth-date", {"to": "year", "top_code": 90}),
    "date": ("shift-date", {}),
    "age": ("generalise-age", {"top_code": 90}),
    "sex": ("keep", {}),
    "free-text": ("scrub-text", {}),
    "other": ("keep", {}),
}

KINDS = frozenset(DRAFT_ACTIONS)

# Kinds whose row values are looked for (and removed) in the same row's free text.
IDENTIFYING = frozenset(
    {
        "patient-id", "stay-id", "accession", "ins", "nir", "identifier", "last-name",
        "birth-name", "first-name", "person-name", "staff-name", "address", "city", "phone",
        "email", "postcode", "birth-date",
    }
)  # fmt: skip

# Kinds that make up the default quasi-identifiers of the risk section.
QUASI_IDENTIFYING = frozenset({"birth-date", "sex", "postcode", "age"})
