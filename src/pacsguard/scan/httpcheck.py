"""One HTTP(S) port: which PACS web API or viewer answers, and how much it shows."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from pacsguard.scan import webapi
from pacsguard.scan.model import Access, Exposure, Finding, HttpInfo, Service
from pacsguard.scan.products import DEFAULT_CREDENTIALS
from pacsguard.scan.ratelimit import RateLimits
from pacsguard.scan.web import Web


@dataclass(frozen=True)
class HttpSettings:
    timeout: float
    cap: int
    try_default_credentials: bool = False
    transport: httpx.BaseTransport | None = None  # another HTTP transport (tests, proxies)


def _probe_apis(web: Web, info: HttpInfo, facts: webapi.WebFacts, cap: int) -> None:
    webapi.orthanc(web, info, facts, cap)
    if facts.product is None:
        webapi.dcm4chee(web, info, facts, cap)
    webapi.dicomweb(web, info, facts, cap)


def _candidates(product: str | None) -> list[tuple[str, str]]:
    pairs = list(DEFAULT_CREDENTIALS.get(product or "", ()))
    pairs += [p for p in DEFAULT_CREDENTIALS["*"] if p not in pairs]
    return pairs


def _with_default_credentials(web: Web, info: HttpInfo, facts: webapi.WebFacts, cap: int) -> bool:
    """Try the product's published default accounts; keep the first that opens an API."""
    for user, password in _candidates(facts.product):
        web.auth = (user, password)
        trial, trial_info = webapi.WebFacts(), HttpInfo()
        _probe_apis(web, trial_info, trial, cap)
        web.auth = None
        if trial.exposure is not None or trial.opened:
            facts.product = facts.product or trial.product
            facts.version = trial.version or facts.version
            facts.medical = facts.medical or trial.medical
            facts.exposure = trial.exposure
            info.default_user = user
            info.dicom_port = trial_info.dicom_port
            info.dicom_aet = trial_info.dicom_aet
            return True
    return False


def check_http(
    host: str, port: int, tls: bool, settings: HttpSettings, limits: RateLimits
) -> Finding | None:
    """``None`` when the port does not answer HTTP."""
    scheme: Service = "https" if tls else "http"
    access: Access = "none"
    with Web(host, port, scheme, settings.timeout, limits, settings.transport) as web:
        root = web.get("/")
        if root is None:
            return None
        info = HttpInfo(
            status=root.status,
            server=root.headers.get("server"),
            auth_required=root.status == 401,
            realm=root.realm,
        )
        facts = webapi.WebFacts()
        _probe_apis(web, info, facts, settings.cap)
        webapi.viewers(web, info, facts, root)
        if facts.exposure is not None:
            access = "anonymous"
        elif (
            settings.try_default_credentials
            and (facts.locked or info.auth_required)
            and _with_default_credentials(web, info, facts, settings.cap)
        ):
            access = "default-credentials"
    info.open_apis = facts.opened
    info.locked_apis = facts.locked
    return Finding(
        host=host,
        port=port,
        service=scheme,
        product=facts.product,
        version=facts.version,
        medical=facts.medical,
        access=access,
        exposed=facts.exposure or Exposure(),
        http=info,
    )
