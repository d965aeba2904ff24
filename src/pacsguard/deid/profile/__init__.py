"""The PS3.15 profile and its companions, loaded from the data files in this folder."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any


def _text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class ProfileRow:
    """One row of PS3.15 Table E.1-1."""

    tag: str
    name: str
    basic: str
    in_std_iod: bool
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileTable:
    exact: dict[int, ProfileRow]
    overlay: dict[int, ProfileRow]  # element number -> row, for (60xx,eeee)
    curve: ProfileRow | None  # (50xx,xxxx)
    private: ProfileRow | None

    def row_for(self, tag: int) -> ProfileRow | None:
        group, element = tag >> 16, tag & 0xFFFF
        if group & 1:
            return self.private
        if 0x6000 <= group <= 0x601E:
            return self.overlay.get(element)
        if 0x5000 <= group <= 0x501E:
            return self.curve
        return self.exact.get(tag)

    @property
    def rows(self) -> list[ProfileRow]:
        extra = [r for r in (self.curve, self.private) if r is not None]
        return [*self.exact.values(), *self.overlay.values(), *extra]


@cache
def load_table() -> ProfileTable:
    doc = json.loads(_text("table-e1-1.json"))
    exact: dict[int, ProfileRow] = {}
    overlay: dict[int, ProfileRow] = {}
    curve = private = None
    for raw in doc["rows"]:
        row = ProfileRow(raw["tag"], raw["name"], raw["basic"], raw["in_std_iod"], raw["options"])
        if row.tag == "private":
            private = row
        elif row.tag.startswith("60xx"):
            overlay[int(row.tag[4:], 16)] = row
        elif row.tag.startswith("50xx"):
            curve = row
        else:
            exact[int(row.tag, 16)] = row
    return ProfileTable(exact, overlay, curve, private)


@cache
def load_iod_types() -> dict[str, dict[int, str]]:
    """SOP Class UID -> {tag: Type} for the attributes whose action depends on their Type."""
    doc = json.loads(_text("iod-types.json"))
    return {
        uid: {int(t, 16): kind for t, kind in types.items()} for uid, types in doc["types"].items()
    }


@cache
def load_safe_private() -> frozenset[tuple[str, int, int]]:
    """(private creator, group, element low byte) of Table E.3.10-1."""
    doc = json.loads(_text("safe-private.json"))
    return frozenset(
        (e["creator"].strip(), int(e["group"], 16), int(e["element"], 16)) for e in doc["entries"]
    )


@cache
def load_allow_list() -> frozenset[str]:
    """Keywords kept by ``--strict``: they describe pixels and acquisition, not people."""
    words = set()
    for line in _text("allow-list.txt").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(word)
    return frozenset(words)


@cache
def load_cid7050() -> dict[str, tuple[str, str, str]]:
    """Option name (or 'basic') -> (code value, scheme, meaning)."""
    doc = json.loads(_text("cid7050.json"))
    return {name: (v[0], doc["scheme"], v[1]) for name, v in doc["codes"].items()}


@cache
def load_identifying_keywords() -> dict[str, tuple[str, ...]]:
    # TOML, read by the standard library: the run's start does not import a YAML parser
    raw: dict[str, Any] = tomllib.loads(_text("identifying-keywords.toml"))
    return {kind: tuple(words) for kind, words in raw.items()}
