"""What listens on one open port: plain DICOM, TLS (DICOM or HTTPS inside), or HTTP.

The order of the probes follows the port's usual role, so a web port is first asked
in HTTP and a DICOM port first receives an A-ASSOCIATE request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pacsguard.scan import tls as tls_probe
from pacsguard.scan.dicomcheck import check_dicom
from pacsguard.scan.dimse import DicomSettings
from pacsguard.scan.httpcheck import HttpSettings, check_http
from pacsguard.scan.model import Finding, Service, TlsInfo
from pacsguard.scan.ratelimit import RateLimits

WEB_PORTS = frozenset({80, 81, 3000, 8000, 8042, 8080, 8081, 8088, 8888, 9090})
TLS_WEB_PORTS = frozenset({443, 8443, 9443})
TLS_DICOM_PORTS = frozenset({2761, 2762})


@dataclass(frozen=True)
class PortChecks:
    dicom: DicomSettings
    http: HttpSettings
    ae_titles: Sequence[str]
    cap: int
    timeout: float


def plan(port: int) -> tuple[str, ...]:
    if port in WEB_PORTS:
        return ("http", "dicom", "tls")
    if port in TLS_WEB_PORTS:
        return ("tls", "http", "dicom")
    if port in TLS_DICOM_PORTS:
        return ("tls", "dicom", "http")
    return ("dicom", "tls", "http")


def _inside_tls(
    host: str, port: int, info: TlsInfo, checks: PortChecks, limits: RateLimits
) -> Finding:
    if info.client_cert_required:
        service: Service = "dicom-tls" if port in TLS_DICOM_PORTS else "tls"
        return Finding(host, port, service, medical=service == "dicom-tls", tls=info)
    tls_settings = replace(checks.dicom, tls=tls_probe.client_context())
    order = ("http", "dicom") if port in TLS_WEB_PORTS else ("dicom", "http")
    for step in order:
        if step == "dicom":
            found = check_dicom(host, port, tls_settings, limits, checks.ae_titles, checks.cap)
        else:
            found = check_http(host, port, True, checks.http, limits)
        if found is not None:
            found.tls = info
            return found
    return Finding(host, port, "tls", tls=info)


def examine(host: str, port: int, checks: PortChecks, limits: RateLimits) -> Finding:
    """A finding for every open port: ``unknown`` when nothing known answers."""
    for step in plan(port):
        if step == "dicom":
            found = check_dicom(host, port, checks.dicom, limits, checks.ae_titles, checks.cap)
        elif step == "http":
            found = check_http(host, port, False, checks.http, limits)
        else:
            info = tls_probe.probe(host, port, checks.timeout, limits)
            found = None if info is None else _inside_tls(host, port, info, checks, limits)
        if found is not None:
            return found
    return Finding(host, port, "unknown")
