"""Every input accounted for: an append-only journal that makes runs resumable.

The journal (JSON lines, fsynced per record) lives in the run's state folder, outside
the output tree. It names inputs by their path: it is the operator's, and never
travels. A re-run skips every input whose fingerprint already has a record; outputs
are named deterministically, so an input processed but not yet journalled when a
crash hit is simply written again to the same place (no duplicate).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pacsguard.core.io import atomic_write_text

Status = Literal["output", "quarantine"]

DEID_MANIFEST_NAME = "pacsguard-deid.json"


@dataclass(frozen=True)
class Outcome:
    """What became of one input."""

    input: str
    fingerprint: str
    status: Status
    output: str | None = None
    reason: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


class Journal:
    """Append-only record of outcomes; ``done`` tells what a re-run may skip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: dict[str, Outcome] = {}
        if path.exists():
            self._load()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    raw = json.loads(line)
                    outcome = Outcome(**raw)
                except (json.JSONDecodeError, TypeError):
                    continue  # a line torn by a crash: its input is simply redone
                self.outcomes[outcome.fingerprint] = outcome

    def done(self, fingerprint: str) -> bool:
        return fingerprint in self.outcomes

    def record(self, outcome: Outcome) -> None:
        self.record_many([outcome])

    def record_many(self, outcomes: list[Outcome]) -> None:
        """Append outcomes with one fsync (their outputs must already be durable)."""
        if not outcomes:
            return
        self._handle.write("".join(o.to_json() + "\n" for o in outcomes))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        for outcome in outcomes:
            self.outcomes[outcome.fingerprint] = outcome

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes)
    return {"output": counts.get("output", 0), "quarantine": counts.get("quarantine", 0)}


def write_json(path: Path, payload: object, mode: int = 0o644) -> None:
    atomic_write_text(path, render_json(payload) + "\n", mode)


def render_json(value: object, depth: int = 0) -> str:
    """Indented JSON, sorted keys, with each entry of a list on one compact line: as
    readable as ``indent=2`` for a long list of files, and written by json's C encoder
    (``indent`` forces its pure-Python one, which a manifest of 10^6 files would feel)."""
    pad, end = "  " * (depth + 1), "  " * depth
    if isinstance(value, dict) and value:
        fields = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {render_json(v, depth + 1)}"
            for k, v in sorted(value.items())
        ]
        return "{\n" + ",\n".join(fields) + "\n" + end + "}"
    if isinstance(value, list) and value:
        entries = [pad + json.dumps(v, ensure_ascii=False, sort_keys=True) for v in value]
        return "[\n" + ",\n".join(entries) + "\n" + end + "]"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
