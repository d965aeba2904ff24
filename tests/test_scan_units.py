"""pacsguard.scan without servers: targets, ports, rate limits, grading, certificates, history."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pacsguard.scan import Exposure, Finding, ScanResult, TargetError, expand_targets, parse_ports
from pacsguard.scan.discover import open_ports
from pacsguard.scan.grade import grade
from pacsguard.scan.history import History
from pacsguard.scan.model import AssocAttempt, DicomInfo, HttpInfo, TlsInfo
from pacsguard.scan.ratelimit import RateLimits, TokenBucket
from pacsguard.scan.targets import DEFAULT_PORTS, read_scope
from pacsguard.scan.tls import certificate_facts


def test_default_ports_are_the_published_ones() -> None:
    assert DEFAULT_PORTS == (104, 11112, 4242, 2761, 2762, 8042, 80, 443, 8080)


def test_ports_take_lists_and_ranges() -> None:
    assert parse_ports("104, 4242,8000-8002,104") == [104, 4242, 8000, 8001, 8002]
    assert parse_ports("1-3") == [1, 2, 3]


@pytest.mark.parametrize("text", ["0", "70000", "abc", "10-5", "", "1-", "80-x"])
def test_bad_port_lists_are_clear_errors(text: str) -> None:
    with pytest.raises(TargetError, match="port"):
        parse_ports(text)


def test_targets_expand_ranges_and_honour_exclusions() -> None:
    assert expand_targets(["127.0.0.0/30"]) == ["127.0.0.1", "127.0.0.2"]
    assert expand_targets(["127.0.0.1/32", "127.0.0.1"]) == ["127.0.0.1"]
    assert expand_targets(["127.0.0.0/29"], exclude=["127.0.0.4/30", "127.0.0.1"]) == [
        "127.0.0.2",
        "127.0.0.3",
    ]
    assert expand_targets(["localhost"]) == ["127.0.0.1"]


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "300.1.1.1", "10.1.2", "1.2.3.4/x"])
def test_bad_targets_are_clear_errors(bad: str) -> None:
    with pytest.raises(TargetError, match="not a valid address or CIDR"):
        expand_targets([bad])


def test_huge_ranges_are_refused() -> None:
    with pytest.raises(TargetError, match="split it"):
        expand_targets(["10.0.0.0/8"])


def test_scope_file_has_comments_and_commas(tmp_path: Path) -> None:
    scope = tmp_path / "scope.txt"
    scope.write_text("# radiology\n127.0.0.1, 127.0.0.2  # two hosts\n\n127.0.1.0/31\n")
    assert read_scope(scope) == ["127.0.0.1", "127.0.0.2", "127.0.1.0/31"]
    with pytest.raises(TargetError, match="scope file"):
        read_scope(tmp_path / "missing.txt")


def test_token_bucket_paces_connections() -> None:
    bucket = TokenBucket(rate=200, burst=1)
    start = time.monotonic()
    for _ in range(41):
        bucket.acquire()
    assert time.monotonic() - start >= 0.18


def test_connect_sweep_finds_only_listening_ports() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            closed_port = spare.getsockname()[1]
        checked: list[int] = []
        found = open_ports(
            "127.0.0.1", [closed_port, open_port], RateLimits(1000, 1000), 2.0, checked.append
        )
    assert found == [open_port]
    assert sorted(checked) == sorted([closed_port, open_port])


def _dicom(access: str, find: str | None, *, service: str = "dicom", echo: bool = True) -> Finding:
    info = DicomInfo(attempts=[AssocAttempt("ANY-SCP", "accepted")], echo=echo, find=find)  # type: ignore[arg-type]
    exposed = Exposure(1, 2, 3, 4) if find == "answered" else Exposure()
    finding = Finding("127.0.0.1", 104, service, product="orthanc", medical=True, dicom=info)  # type: ignore[arg-type]
    finding.access = access  # type: ignore[assignment]
    finding.exposed = exposed
    if access != "none":
        finding.ae_titles = ["ANY-SCP" if access == "anonymous" else "ORTHANC"]
    return grade(finding)


def test_dicom_severities() -> None:
    assert _dicom("anonymous", "answered").severity == "critical"
    assert _dicom("guessed-ae-title", "answered").severity == "high"
    assert _dicom("anonymous", "not-offered").severity == "medium"
    assert _dicom("anonymous", "refused").severity == "medium"
    assert _dicom("guessed-ae-title", "refused").severity == "low"
    assert _dicom("none", None).severity == "info"


def test_plain_dicom_answering_queries_is_flagged_and_tls_is_not() -> None:
    assert "cleartext-dicom" in _dicom("anonymous", "answered").issues
    assert "cleartext-dicom" not in _dicom("anonymous", "answered", service="dicom-tls").issues


def test_orthanc_remediation_names_the_settings() -> None:
    text = " ".join(_dicom("anonymous", "answered").remediation)
    for setting in (
        "DicomCheckCalledAet",
        "DicomModalities",
        "DicomAlwaysAllowFind",
        "DicomTlsEnabled",
    ):
        assert setting in text
    web = Finding("127.0.0.1", 8042, "http", product="orthanc", medical=True)
    web.http = HttpInfo(open_apis=["orthanc-rest"])
    web.access = "default-credentials"
    web.exposed = Exposure(1, 1, 1, 1)
    graded = grade(web)
    assert graded.severity == "high"
    assert any("AuthenticationEnabled" in t for t in graded.remediation)
    assert any("orthanc:orthanc" in t for t in graded.remediation)


def test_an_exposed_dicom_service_is_told_to_put_the_guard_in_front(tmp_path: Path) -> None:
    import tomllib

    from pacsguard.guard import parse_config
    from pacsguard.scan.reports.html import render_html

    for access, find, title in (
        ("anonymous", "answered", "PACS"),  # the probe's generic title is no client's
        ("anonymous", "not-offered", "PACS"),
        ("guessed-ae-title", "answered", "ORTHANC"),  # clients call the title that opened it
    ):
        finding = _dicom(access, find)
        fix = finding.remediation[-1]
        assert "pacsguard guard" in fix and "127.0.0.1:104" in fix, fix
        assert ("--ae-title ORTHANC" in fix) == (title == "ORTHANC")
        assert finding.guard_config is not None
        config = parse_config(tomllib.loads(finding.guard_config), tmp_path / "guard.toml")
        assert (config.host, config.port, config.ae_title) == ("127.0.0.1", 104, title)
        assert config.upstream.port != 104 and config.clients == ()
        assert finding.to_dict()["guard_config"] == finding.guard_config
    locked = _dicom("none", None)
    assert locked.guard_config is None
    assert not any("pacsguard guard" in fix for fix in locked.remediation)
    web = Finding("127.0.0.1", 8042, "http", product="orthanc", medical=True)
    web.http = HttpInfo(open_apis=["orthanc-rest"])
    web.exposed = Exposure(1, 1, 1, 1)
    web.access = "anonymous"
    assert grade(web).guard_config is None  # the guard is a DIMSE proxy, not a web one
    exposed = _dicom("anonymous", "answered")
    result = ScanResult("t0", "t1", ["127.0.0.1"], 1, 1, [exposed, locked])
    page = render_html(result)
    assert page.count('class="guard-config"') == 1 and "[guard.upstream]" in page


def test_the_guard_config_of_a_hostile_ae_title_stays_valid(tmp_path: Path) -> None:
    import tomllib

    from pacsguard.guard import parse_config
    from pacsguard.guard.snippet import config_snippet

    for title in ('A"B', "X\\Y", "TOO-LONG-A-TITLE-FOR-DICOM", "LINE\n[guard.upstream]"):
        text = config_snippet("10.0.0.1", 104, title)
        config = parse_config(tomllib.loads(text), tmp_path / "guard.toml")
        assert config.ae_title in (title, "PACS")
        assert config.upstream.host == "10.0.0.1" and config.clients == ()


def test_http_severities() -> None:
    def web(access: str, *, exposed: bool, open_apis: list[str], medical: bool = True) -> str:
        finding = Finding("127.0.0.1", 80, "http", medical=medical)
        finding.http = HttpInfo(open_apis=open_apis)
        finding.access = access  # type: ignore[assignment]
        finding.exposed = Exposure(1, 1, 1, 1) if exposed else Exposure()
        return grade(finding).severity

    assert web("anonymous", exposed=True, open_apis=["dicomweb"]) == "critical"
    assert web("default-credentials", exposed=True, open_apis=[]) == "high"
    assert web("none", exposed=False, open_apis=["viewer"]) == "medium"
    assert web("none", exposed=False, open_apis=[]) == "info"
    assert web("none", exposed=False, open_apis=[], medical=False) == "info"


def _certificate(tmp: Path, *, days: int, self_signed: bool) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pacs.example")])
    issuer_key = key if self_signed else rsa.generate_private_key(65537, 2048)
    issuer = subject if self_signed else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_facts(tmp_path: Path) -> None:
    expired = certificate_facts(_certificate(tmp_path, days=-3, self_signed=True))
    assert expired.self_signed and expired.expired
    assert (
        expired.subject_cn == "pacs.example"
        and expired.key_type == "ec"
        and expired.key_bits == 256
    )
    signed = certificate_facts(_certificate(tmp_path, days=90, self_signed=False))
    assert not signed.self_signed and not signed.expired and 88 <= signed.days_left <= 90
    assert signed.issuer_cn == "CA"


def test_tls_issues_are_reported() -> None:
    finding = Finding("127.0.0.1", 2762, "tls")
    finding.tls = TlsInfo("TLSv1", "AES128-SHA", client_cert_required=True)
    assert grade(finding).issues == ["tls-client-certificate-required", "legacy-tls"]


def _result(*findings: Finding) -> ScanResult:
    return ScanResult(
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:01:00+00:00",
        ["127.0.0.1"],
        1,
        3,
        list(findings),
    )


def test_history_diff_tells_new_fixed_worse_and_changed(tmp_path: Path) -> None:
    first = [
        _dicom("anonymous", "answered"),
        grade(Finding("127.0.0.1", 8080, "http")),
        _dicom("none", None),
    ]
    first[2].port = 11112
    second = [_dicom("anonymous", "answered"), _dicom("guessed-ae-title", "answered")]
    second[0].exposed = Exposure(1, 3, 3, 5)
    second[1].port = 11112
    extra = _dicom("anonymous", "not-offered")
    extra.port = 4242
    second.append(extra)
    db = tmp_path / "history.sqlite"
    with History(db) as history:
        a = history.record(_result(*first), [104, 8080, 11112, 4242])
        b = history.record(_result(*second), [104, 8080, 11112, 4242])
        diff = history.diff()
        assert [s.id for s in history.scans()] == [a, b]
    assert (diff.base, diff.head) == (a, b)
    assert [c.key for c in diff.new] == ["127.0.0.1:4242/dicom"]
    assert [c.key for c in diff.fixed] == ["127.0.0.1:8080/http"]
    assert [c.key for c in diff.worse] == ["127.0.0.1:11112/dicom"]
    assert [c.key for c in diff.changed] == ["127.0.0.1:104/dicom"]
    assert diff.to_dict()["worse"][0]["severity_before"] == "info"


def test_hosts_are_scanned_in_parallel_and_ports_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No traffic: target expansion, the sweep and the port checks are replaced."""
    import threading

    from pacsguard.scan import engine

    hosts = [f"host-{i}.invalid" for i in range(6)]
    lock = threading.Lock()
    state = {"hosts_now": 0, "hosts_most": 0}
    per_host: dict[str, int] = {}
    per_host_most: dict[str, int] = {}

    def sweep(
        host: str, ports: list[int], limits: object, timeout: float, on_done: object
    ) -> list[int]:
        with lock:
            state["hosts_now"] += 1
            state["hosts_most"] = max(state["hosts_most"], state["hosts_now"])
        time.sleep(0.2)
        with lock:
            state["hosts_now"] -= 1
        return list(ports)

    def examine(host: str, port: int, checks: object, limits: object) -> Finding:
        with lock:
            per_host[host] = per_host.get(host, 0) + 1
            per_host_most[host] = max(per_host_most.get(host, 0), per_host[host])
        time.sleep(0.01)
        with lock:
            per_host[host] -= 1
        return Finding(host, port, "unknown")

    monkeypatch.setattr(engine, "expand_targets", lambda targets, exclude: list(targets))
    monkeypatch.setattr(engine, "open_ports", sweep)
    monkeypatch.setattr(engine, "examine", examine)
    start = time.monotonic()
    result = engine.scan(hosts, engine.ScanOptions(ports=[1, 2, 3], max_hosts=6))
    assert time.monotonic() - start < 1.0  # six 0.2 s sweeps side by side, not one after another
    assert state["hosts_most"] >= 3
    assert set(per_host_most.values()) == {1}
    assert len(result.findings) == 18 and result.hosts == 6


