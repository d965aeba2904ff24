"""What a security officer reads in a terminal: worst first, a fix under each finding, no
cut text at 80 columns; scan diff compares only what both scans swept; advice per product."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from pacsguard.scan import Exposure, Finding, ScanResult
from pacsguard.scan.grade import grade
from pacsguard.scan.history import History
from pacsguard.scan.model import AssocAttempt, DicomInfo
from pacsguard.scan.render import print_diff, print_result


def _dicom(port: int, product: str, access: str, find: str, *, service: str = "dicom") -> Finding:
    info = DicomInfo(attempts=[AssocAttempt("ANY-SCP", "accepted")], echo=True, find=find)  # type: ignore[arg-type]
    finding = Finding("127.0.0.1", port, service, product=product, medical=True, dicom=info)  # type: ignore[arg-type]
    finding.access = access  # type: ignore[assignment]
    finding.ae_titles = ["ANY-SCP"]
    if find == "answered":
        finding.exposed = Exposure(3, 5, 7, 40)
    return grade(finding)


def _result(findings: list[Finding], hosts: list[str]) -> ScanResult:
    return ScanResult("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", hosts,
                      len(hosts), 2, findings, swept_hosts=hosts)  # fmt: skip


def _render(result: ScanResult, width: int = 80) -> str:
    out = io.StringIO()
    print_result(Console(file=out, width=width, color_system=None), result)
    return out.getvalue()


def test_terminal_table_is_worst_first_with_fixes_and_nothing_cut() -> None:
    storescp = _dicom(11112, "dcmtk", "anonymous", "not-offered")
    orthanc = _dicom(4242, "orthanc", "anonymous", "answered")
    text = _render(_result([storescp, orthanc], ["127.0.0.1"]))
    assert "…" not in text
    assert text.index("CRITICAL") < text.index("MEDIUM")
    assert text.index("127.0.0.1:4242") < text.index("127.0.0.1:11112")
    assert "3 patients" in text and "fix:" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "DicomAlwaysAllowFind" in text.replace("\n", " ").replace("  ", " ") or (
        "DicomAlwaysAllowFind" in "".join(text.split())
    )


def test_storescp_gets_its_own_advice_and_cleartext_is_flagged() -> None:
    storescp = _dicom(11112, "dcmtk", "anonymous", "not-offered")
    dcmqrscp = _dicom(11113, "dcmtk", "guessed-ae-title", "answered")
    assert "cleartext-dicom" in storescp.issues
    assert "cleartext-dicom" in dcmqrscp.issues
    assert not any("AETable" in fix and "list only" in fix for fix in storescp.remediation)
    assert any("storescp" in fix for fix in storescp.remediation)
    assert any("AETable" in fix for fix in dcmqrscp.remediation)
    tls = _dicom(2762, "dcmtk", "anonymous", "not-offered", service="dicom-tls")
    assert "cleartext-dicom" not in tls.issues


def test_diff_compares_only_what_both_scans_swept(tmp_path: Path) -> None:
    """Scan ports A, then other ports B: A's critical Orthanc is not rescanned, not fixed."""
    orthanc = _dicom(4242, "orthanc", "anonymous", "answered")
    storescp = _dicom(11112, "dcmtk", "anonymous", "not-offered")
    with History(tmp_path / "h.sqlite") as history:
        history.record(_result([orthanc], ["127.0.0.1"]), [4242])
        history.record(_result([storescp], ["127.0.0.1"]), [11112])
        diff = history.diff()
        history.record(_result([], ["127.0.0.2"]), [4242, 11112])
        other_host = history.diff()
    assert diff.fixed == [] and diff.new == []
    assert [c.key for c in diff.not_rescanned] == ["127.0.0.1:4242/dicom"]
    assert [c.key for c in diff.first_scanned] == ["127.0.0.1:11112/dicom"]
    assert other_host.fixed == [] and len(other_host.not_rescanned) == 1
    out = io.StringIO()
    print_diff(Console(file=out, width=80, color_system=None), diff)
    assert "not rescanned: 1" in out.getvalue() and "fixed: 0" in out.getvalue()
    assert diff.to_dict()["not_rescanned"][0]["severity_before"] == "critical"


def test_diff_still_reports_a_fix_where_both_swept(tmp_path: Path) -> None:
    orthanc = _dicom(4242, "orthanc", "anonymous", "answered")
    with History(tmp_path / "h.sqlite") as history:
        history.record(_result([orthanc], ["127.0.0.1"]), [4242, 11112])
        history.record(_result([], ["127.0.0.1"]), [4242])
        diff = history.diff()
    assert [c.key for c in diff.fixed] == ["127.0.0.1:4242/dicom"]


def test_coverage_is_stored_compactly_and_read_back(tmp_path: Path) -> None:
    from pacsguard.scan.history import compact_hosts

    hosts = [f"10.1.{i // 256}.{i % 256}" for i in range(512)] + ["pacs.example", "::1"]
    assert compact_hosts(hosts) == ["10.1.0.0/23", "::1/128", "pacs.example"]
    orthanc = _dicom(4242, "orthanc", "anonymous", "answered")
    orthanc.host = "10.1.1.7"
    with History(tmp_path / "h.sqlite") as history:
        first = history.record(_result([orthanc], hosts), [4242])
        covered = history.coverage(first)
    assert covered.covers({"host": "10.1.1.200", "port": 4242})
    assert not covered.covers({"host": "10.1.2.1", "port": 4242})
    assert covered.covers({"host": "pacs.example", "port": 4242})
    assert not covered.covers({"host": "10.1.1.200", "port": 104})


def test_what_a_host_answered_is_shown_as_it_is_never_as_markup() -> None:
    """A version name or page title holding brackets: Rich's markup would read "[b]" as a
    style (and drop it) or fail on "[/x]"; every cell is text."""
    odd = _dicom(4242, "orthanc", "anonymous", "answered")
    odd.summary = "Orthanc [b]1.12[/b] [2] [/x] title"
    text = _render(_result([odd], ["127.0.0.1"]), width=200)
    assert "Orthanc [b]1.12[/b] [2] [/x] title" in text
    assert "CRITICAL" in text and "1 open service on 1 host" in text and "fix:" in text
