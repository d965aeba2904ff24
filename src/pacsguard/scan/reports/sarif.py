"""SARIF 2.1.0: one rule per issue, one result per issue of each finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pacsguard import __version__
from pacsguard.core.io import atomic_write_text
from pacsguard.scan.model import Finding, ScanResult

LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SCORES = {"critical": "9.5", "high": "8.0", "medium": "5.0", "low": "3.0", "info": "0.0"}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _uri(finding: Finding) -> str:
    host = f"[{finding.host}]" if ":" in finding.host else finding.host
    scheme = {"dicom": "dicom", "dicom-tls": "dicoms", "http": "http", "https": "https"}
    return f"{scheme.get(finding.service, 'tcp')}://{host}:{finding.port}"


def _rule_ids(finding: Finding) -> list[str]:
    if finding.issues:
        return finding.issues
    return ["service-locked" if finding.medical else "service-open"]


def sarif_dict(result: ScanResult) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for finding in result.findings:
        for rule_id in _rule_ids(finding):
            rule = rules.setdefault(
                rule_id,
                {
                    "id": rule_id,
                    "name": rule_id.replace("-", " ").title().replace(" ", ""),
                    "shortDescription": {"text": rule_id.replace("-", " ")},
                    "properties": {"security-severity": SCORES[finding.severity]},
                },
            )
            if float(SCORES[finding.severity]) > float(rule["properties"]["security-severity"]):
                rule["properties"]["security-severity"] = SCORES[finding.severity]
            results.append(
                {
                    "ruleId": rule_id,
                    "level": LEVELS[finding.severity],
                    "message": {"text": f"{finding.summary} ({finding.severity})"},
                    "locations": [
                        {"physicalLocation": {"artifactLocation": {"uri": _uri(finding)}}}
                    ],
                    "properties": {
                        "severity": finding.severity,
                        "access": finding.access,
                        "service": finding.service,
                        "product": finding.product,
                        "exposed": {
                            "patients": finding.exposed.patients,
                            "studies": finding.exposed.studies,
                            "series": finding.exposed.series,
                            "instances": finding.exposed.instances,
                            "capped": finding.exposed.capped,
                        },
                        "remediation": finding.remediation,
                    },
                }
            )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pacsguard-scan",
                        "version": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "startTimeUtc": result.started.replace("+00:00", "Z"),
                        "endTimeUtc": result.finished.replace("+00:00", "Z"),
                    }
                ],
                "results": results,
            }
        ],
    }


def write_sarif(result: ScanResult, path: Path) -> None:
    atomic_write_text(path, json.dumps(sarif_dict(result), indent=2) + "\n")
