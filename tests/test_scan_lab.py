"""`pacsguard scan` against real servers on 127.0.0.1: Orthanc (open, default credentials,
locked), dcmqrscp (any peer, one peer), storescp (plain, TLS), plain web servers and a
closed port, each loaded with `pacsguard sample` data. Every count is asserted exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pacsguard.lab import Lab
from pacsguard.lab.dcmtk import start_storescp
from pacsguard.lab.procs import free_ports
from pacsguard.scan import ScanOptions, scan
from pacsguard.scan.ratelimit import RateLimits
from pacsguard.scan.web import Web
from pacsguard.scan.webapi import qido_count

PACSGUARD = str(Path(sys.executable).with_name("pacsguard"))


@dataclass
class CliScan:
    outputs: dict[str, Path]
    db: Path
    stdout: str
    stderr: str
    report: dict[str, Any]

    def finding(self, port: int) -> dict[str, Any]:
        (match,) = [f for f in self.report["findings"] if f["port"] == port]
        return match


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [PACSGUARD, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("scan-lab")) as running:
        yield running


@pytest.fixture(scope="module")
def full_scan(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> CliScan:
    out = tmp_path_factory.mktemp("scan-out")
    outputs = {kind: out / f"report.{kind}" for kind in ("json", "html", "sarif", "csv")}
    db = out / "history.sqlite"
    ports = ",".join(str(p) for p in lab.ports)
    done = _cli(
        "scan",
        lab.host,
        "--ports",
        ports,
        "--check-default-credentials",
        "--timeout",
        "3",
        "--db",
        str(db),
        *(f"--{kind}={path}" for kind, path in outputs.items()),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(outputs["json"].read_text())
    return CliScan(outputs, db, done.stdout, done.stderr, report)


def test_every_service_is_found_and_graded(lab: Lab, full_scan: CliScan) -> None:
    assert sorted(f["port"] for f in full_scan.report["findings"]) == sorted(
        e.port for e in lab.expected
    )
    for expected in lab.expected:
        finding = full_scan.finding(expected.port)
        got = (finding["service"], finding["product"], finding["severity"], finding["access"])
        severity = expected.severity_with_credentials or expected.severity
        access = "default-credentials" if expected.severity_with_credentials else expected.access
        assert got == (expected.service, expected.product, severity, access), expected.name
        assert tuple(finding["ae_titles"]) == expected.ae_titles, expected.name
        assert finding["medical"] is expected.medical, expected.name
        assert finding["host"] == "127.0.0.1"


def test_every_count_is_exact(lab: Lab, full_scan: CliScan) -> None:
    totals = lab.totals
    for expected in lab.expected:
        exposed = full_scan.finding(expected.port)["exposed"]
        counts = (exposed["patients"], exposed["studies"], exposed["series"], exposed["instances"])
        if expected.exposes_all or expected.severity_with_credentials:
            want = (totals.patients, totals.studies, totals.series, totals.instances)
            assert counts == want, expected.name
        else:
            assert counts == (None, None, None, None), expected.name
        assert exposed["capped"] is False, expected.name


def test_closed_port_gives_no_finding(lab: Lab, full_scan: CliScan) -> None:
    assert lab.closed_port in lab.ports
    assert all(f["port"] != lab.closed_port for f in full_scan.report["findings"])


def test_dicom_details(lab: Lab, full_scan: CliScan) -> None:
    open_dicom = full_scan.finding(lab.by_name("orthanc-open-dicom").port)
    assert open_dicom["dicom"]["implementation_class_uid"].startswith("1.2.276.0.7230010.3")
    assert open_dicom["dicom"]["implementation_version_name"].startswith("OFFIS_DCMTK")
    assert open_dicom["dicom"]["echo"] is True and open_dicom["dicom"]["find"] == "answered"
    assert "cleartext-dicom" in open_dicom["issues"]
    assert "DicomAlwaysAllowFind" in " ".join(open_dicom["remediation"])

    default = full_scan.finding(lab.by_name("orthanc-default-dicom").port)
    first = default["dicom"]["attempts"][0]
    assert (first["called_ae"], first["outcome"], first["reason"]) == (
        "ANY-SCP",
        "rejected",
        "called-AE-title-not-recognized",
    )
    assert default["dicom"]["attempts"][1]["outcome"] == "accepted"

    for name in ("orthanc-locked-dicom", "dcmqrscp-one-peer"):
        attempts = full_scan.finding(lab.by_name(name).port)["dicom"]["attempts"]
        assert len(attempts) == 13, name  # ANY-SCP and the twelve common titles
        assert {a["outcome"] for a in attempts} == {"rejected"}, name
        assert all(a["result"] == "rejected-permanent" and a["reason"] for a in attempts), name

    echo = full_scan.finding(lab.by_name("storescp-echo").port)
    assert echo["dicom"]["echo"] is True and echo["dicom"]["find"] == "not-offered"
    assert echo["issues"] == ["accepts-any-ae-title", "c-echo-open", "cleartext-dicom"]
    assert "storescp" in " ".join(echo["remediation"])  # not dcmqrscp's AETable advice
    assert "AETable peers (not ANY)" not in " ".join(echo["remediation"])
    tls = full_scan.finding(lab.by_name("storescp-tls").port)
    assert "cleartext-dicom" not in tls["issues"]


def test_tls_facts(lab: Lab, full_scan: CliScan) -> None:
    for name in ("storescp-tls", "plain-https"):
        tls = full_scan.finding(lab.by_name(name).port)["tls"]
        assert tls["version"] in ("TLSv1.2", "TLSv1.3"), name
        cert = tls["certificate"]
        assert cert["subject_cn"] == "pacsguard-lab" and cert["self_signed"] is True, name
        assert cert["expired"] is False and 28 <= cert["days_left"] <= 30, name
        assert cert["key_type"] == "rsa" and cert["key_bits"] == 2048, name
        assert "self-signed-certificate" in full_scan.finding(lab.by_name(name).port)["issues"]
    assert full_scan.finding(lab.by_name("orthanc-open-dicom").port)["tls"] is None


def test_web_details(lab: Lab, full_scan: CliScan) -> None:
    web = full_scan.finding(lab.by_name("orthanc-open-http").port)
    assert web["version"] and web["version"].startswith("1.")
    assert set(web["http"]["open_apis"]) == {"orthanc-rest", "dicomweb", "viewer"}
    assert {"orthanc-explorer", "orthanc-webviewer"} <= set(web["http"]["viewers"])
    assert web["http"]["dicom_port"] == lab.by_name("orthanc-open-dicom").port
    default = full_scan.finding(lab.by_name("orthanc-default-http").port)
    assert default["http"]["default_user"] == "orthanc"
    assert "default-credentials" in default["issues"]
    locked = full_scan.finding(lab.by_name("orthanc-locked-http").port)
    assert locked["http"]["locked_apis"] == ["orthanc-rest", "dicomweb"]
    assert locked["http"]["default_user"] is None


def test_default_credentials_are_tried_only_when_asked(lab: Lab) -> None:
    port = lab.by_name("orthanc-default-http").port
    (finding,) = scan([lab.host], ScanOptions(ports=[port], timeout=3)).findings
    assert (finding.severity, finding.access, finding.exposed.studies) == ("info", "none", None)
    assert finding.http is not None and finding.http.default_user is None


def test_dicomweb_qido_paging_counts_and_caps(lab: Lab) -> None:
    port = lab.by_name("orthanc-open-http").port
    t = lab.totals
    with Web(lab.host, port, "http", 5, RateLimits(100, 100)) as web:
        full = qido_count(web, "/dicom-web/studies", cap=1000)
        capped = qido_count(web, "/dicom-web/studies", cap=4)
    assert (full.patients, full.studies, full.series, full.instances) == (
        t.patients,
        t.studies,
        t.series,
        t.instances,
    )
    assert full.capped is False
    assert capped.studies == 4 and capped.capped is True


def test_caps_read_at_least(lab: Lab) -> None:
    ports = [lab.by_name("orthanc-open-dicom").port, lab.by_name("dcmqrscp-any").port]
    result = scan([lab.host], ScanOptions(ports=ports, cap=2, timeout=3))
    for finding in result.findings:
        assert finding.exposed.capped is True, finding.port
        assert finding.exposed.studies == 2 and finding.exposed.patients == 2, finding.port
        assert "≥2 studies" in finding.summary


def _leaks(text: str, planted: frozenset[str]) -> list[str]:
    lowered = text.lower()
    return sorted(value for value in planted if value.lower() in lowered)


def test_no_planted_identifier_in_any_output_or_log(
    lab: Lab, full_scan: CliScan, caplog: pytest.LogCaptureFixture
) -> None:
    assert lab.data is not None and len(lab.data.planted) > 50
    texts = {kind: path.read_text() for kind, path in full_scan.outputs.items()}
    texts["stdout"], texts["stderr"] = full_scan.stdout, full_scan.stderr
    with sqlite3.connect(full_scan.db) as db:
        texts["db"] = "\n".join(str(row) for row in db.iterdump())
    texts["db-bytes"] = full_scan.db.read_bytes().decode("latin-1")
    caplog.set_level("DEBUG")
    scan([lab.host], ScanOptions(ports=lab.ports, check_default_credentials=True, timeout=3))
    texts["log"] = "\n".join(r.getMessage() for r in caplog.records)
    assert "C-FIND" in texts["log"]  # the debug log really was captured
    for kind, text in texts.items():
        assert _leaks(text, lab.data.planted) == [], kind


def test_csv_and_sarif(full_scan: CliScan) -> None:
    findings = full_scan.report["findings"]
    rows = list(csv.DictReader(full_scan.outputs["csv"].open()))
    assert len(rows) == len(findings)
    assert {r["severity"] for r in rows} == {f["severity"] for f in findings}
    sarif = json.loads(full_scan.outputs["sarif"].read_text())
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert sum(1 for r in results if r["level"] == "error") == sum(
        len(f["issues"]) for f in findings if f["severity"] in ("critical", "high")
    )
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert any(u.startswith("dicom://127.0.0.1:") for u in uris)
    rule_ids = {rule["id"] for rule in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} == rule_ids


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("chromium is not installed (scripts/debian-packages.txt)")


def test_html_report_renders_in_headless_chromium(full_scan: CliScan, tmp_path: Path) -> None:
    html = full_scan.outputs["html"]
    source = html.read_text()
    assert "<script" not in source and "<link" not in source and " src=" not in source
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = done.stdout
    assert "PACS exposure report" in dom, done.stderr[-2000:]
    findings = full_scan.report["findings"]
    assert dom.count('<tr class="finding"') == len(findings)
    assert 'id="chart-severity"' in dom and 'id="chart-exposure"' in dom
    counts = full_scan.report["summary"]
    for severity, count in counts.items():
        assert f'id="count-{severity}"><b>{count}</b>' in dom
    exposed = [f for f in findings if f["exposed"]["studies"] is not None]
    assert dom.count('<g class="bar"') == 5 + len(exposed)


def test_scope_file_and_fail_on(lab: Lab, tmp_path: Path) -> None:
    scope = tmp_path / "scope.txt"
    scope.write_text(f"# lab\n{lab.host}\n")
    port = str(lab.by_name("storescp-echo").port)
    common = ("scan", "--scope", str(scope), "--ports", port, "--no-history", "-q")
    assert _cli(*common, "--fail-on", "medium").returncode == 1
    assert _cli(*common, "--fail-on", "high").returncode == 0


def test_history_and_diff(lab: Lab, tmp_path: Path) -> None:
    db = tmp_path / "diff.sqlite"
    first_port, second_port = free_ports(2)
    ports = f"{first_port},{second_port}"
    server = start_storescp("diff-a", first_port, tmp_path)
    try:
        assert _cli("scan", lab.host, "--ports", ports, "--db", str(db), "-q").returncode == 0
    finally:
        server.stop()
    server = start_storescp("diff-b", second_port, tmp_path)
    try:
        assert _cli("scan", lab.host, "--ports", ports, "--db", str(db), "-q").returncode == 0
    finally:
        server.stop()
    out = tmp_path / "diff.json"
    done = _cli("scan", "diff", "--db", str(db), "--json", str(out))
    assert done.returncode == 0, done.stderr
    diff = json.loads(out.read_text())
    assert (diff["base_scan"], diff["head_scan"]) == (1, 2)
    assert [c["port"] for c in diff["new"]] == [second_port]
    assert [c["port"] for c in diff["fixed"]] == [first_port]
    assert diff["fixed"][0]["severity_before"] == "medium"
    assert "new: 1" in done.stdout and "fixed: 1" in done.stdout
    listing = _cli("scan", "history", "--db", str(db))
    assert listing.returncode == 0 and "127.0.0.1" in listing.stdout


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad_range = _cli("scan", "10.0.0.0/33", "--no-history")
    assert bad_range.returncode == 2
    assert "not a valid address or CIDR range" in bad_range.stderr
    assert "Traceback" not in bad_range.stderr
    bad_ports = _cli("scan", "127.0.0.1", "--ports", "80,70000", "--no-history")
    assert bad_ports.returncode == 2 and "out of range" in bad_ports.stderr
    no_history = _cli("scan", "diff", "--db", str(tmp_path / "none.sqlite"))
    assert no_history.returncode == 2 and "no scan history" in no_history.stderr
    scope = tmp_path / "scope.txt"
    scope.write_text("127.0.0.1  # the only address these tests touch\n")
    excluded = _cli("scan", "--scope", str(scope), "--exclude", "127.0.0.0/8", "--no-history")
    assert excluded.returncode == 0 and "0 open services on 0 hosts" in excluded.stdout
    helped = _cli("scan", "--help")
    for flag in ("--ports", "--scope", "--exclude", "--check-default-credentials", "--sarif"):
        assert flag in helped.stdout
