"""Policy files: per-tag, per-keyword or per-private-block overrides of the profile.

TOML or YAML, validated with clear errors::

    [[rule]]
    keyword = "StudyDescription"      # or tag = "(0008,1030)"
    action = "keep"

    [[rule]]
    private = { creator = "ACME_CT 1.0", group = "0009" }   # element = "10" for one element
    action = "remove"

    [[rule]]
    tag = "(0010,21B0)"
    action = "replace"
    value = "none"

Actions: keep, remove, empty, dummy, replace (needs value), pseudonymise, shift, clean, uid.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword

from pacsguard.core.errors import PacsguardError

ACTIONS = ("keep", "remove", "empty", "dummy", "replace", "pseudonymise", "shift", "clean", "uid")
_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4})[,\s]?([0-9A-Fa-f]{4})\)?$")


class PolicyError(PacsguardError):
    pass


@dataclass(frozen=True)
class PolicyRule:
    action: str
    tag: int | None = None
    creator: str | None = None
    group: int | None = None
    element: int | None = None  # low byte of a private element
    value: str | None = None


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...] = ()
    sha256: str | None = None

    def for_tag(self, tag: int) -> PolicyRule | None:
        for rule in self.rules:
            if rule.tag == tag:
                return rule
        return None

    def for_private(self, creator: str, group: int, element: int) -> PolicyRule | None:
        for rule in self.rules:
            if rule.creator is None or rule.creator != creator.strip() or rule.group != group:
                continue
            if rule.element is None or rule.element == element:
                return rule
        return None

    @property
    def has_private(self) -> bool:
        return any(rule.creator is not None for rule in self.rules)


def _hex(value: Any, digits: int, where: str) -> int:
    text = str(value).strip().lower().removeprefix("0x")
    if not re.fullmatch(rf"[0-9a-f]{{{digits}}}", text):
        raise PolicyError(f"{where}: expected {digits} hex digits, got {value!r}")
    return int(text, 16)


def _rule(raw: Any, where: str) -> PolicyRule:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a rule is a table of keys")
    unknown = set(raw) - {"tag", "keyword", "private", "action", "value"}
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {', '.join(ACTIONS)}; got {action!r}")
    value = raw.get("value")
    if action == "replace" and not isinstance(value, str):
        raise PolicyError(f"{where}: action 'replace' needs a string 'value'")
    if action != "replace" and value is not None:
        raise PolicyError(f"{where}: 'value' is only used with action 'replace'")
    selectors = [k for k in ("tag", "keyword", "private") if k in raw]
    if len(selectors) != 1:
        raise PolicyError(f"{where}: give exactly one of tag, keyword, private")
    if "tag" in raw:
        match = _TAG.match(str(raw["tag"]).strip())
        if not match:
            raise PolicyError(f"{where}: tag {raw['tag']!r} is not of the form (gggg,eeee)")
        tag = int(match.group(1) + match.group(2), 16)
        return PolicyRule(action, tag=tag, value=value)
    if "keyword" in raw:
        found = tag_for_keyword(str(raw["keyword"]))
        if found is None:
            raise PolicyError(f"{where}: {raw['keyword']!r} is not a DICOM keyword")
        return PolicyRule(action, tag=found, value=value)
    private = raw["private"]
    if not isinstance(private, dict) or "creator" not in private or "group" not in private:
        raise PolicyError(f"{where}: private needs creator and group")
    group = _hex(private["group"], 4, where)
    if not group & 1:
        raise PolicyError(f"{where}: private group {group:04X} is not odd")
    element = _hex(private["element"], 2, where) if "element" in private else None
    return PolicyRule(
        action, creator=str(private["creator"]).strip(), group=group, element=element, value=value
    )


def _yaml(path: Path, text: str) -> Any:
    import yaml  # here: a run without a YAML policy never imports the parser (~20 ms)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid: {exc}") from None


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    if not path.is_file():
        raise PolicyError(f"policy file {path} does not exist")
    raw_bytes = path.read_bytes()
    try:
        if path.suffix.lower() == ".toml":
            doc: Any = tomllib.loads(raw_bytes.decode("utf-8"))
        elif path.suffix.lower() in (".yaml", ".yml"):
            doc = _yaml(path, raw_bytes.decode("utf-8"))
        else:
            raise PolicyError(f"policy file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path} is not valid: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rule", []), list):
        raise PolicyError(f"policy file {path}: expected a list of [[rule]] entries")
    unknown = set(doc) - {"rule"}
    if unknown:
        raise PolicyError(
            f"policy file {path}: unknown top-level key(s) {', '.join(sorted(unknown))}"
        )
    rules = tuple(_rule(r, f"{path} rule {i + 1}") for i, r in enumerate(doc.get("rule", [])))
    return Policy(rules, hashlib.sha256(raw_bytes).hexdigest())
