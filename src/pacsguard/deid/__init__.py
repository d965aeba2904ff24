"""DICOM de-identification per PS3.15 Annex E (Basic Profile and its Options).

from pacsguard.deid import deidentify, DeidConfig
report = deidentify([Path("in")], Path("out"), key=load_key(Path("project.key")),
                    config=DeidConfig(options=frozenset({"retain-long-modified-dates"})))

The names below load on first use: ``pacsguard deid --help`` need not import the engine
(and pydicom).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pacsguard.deid.options import ALL_OPTIONS

if TYPE_CHECKING:
    from pacsguard.deid.engine import Transformer, UncleanError
    from pacsguard.deid.pipeline import DeidConfig, DeidReport, RunFigures, deidentify
    from pacsguard.deid.plan import Rules
    from pacsguard.deid.single import FileDeidentifier, FileOutcome

_LAZY = {
    "Transformer": "engine",
    "UncleanError": "engine",
    "DeidConfig": "pipeline",
    "DeidReport": "pipeline",
    "deidentify": "pipeline",
    "RunFigures": "pipeline",
    "Rules": "plan",
    "FileDeidentifier": "single",
    "FileOutcome": "single",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"pacsguard.deid.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pacsguard.deid' has no attribute {name!r}")


__all__ = [
    "ALL_OPTIONS",
    "DeidConfig",
    "DeidReport",
    "FileDeidentifier",
    "FileOutcome",
    "Rules",
    "RunFigures",
    "Transformer",
    "UncleanError",
    "deidentify",
]
