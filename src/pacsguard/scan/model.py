"""What a scan finds: typed, JSON-ready records that never hold a value read from patient data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "high", "medium", "low", "info"]
Access = Literal["anonymous", "default-credentials", "guessed-ae-title", "none"]
Service = Literal["dicom", "dicom-tls", "http", "https", "tls", "unknown"]

SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

MAX_COUNT = 10**12  # more patients, studies or images than any archive holds: not a count


def as_count(value: Any) -> int | None:
    """A count a server reported, or None when it is not one (negative, absurdly large, not
    a whole number): a report repeats counts, never what a server claims beyond them."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= MAX_COUNT else None


@dataclass
class Exposure:
    """How much a service hands out; ``None`` means unknown, ``capped`` means "at least"."""

    patients: int | None = None
    studies: int | None = None
    series: int | None = None
    instances: int | None = None
    capped: bool = False
    source: str | None = None
    modalities: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return any(
            v is not None for v in (self.patients, self.studies, self.series, self.instances)
        )


@dataclass
class AssocAttempt:
    """One A-ASSOCIATE request: the called AE title tried and what came back."""

    called_ae: str
    outcome: Literal["accepted", "rejected", "aborted", "no-answer"]
    result: str | None = None
    source: str | None = None
    reason: str | None = None


@dataclass
class Certificate:
    """Facts about a server certificate (a server's, never a patient's)."""

    subject_cn: str | None
    issuer_cn: str | None
    self_signed: bool
    not_before: str
    not_after: str
    expired: bool
    days_left: int
    key_type: str
    key_bits: int | None
    sha256: str


@dataclass
class TlsInfo:
    version: str | None
    cipher: str | None
    client_cert_required: bool = False
    certificate: Certificate | None = None


@dataclass
class DicomInfo:
    """What the DIMSE checks learned."""

    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    attempts: list[AssocAttempt] = field(default_factory=list)
    echo: bool | None = None
    find: Literal["answered", "refused", "not-offered"] | None = None
    query_models: list[str] = field(default_factory=list)


@dataclass
class HttpInfo:
    """What the web checks learned (status codes and product facts, no data)."""

    status: int | None = None
    server: str | None = None
    auth_required: bool = False
    realm: str | None = None
    endpoints: dict[str, int] = field(default_factory=dict)
    open_apis: list[str] = field(default_factory=list)
    locked_apis: list[str] = field(default_factory=list)
    viewers: list[str] = field(default_factory=list)
    dicom_port: int | None = None
    dicom_aet: str | None = None
    default_user: str | None = None


@dataclass
class Finding:
    """One open service on one host:port."""

    host: str
    port: int
    service: Service
    product: str | None = None
    version: str | None = None
    medical: bool = False
    severity: Severity = "info"
    access: Access = "none"
    ae_titles: list[str] = field(default_factory=list)
    exposed: Exposure = field(default_factory=Exposure)
    issues: list[str] = field(default_factory=list)
    remediation: list[str] = field(default_factory=list)
    guard_config: str | None = None  # a starting guard.toml, for an exposed DICOM service
    tls: TlsInfo | None = None
    dicom: DicomInfo | None = None
    http: HttpInfo | None = None
    summary: str = ""

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}/{self.service}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScanResult:
    """Every finding of one scan, plus what was swept."""

    started: str
    finished: str
    targets: list[str]
    hosts: int
    ports: int
    findings: list[Finding]
    scan_id: int | None = None
    swept_hosts: list[str] = field(default_factory=list)  # every address the sweep tried

    def by_severity(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts
