"""Severity of a finding, the issues behind it, and a one-line summary.

- critical: patient data readable by anyone (query or API answered without any secret);
- high: readable with default credentials or a guessable AE title;
- medium: answers anyone (association, echo, viewer, API banner) but shows no data;
- low: answers a guessable AE title but shows no data;
- info: locked, or not a medical service.
"""

from __future__ import annotations

from pacsguard.scan.model import Finding, Severity
from pacsguard.scan.remediation import guard_config_for, remediation_for

LEGACY_TLS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})


def _dicom(finding: Finding) -> tuple[Severity, list[str]]:
    info = finding.dicom
    issues: list[str] = []
    if info is None or finding.access == "none":
        return "info", ["association-rejected"] if info and info.attempts else []
    anonymous = finding.access == "anonymous"
    issues.append("accepts-any-ae-title" if anonymous else "guessable-ae-title")
    if info.echo:
        issues.append("c-echo-open")
    if info.find == "answered":
        issues.append("c-find-open")
    if finding.service == "dicom":  # whatever it answers, it answers it in clear text
        issues.append("cleartext-dicom")
    if info.find == "answered":
        return ("critical" if anonymous else "high"), issues
    if info.find == "refused":
        issues.append("c-find-refused")
    return ("medium" if anonymous else "low"), issues


def _http(finding: Finding) -> tuple[Severity, list[str]]:
    info = finding.http
    if info is None or not finding.medical:
        return "info", []
    issues = [f"{name}-open" for name in info.open_apis]
    issues += [f"{name}-requires-login" for name in info.locked_apis]
    if finding.access == "default-credentials":
        issues.append("default-credentials")
    exposes = finding.exposed.known
    plain = finding.service == "http" and (exposes or bool(info.open_apis))
    if plain:
        issues.append("cleartext-http")
    if exposes and finding.access == "anonymous":
        return "critical", issues
    if finding.access == "default-credentials":
        return "high", issues
    if info.open_apis:
        return "medium", issues
    return "info", issues


def _tls(finding: Finding) -> list[str]:
    info = finding.tls
    if info is None:
        return []
    issues: list[str] = []
    if info.client_cert_required:
        issues.append("tls-client-certificate-required")
    if info.version in LEGACY_TLS:
        issues.append("legacy-tls")
    cert = info.certificate
    if cert is not None:
        if cert.self_signed:
            issues.append("self-signed-certificate")
        if cert.expired:
            issues.append("expired-certificate")
    return issues


def grade(finding: Finding) -> Finding:
    """Set severity, issues, remediation and summary (in place); returns the finding."""
    if finding.service in ("dicom", "dicom-tls"):
        severity, issues = _dicom(finding)
    elif finding.service in ("http", "https"):
        severity, issues = _http(finding)
    else:
        severity, issues = "info", []
    finding.severity = severity
    kept = [i for i in finding.issues if i == "probe-failed"]
    finding.issues = issues + _tls(finding) + kept
    finding.remediation = remediation_for(finding)
    finding.guard_config = guard_config_for(finding)
    finding.summary = summary(finding)
    return finding


def _counts(finding: Finding) -> str:
    exposed = finding.exposed
    parts = []
    for label, value in (
        ("patients", exposed.patients),
        ("studies", exposed.studies),
        ("series", exposed.series),
        ("instances", exposed.instances),
    ):
        if value is not None:
            parts.append(f"{'≥' if exposed.capped else ''}{value} {label}")
    return ", ".join(parts)


def summary(finding: Finding) -> str:
    what = finding.product or ("medical service" if finding.medical else "service")
    if not finding.medical and finding.service in ("http", "https", "unknown", "tls"):
        return f"{finding.service} service, not a known medical product"
    if finding.severity == "info":
        return f"{what}: locked (no access without credentials or a registered AE title)"
    how = {
        "anonymous": "anyone",
        "default-credentials": "default credentials",
        "guessed-ae-title": f"guessed AE title {', '.join(finding.ae_titles)}",
        "none": "nobody",
    }[finding.access]
    counts = _counts(finding)
    if counts:
        return f"{what}: {counts} readable by {how}"
    return f"{what}: answers {how} but shows no data"
