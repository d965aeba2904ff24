"""Scan reports: JSON, CSV, SARIF and a self-contained HTML page."""

from pacsguard.scan.reports.csvout import write_csv
from pacsguard.scan.reports.html import render_html, write_html
from pacsguard.scan.reports.jsonout import report_dict, write_json
from pacsguard.scan.reports.sarif import sarif_dict, write_sarif

__all__ = [
    "render_html",
    "report_dict",
    "sarif_dict",
    "write_csv",
    "write_html",
    "write_json",
    "write_sarif",
]
