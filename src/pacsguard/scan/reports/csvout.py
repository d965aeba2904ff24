"""One CSV row per finding, for spreadsheets and ticketing imports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pacsguard.core.io import atomic_write_text
from pacsguard.scan.model import Finding, ScanResult

COLUMNS = (
    "host",
    "port",
    "service",
    "product",
    "version",
    "severity",
    "access",
    "ae_titles",
    "patients",
    "studies",
    "series",
    "instances",
    "capped",
    "tls_version",
    "issues",
    "summary",
)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """Text a server chose (a version, a product) must not run as a spreadsheet formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _row(finding: Finding) -> list[object]:
    exposed = finding.exposed
    return [
        finding.host,
        finding.port,
        finding.service,
        finding.product or "",
        finding.version or "",
        finding.severity,
        finding.access,
        ";".join(finding.ae_titles),
        "" if exposed.patients is None else exposed.patients,
        "" if exposed.studies is None else exposed.studies,
        "" if exposed.series is None else exposed.series,
        "" if exposed.instances is None else exposed.instances,
        "true" if exposed.capped else "false",
        finding.tls.version if finding.tls and finding.tls.version else "",
        ";".join(finding.issues),
        finding.summary,
    ]


def render_csv(result: ScanResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([_cell(v) for v in _row(f)] for f in result.findings)
    return buffer.getvalue()


def write_csv(result: ScanResult, path: Path) -> None:
    atomic_write_text(path, render_csv(result))
