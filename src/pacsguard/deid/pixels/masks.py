"""Rule-based pixel masks (data in ``deid/profile/pixel-masks.yaml``) and ultrasound regions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pacsguard.core.errors import InputError
from pacsguard.deid.pixels.redact import Box, clip

Condition = tuple[str, str, tuple[str, ...]]  # (keyword, "equals" | "contains", values)


@dataclass(frozen=True)
class MaskRule:
    name: str
    conditions: tuple[Condition, ...]
    regions: tuple[Box, ...] = ()
    top: int = 0
    bottom: int = 0

    def matches(self, ds: Dataset) -> bool:
        return all(_holds(ds, condition) for condition in self.conditions)

    def boxes(self, rows: int, cols: int) -> list[Box]:
        out: list[Box] = []
        for x0, y0, x1, y1 in self.regions:
            box = clip(
                (_edge(x0, cols), _edge(y0, rows), _edge(x1, cols), _edge(y1, rows)), rows, cols
            )
            if box:
                out.append(box)
        if self.top > 0:
            out.append((0, 0, cols, min(rows, self.top)))
        if self.bottom > 0:
            out.append((0, max(0, rows - self.bottom), cols, rows))
        return out


def _edge(value: int, size: int) -> int:
    return size + value if value < 0 else value


def _text(value: object) -> str:
    return str(value).strip().upper()


def _values(ds: Dataset, keyword: str) -> list[str]:
    if keyword not in ds:
        return []
    value = ds.data_element(keyword).value  # type: ignore[union-attr]
    if isinstance(value, (MultiValue, list, tuple)):
        return [_text(v) for v in value]
    return [_text(value)]


def _holds(ds: Dataset, condition: Condition) -> bool:
    keyword, how, wanted = condition
    values = _values(ds, keyword)
    if how == "contains":
        joined = "\\".join(values)
        return any(w in joined for w in wanted)
    return any(v in wanted for v in values)


def _condition(keyword: str, spec: Any) -> Condition:
    if isinstance(spec, dict):
        if set(spec) != {"contains"}:
            raise InputError(f"pixel mask condition on {keyword}: only 'contains' is known")
        return (keyword, "contains", (_text(spec["contains"]),))
    if isinstance(spec, list):
        return (keyword, "equals", tuple(_text(v) for v in spec))
    return (keyword, "equals", (_text(spec),))


def parse_rules(doc: Any, where: str) -> tuple[MaskRule, ...]:
    if not isinstance(doc, dict) or not isinstance(doc.get("rules", []), list):
        raise InputError(f"{where}: a pixel mask file holds 'rules:', a list")
    rules: list[MaskRule] = []
    for i, raw in enumerate(doc.get("rules") or []):
        try:
            match = raw.get("match") or {}
            rules.append(
                MaskRule(
                    name=str(raw.get("name") or f"rule {i + 1}"),
                    conditions=tuple(_condition(k, v) for k, v in match.items()),
                    regions=tuple(tuple(int(v) for v in r) for r in raw.get("regions") or ()),  # type: ignore[misc]
                    top=int(raw.get("top") or 0),
                    bottom=int(raw.get("bottom") or 0),
                )
            )
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{where}: pixel mask rule {i + 1} is malformed") from None
        if any(len(r) != 4 for r in rules[-1].regions):
            raise InputError(f"{where}: pixel mask rule {i + 1}: a region is [x0, y0, x1, y1]")
    return tuple(rules)


@cache
def default_masks() -> tuple[MaskRule, ...]:
    """The rules shipped in ``deid/profile/pixel-masks.yaml``."""
    text = (
        resources.files("pacsguard.deid").joinpath("profile", "pixel-masks.yaml").read_text("utf-8")
    )
    return parse_rules(yaml.safe_load(text), "pixel-masks.yaml")


def load_masks(path: Path) -> tuple[MaskRule, ...]:
    """Site rules from a YAML file of the same shape as the shipped one."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read pixel masks ({exc.__class__.__name__})") from None
    return parse_rules(doc, str(path))


def mask_boxes(ds: Dataset, rules: tuple[MaskRule, ...], rows: int, cols: int) -> list[Box]:
    """Boxes of every rule that matches ``ds``."""
    return [box for rule in rules if rule.matches(ds) for box in rule.boxes(rows, cols)]


def ultrasound_regions(ds: Dataset, rows: int, cols: int) -> list[Box]:
    """The image areas of the Sequence of Ultrasound Regions (empty when absent)."""
    boxes: list[Box] = []
    for item in getattr(ds, "SequenceOfUltrasoundRegions", None) or []:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError):
            return []  # an incomplete region: keep nothing special, rely on OCR and masks
        box = clip((x0, y0, x1 + 1, y1 + 1), rows, cols)  # Max X1/Y1 are inclusive
        if box:
            boxes.append(box)
    return boxes
