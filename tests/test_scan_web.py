"""Web checks of products with no Debian package (dcm4chee-arc, OHIF, a bare DICOMweb
archive), answered by an in-process httpx transport: nothing leaves the process.
Orthanc's REST API, DICOMweb plugin and viewers are tested against the real server in
test_scan_lab.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx

from pacsguard.scan.grade import grade
from pacsguard.scan.httpcheck import HttpSettings, check_http
from pacsguard.scan.model import Finding
from pacsguard.scan.ratelimit import RateLimits

Handler = Callable[[httpx.Request], httpx.Response]


def _check(handler: Handler, *, cap: int = 1000, credentials: bool = False) -> Finding:
    settings = HttpSettings(5, cap, credentials, transport=httpx.MockTransport(handler))
    finding = check_http("127.0.0.1", 8080, False, settings, RateLimits(10_000, 10_000))
    assert finding is not None
    return grade(finding)


def _study(index: int) -> dict[str, Any]:
    return {
        "0020000D": {"vr": "UI", "Value": [f"1.2.3.{index}"]},
        "00100020": {"vr": "LO", "Value": [f"PAT{index % 7}"]},
        "00201206": {"vr": "IS", "Value": [2]},
        "00201208": {"vr": "IS", "Value": [10]},
    }


def _qido(request: httpx.Request, studies: int, seen: list[int]) -> httpx.Response:
    limit = int(request.url.params.get("limit", "100"))
    offset = int(request.url.params.get("offset", "0"))
    seen.append(limit)
    rows = [_study(i) for i in range(offset, min(studies, offset + limit))]
    if not rows:
        return httpx.Response(204)
    return httpx.Response(200, json=rows, headers={"content-type": "application/dicom+json"})


def test_dcm4chee_count_endpoints() -> None:
    counts = {"patients": 12, "studies": 30, "series": 75, "instances": 900}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/dcm4chee-arc/aets":
            return httpx.Response(200, json=[{"dicomAETitle": "DCM4CHEE"}])
        for level, count in counts.items():
            if path == f"/dcm4chee-arc/aets/DCM4CHEE/rs/{level}/count":
                return httpx.Response(200, json={"count": count})
        if path == "/dcm4chee-arc/ui2/":
            return httpx.Response(200, text="<title>dcm4chee-arc</title>")
        return httpx.Response(404)

    finding = _check(handler)
    assert (finding.product, finding.severity, finding.access) == (
        "dcm4chee",
        "critical",
        "anonymous",
    )
    e = finding.exposed
    assert (e.patients, e.studies, e.series, e.instances, e.capped) == (12, 30, 75, 900, False)
    assert finding.http is not None and "dcm4chee-ui" in finding.http.viewers
    assert any("Keycloak" in text for text in finding.remediation)


def test_bare_dicomweb_is_paged_up_to_the_cap() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/dicomweb/studies":
            return _qido(request, 250, seen)
        return httpx.Response(404)

    finding = _check(handler)
    e = finding.exposed
    assert (e.patients, e.studies, e.series, e.instances, e.capped) == (7, 250, 500, 2500, False)
    assert finding.severity == "critical" and finding.http is not None
    assert finding.http.open_apis == ["dicomweb"]
    assert max(seen) <= 100

    capped = _check(handler, cap=120).exposed
    assert (capped.studies, capped.capped) == (120, True)
    text = json.dumps(finding.to_dict())
    assert "PAT1" not in text and "1.2.3.4" not in text


def test_ohif_viewer_without_data_is_medium() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            page = '<html><head><title>OHIF Viewer</title><script src="/app-config.js"></script>'
            return httpx.Response(200, text=page)
        return httpx.Response(404)

    finding = _check(handler)
    assert finding.http is not None and finding.http.viewers == ["ohif"]
    assert (finding.severity, finding.access, finding.medical) == ("medium", "none", True)
    assert finding.exposed.studies is None


def _basic(request: httpx.Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def test_default_credentials_only_when_asked() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if _basic(request) != ("admin", "admin"):
            return httpx.Response(401, headers={"www-authenticate": 'Basic realm="PACS"'})
        if request.url.path == "/dicom-web/studies":
            return _qido(request, 3, seen)
        return httpx.Response(404)

    locked = _check(handler)
    assert (locked.severity, locked.access, locked.medical) == ("info", "none", False)
    opened = _check(handler, credentials=True)
    assert (opened.severity, opened.access) == ("high", "default-credentials")
    assert opened.http is not None and opened.http.default_user == "admin"
    assert opened.exposed.studies == 3


def test_a_web_server_that_is_not_medical_is_info() -> None:
    finding = _check(lambda request: httpx.Response(200, text="<html>Intranet</html>"))
    assert (finding.severity, finding.medical, finding.product) == ("info", False, None)
    assert finding.summary == "http service, not a known medical product"