def test_a_failing_probe_is_a_finding_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from pacsguard.scan import engine

    def broken(host: str, port: int, checks: object, limits: object) -> Finding:
        raise RuntimeError("peer sent nonsense")

    monkeypatch.setattr(engine, "expand_targets", lambda targets, exclude: list(targets))
    monkeypatch.setattr(engine, "open_ports", lambda host, ports, *rest, **kw: list(ports))
    monkeypatch.setattr(engine, "examine", broken)
    (finding,) = engine.scan(["odd.invalid"], engine.ScanOptions(ports=[104])).findings
    assert (finding.service, finding.severity, finding.issues) == (
        "unknown",
        "info",
        ["probe-failed"],
    )


def test_reports_escape_what_servers_chose(tmp_path: Path) -> None:
    from pacsguard.scan.reports import render_html
    from pacsguard.scan.reports.csvout import render_csv

    finding = grade(Finding("127.0.0.1", 8042, "http", product="orthanc", version="=HYPERLINK(1)"))
    finding.summary = "<script>alert(1)</script>"
    result = _result(finding)
    assert "'=HYPERLINK(1)" in render_csv(result)
    html = render_html(result)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_report_repeats_only_modality_defined_terms() -> None:
    """A PACS whose Modalities in Study held a patient's name had it copied into the table,
    the JSON, the HTML and the history (campaign D, 08): counts only, and the codes."""
    from pacsguard.scan.count import _modalities

    rows = [
        {"ModalitiesInStudy": "CT\\SR"},
        {"ModalitiesInStudy": ["MR", "SECRET^PATIENT"]},
        {"ModalitiesInStudy": "DUPONT JEAN"},
        {"ModalitiesInStudy": None},
    ]
    assert _modalities(rows) == ["CT", "MR", "SR", "other (2)"]


