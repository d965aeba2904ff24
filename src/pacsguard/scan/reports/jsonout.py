"""``{"findings": [...]}``: one entry per open service, plus the scan's facts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pacsguard import __version__
from pacsguard.core.io import atomic_write_text
from pacsguard.scan.model import ScanResult


def report_dict(result: ScanResult) -> dict[str, Any]:
    return {
        "tool": "pacsguard",
        "version": __version__,
        "scan": {
            "id": result.scan_id,
            "started": result.started,
            "finished": result.finished,
            "targets": result.targets,
            "hosts": result.hosts,
            "ports": result.ports,
        },
        "summary": result.by_severity(),
        "findings": [finding.to_dict() for finding in result.findings],
    }


def write_json(result: ScanResult, path: Path) -> None:
    atomic_write_text(path, json.dumps(report_dict(result), indent=2, ensure_ascii=False) + "\n")
