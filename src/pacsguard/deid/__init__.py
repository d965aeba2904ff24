"""DICOM de-identification per PS3.15 Annex E (Basic Profile and its Options).

from pacsguard.deid import deidentify, DeidConfig
report = deidentify([Path("in")], Path("out"), key=load_key(Path("project.key")),
                    config=DeidConfig(options=frozenset({"retain-long-modified-dates"})))
"""

from pacsguard.deid.engine import Transformer, UncleanError
from pacsguard.deid.options import ALL_OPTIONS
from pacsguard.deid.pipeline import DeidConfig, DeidReport, deidentify
from pacsguard.deid.plan import Rules

__all__ = [
    "ALL_OPTIONS",
    "DeidConfig",
    "DeidReport",
    "Rules",
    "Transformer",
    "UncleanError",
    "deidentify",
]
