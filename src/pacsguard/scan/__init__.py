"""pacsguard.scan: a defensive exposure auditor for DICOM, DICOM-TLS, DICOMweb and PACS web APIs.

from pacsguard.scan import scan, ScanOptions
result = scan(["10.0.0.0/24"], ScanOptions(ports=[104, 4242, 8042]))
for finding in result.findings:
    print(finding.host, finding.port, finding.severity, finding.exposed.studies)
"""

from pacsguard.scan.engine import Progress, ScanOptions, scan
from pacsguard.scan.errors import HistoryError, ScanError, TargetError
from pacsguard.scan.history import DEFAULT_DB, Diff, History
from pacsguard.scan.model import (
    AssocAttempt,
    Certificate,
    DicomInfo,
    Exposure,
    Finding,
    HttpInfo,
    ScanResult,
    TlsInfo,
)
from pacsguard.scan.targets import DEFAULT_PORTS, expand_targets, parse_ports

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_PORTS",
    "AssocAttempt",
    "Certificate",
    "DicomInfo",
    "Diff",
    "Exposure",
    "Finding",
    "History",
    "HistoryError",
    "HttpInfo",
    "Progress",
    "ScanError",
    "ScanOptions",
    "ScanResult",
    "TargetError",
    "TlsInfo",
    "diff",
    "expand_targets",
    "parse_ports",
    "scan",
]


def diff(db: "object | None" = None, base: int | None = None, head: int | None = None) -> Diff:
    """What is new, fixed, worse or changed in the latest scan (or ``head``) since ``base``."""
    from pathlib import Path

    with History(Path(str(db)) if db is not None else DEFAULT_DB) as history:
        return history.diff(base, head)
