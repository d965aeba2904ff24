"""Web APIs of PACS products: Orthanc REST, DICOMweb QIDO-RS, dcm4chee-arc, web viewers.

Only counts and product facts are read. QIDO answers are counted page by page up to the
cap; patients are told apart by a keyed hash held in memory for the duration of one count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pacsguard.scan.model import Exposure, HttpInfo, as_count
from pacsguard.scan.products import VIEWERS
from pacsguard.scan.web import Reply, Web

DICOMWEB_ROOTS = ("/dicom-web", "/dicomweb", "/wado-rs")
DICOM_JSON = "application/dicom+json, application/json"
PAGE = 100
OPEN = (200, 204)


@dataclass
class WebFacts:
    """What a pass over the web APIs learned; ``exposure`` set when data could be counted."""

    product: str | None = None
    version: str | None = None
    medical: bool = False
    locked: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    exposure: Exposure | None = None


def _note(info: HttpInfo, path: str, reply: Reply | None) -> int | None:
    if reply is None:
        return None
    info.endpoints[path] = reply.status
    return reply.status


def orthanc(web: Web, info: HttpInfo, facts: WebFacts, cap: int) -> None:
    reply = web.get("/system")
    status = _note(info, "/system", reply)
    if reply is not None and status == 401 and "orthanc" in (reply.realm or "").lower():
        facts.product, facts.medical = "orthanc", True
        facts.locked.append("orthanc-rest")
        return
    body = reply.json() if reply is not None and status == 200 else None
    if not (isinstance(body, dict) and "DicomAet" in body and "Version" in body):
        return
    facts.product, facts.medical = "orthanc", True
    facts.version = str(body.get("Version"))
    info.dicom_aet = str(body.get("DicomAet"))
    port = body.get("DicomPort")
    info.dicom_port = port if isinstance(port, int) else None
    facts.opened.append("orthanc-rest")
    stats_reply = web.get("/statistics")
    stats = (
        stats_reply.json()
        if _note(info, "/statistics", stats_reply) == 200 and stats_reply
        else None
    )
    if isinstance(stats, dict) and facts.exposure is None:
        facts.exposure = Exposure(
            patients=as_count(stats.get("CountPatients")),
            studies=as_count(stats.get("CountStudies")),
            series=as_count(stats.get("CountSeries")),
            instances=as_count(stats.get("CountInstances")),
            source="orthanc-rest",
        )


def dcm4chee(web: Web, info: HttpInfo, facts: WebFacts, cap: int) -> None:
    reply = web.get("/dcm4chee-arc/aets", accept="application/json")
    status = _note(info, "/dcm4chee-arc/aets", reply)
    if status in (401, 403) and reply is not None and _dcm4chee_page(reply):
        facts.product, facts.medical = facts.product or "dcm4chee", True
        facts.locked.append("dcm4chee-rs")
        return
    body = reply.json() if reply is not None and status == 200 else None
    if not isinstance(body, list):
        return
    titles = [
        str(e.get("dicomAETitle")) for e in body if isinstance(e, dict) and e.get("dicomAETitle")
    ]
    if not titles:
        return
    facts.product, facts.medical = "dcm4chee", True
    facts.opened.append("dcm4chee-rs")
    totals: dict[str, int | None] = {}
    for level in ("patients", "studies", "series", "instances"):
        counts = [_dcm4chee_count(web, info, aet, level) for aet in titles[:8]]
        totals[level] = max((c for c in counts if c is not None), default=None)
    if facts.exposure is None and totals["studies"] is not None:
        facts.exposure = Exposure(
            patients=totals["patients"],
            studies=totals["studies"],
            series=totals["series"],
            instances=totals["instances"],
            source="dcm4chee-count",
        )


def _dcm4chee_page(reply: Reply) -> bool:
    return (
        b"dcm4chee" in reply.body.lower()
        or "keycloak" in reply.headers.get("www-authenticate", "").lower()
    )


def _dcm4chee_count(web: Web, info: HttpInfo, aet: str, level: str) -> int | None:
    path = f"/dcm4chee-arc/aets/{quote(aet, safe='')}/rs/{level}/count"
    reply = web.get(path, accept="application/json")
    body = (
        reply.json()
        if _note(info, f"/dcm4chee-arc/aets/*/rs/{level}/count", reply) == 200 and reply
        else None
    )
    return as_count(body.get("count")) if isinstance(body, dict) else None


def dicomweb(web: Web, info: HttpInfo, facts: WebFacts, cap: int) -> None:
    for root in DICOMWEB_ROOTS:
        path = f"{root}/studies"
        reply = web.get(path, params={"limit": 1}, accept=DICOM_JSON)
        status = _note(info, path, reply)
        if reply is None or status is None:
            continue
        if status == 401 and facts.product is not None:
            facts.locked.append("dicomweb")
            return
        if status == 204 or (status == 200 and isinstance(reply.json(), list)):
            facts.medical = True
            facts.opened.append("dicomweb")
            if facts.exposure is None:
                facts.exposure = qido_count(web, path, cap)
            elif facts.exposure.source == "orthanc-rest":
                facts.exposure.source = "orthanc-rest+dicomweb"
            return


def qido_count(web: Web, path: str, cap: int) -> Exposure:
    """Page through QIDO-RS studies up to ``cap``; ``capped`` when more remain."""
    salt = secrets.token_bytes(16)
    patients: set[bytes] = set()
    studies = series = instances = 0
    sums_known = True
    offset = 0
    capped = False
    while True:
        limit = min(PAGE, cap - offset)
        if limit <= 0:
            probe = web.get(path, params={"limit": 1, "offset": offset}, accept=DICOM_JSON)
            extra = probe.json() if probe is not None and probe.status == 200 else None
            capped = isinstance(extra, list) and len(extra) > 0
            break
        params = {"limit": limit, "offset": offset, "includefield": ["00201206", "00201208"]}
        reply = web.get(path, params=params, accept=DICOM_JSON)
        rows = reply.json() if reply is not None and reply.status == 200 else []
        if not isinstance(rows, list):
            break
        for row in rows:
            studies += 1
            pid = _value(row, "00100020")
            if pid is not None:
                patients.add(hmac.new(salt, str(pid).encode(), hashlib.sha256).digest())
            n_series = as_count(_value(row, "00201206"))
            n_instances = as_count(_value(row, "00201208"))
            sums_known &= n_series is not None and n_instances is not None
            series += n_series or 0
            instances += n_instances or 0
        offset += len(rows)
        if len(rows) < limit:
            break
    exposure = Exposure(
        patients=len(patients) if studies else 0,
        studies=studies,
        series=series if sums_known else None,
        instances=instances if sums_known else None,
        capped=capped,
        source="dicomweb-qido",
    )
    patients.clear()
    return exposure


def _value(row: Any, tag: str) -> Any:
    if not isinstance(row, dict):
        return None
    element = row.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return values[0] if isinstance(values, list) and values else None


def viewers(web: Web, info: HttpInfo, facts: WebFacts, root: Reply | None) -> None:
    found: list[str] = []
    for viewer in VIEWERS:
        if viewer.name in found:
            continue
        reply = root if viewer.path == "/" else web.get(viewer.path)
        if reply is None or reply.status != 200:
            continue
        text = reply.body[:200_000].decode("utf-8", "replace").lower()
        if any(marker in text for marker in viewer.markers):
            found.append(viewer.name)
    info.viewers = found
    if found:
        facts.medical = True
        facts.opened.append("viewer")
