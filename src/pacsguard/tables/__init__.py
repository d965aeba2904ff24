"""pacsguard.tables: de-identify clinical exports (CSV/TSV, Parquet, Excel) with the same key
and pseudonyms as the images, so that a row still joins its de-identified study."""

from pacsguard.core.nir import is_valid_nir
from pacsguard.tables.deid import DeidTablesReport, deidentify_table
from pacsguard.tables.draft import write_draft
from pacsguard.tables.inspect import Inspection, inspect_table
from pacsguard.tables.policy import Policy, load_policy, parse_policy
from pacsguard.tables.risk import RiskReport, risk_report

__all__ = [
    "DeidTablesReport",
    "Inspection",
    "Policy",
    "RiskReport",
    "deidentify_table",
    "inspect_table",
    "is_valid_nir",
    "load_policy",
    "parse_policy",
    "risk_report",
    "write_draft",
]
