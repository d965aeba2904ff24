"""The scan: hosts in parallel, each host's ports one at a time, every connection rate-limited."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pacsguard.scan.dimse import DicomSettings
from pacsguard.scan.discover import open_ports
from pacsguard.scan.examine import PortChecks, examine
from pacsguard.scan.grade import grade
from pacsguard.scan.httpcheck import HttpSettings
from pacsguard.scan.model import Finding, ScanResult
from pacsguard.scan.products import CALLING_AE, COMMON_AE_TITLES
from pacsguard.scan.ratelimit import RateLimits
from pacsguard.scan.targets import DEFAULT_PORTS, expand_targets, read_scope

LOGGER = logging.getLogger("pacsguard.scan")


@dataclass(frozen=True)
class ScanOptions:
    """How to scan. Defaults are polite: a few dozen connections per second per host."""

    ports: Sequence[int] = DEFAULT_PORTS
    scope: Path | None = None
    exclude: Sequence[str] = ()
    check_default_credentials: bool = False
    calling_ae: str = CALLING_AE
    ae_titles: Sequence[str] = COMMON_AE_TITLES
    timeout: float = 5.0
    rate: float = 200.0
    host_rate: float = 50.0
    max_hosts: int = 32
    cap: int = 10_000
    db: Path | None = None


class Progress:
    """Hooks a front end overrides to show progress; called from worker threads."""

    def start(self, hosts: int, ports_per_host: int) -> None: ...

    def port_checked(self, host: str, port: int) -> None: ...

    def service_found(self, host: str, port: int) -> None: ...

    def finding(self, finding: Finding) -> None: ...

    def host_done(self, host: str) -> None: ...


@dataclass
class _HostJob:
    host: str
    options: ScanOptions
    limits: RateLimits
    progress: Progress
    findings: list[Finding] = field(default_factory=list)

    def run(self) -> list[Finding]:
        o = self.options
        checks = PortChecks(
            dicom=DicomSettings(o.calling_ae, o.timeout),
            http=HttpSettings(o.timeout, o.cap, o.check_default_credentials),
            ae_titles=tuple(o.ae_titles),
            cap=o.cap,
            timeout=o.timeout,
        )
        try:
            ports = open_ports(
                self.host,
                o.ports,
                self.limits,
                o.timeout,
                on_done=lambda port: self.progress.port_checked(self.host, port),
            )
        except OSError as exc:  # no route, no IPv6 here...: the host is simply not reachable
            LOGGER.info("host %s not swept: %s", self.host, exc.__class__.__name__)
            ports = []
        for port in ports:  # one service at a time per host: one association at a time
            self.progress.service_found(self.host, port)
            self.findings.append(grade(self._examine(port, checks)))
        _link_products(self.findings)
        for finding in self.findings:
            self.progress.finding(finding)
        self.progress.host_done(self.host)
        return self.findings

    def _examine(self, port: int, checks: PortChecks) -> Finding:
        """One odd service must not end the scan of every other host."""
        try:
            return examine(self.host, port, checks, self.limits)
        except Exception as exc:
            LOGGER.warning("%s:%s: probe failed (%s)", self.host, port, exc.__class__.__name__)
            finding = Finding(self.host, port, "unknown")
            finding.issues.append("probe-failed")
            return finding


def _link_products(findings: list[Finding]) -> None:
    """An Orthanc REST API names its DICOM port: that DICOM finding is Orthanc too."""
    by_port = {f.port: f for f in findings if f.service in ("dicom", "dicom-tls")}
    for finding in findings:
        info = finding.http
        if info is None or finding.product != "orthanc" or info.dicom_port is None:
            continue
        dicom = by_port.get(info.dicom_port)
        if dicom is not None and dicom.product in (None, "dcmtk", "orthanc"):
            dicom.product, dicom.version = "orthanc", finding.version
            grade(dicom)


def _sort_key(finding: Finding) -> tuple[int, int, str, int]:
    try:
        ip = ipaddress.ip_address(finding.host)
        return (ip.version, int(ip), "", finding.port)
    except ValueError:
        return (9, 0, finding.host, finding.port)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def scan(
    targets: Sequence[str],
    options: ScanOptions | None = None,
    *,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan hosts and CIDR ranges; returns graded findings (and records them if ``options.db``)."""
    options = options or ScanOptions()
    progress = progress or Progress()
    wanted = list(targets) + (read_scope(options.scope) if options.scope else [])
    hosts = expand_targets(wanted, options.exclude)
    limits = RateLimits(options.rate, options.host_rate)
    started = _now()
    progress.start(len(hosts), len(options.ports))
    findings: list[Finding] = []
    workers = max(1, min(options.max_hosts, len(hosts)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pacsguard-scan")
    try:
        jobs = [_HostJob(host, options, limits, progress) for host in hosts]
        for result in pool.map(_HostJob.run, jobs):
            findings.extend(result)
    except BaseException:  # Ctrl-C: drop the hosts not started rather than sweep them all
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    findings.sort(key=_sort_key)
    outcome = ScanResult(
        started=started,
        finished=_now(),
        targets=wanted,
        hosts=len(hosts),
        ports=len(options.ports),
        findings=findings,
        swept_hosts=list(hosts),
    )
    if options.db is not None:
        from pacsguard.scan.history import History

        with History(options.db) as history:
            outcome.scan_id = history.record(outcome, options.ports)
    return outcome