def test_a_query_trickling_its_answers_is_left_at_its_time() -> None:
    """An SCP sending one C-FIND response every 1.5 s kept `scan --timeout 2` reading for
    hours (the timeout bounded each wait, not the query): the count so far is kept as "at
    least" (campaign D, 06)."""
    import time
    from types import SimpleNamespace

    from pydicom.dataset import Dataset

    from pacsguard.scan.count import Finder

    aborted: list[bool] = []

    def trickle(query: object, model: str, msg_id: int) -> object:
        while True:
            time.sleep(0.05)
            yield SimpleNamespace(Status=0xFF00), Dataset()

    assoc = SimpleNamespace(
        accepted_contexts=[], is_established=True, send_c_find=trickle,
        abort=lambda: aborted.append(True), send_c_cancel=lambda *a, **k: None,
        _reactor_checkpoint=SimpleNamespace(is_set=lambda: True), _is_paused=False,
    )  # fmt: skip
    finder = Finder(assoc, 10_000, seconds=0.4)
    started = time.monotonic()
    answer = finder.find("1.2", Dataset(), (), 10_000)
    assert answer.outcome == "capped" and aborted == [True] and 2 <= len(answer.rows) <= 12
    assert time.monotonic() - started < 3


def test_a_body_trickling_in_is_no_answer_after_its_time() -> None:
    """An HTTP server sending a byte a second kept `scan --timeout 2` reading up to its 4 MiB
    limit (httpx's timeout is per read) (campaign D, 07)."""
    import time

    import httpx

    from pacsguard.scan.ratelimit import RateLimits
    from pacsguard.scan.web import Web

    class Drip(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            while True:
                time.sleep(0.05)
                yield b"{"

    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Drip()))
    with Web("127.0.0.1", 8042, "http", 0.05, RateLimits(1000, 1000), transport) as web:
        started = time.monotonic()
        assert web.get("/statistics") is None
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("value", "count"),
    [(12, 12), ("12", 12), (" 7 ", 7), (-5, None), ("-5", None), ("9" * 300, None),
     (True, None), ("1.5", None), (None, None), (0, 0)],
)  # fmt: skip
def test_only_a_count_is_reported_as_one(value: object, count: int | None) -> None:
    """An Orthanc-style /statistics reply of "-5 studies" or a 300-digit series count was
    printed as given (campaign D): a report repeats counts, never other claims."""
    from pacsguard.scan.model import as_count

    assert as_count(value) == count
