"""The HTML report in headless Chromium at 1280 px: nothing overflows, findings are grouped,
burned-in text is pictured; and the JSON keeps every field machine-readable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pacsguard.verify.findings import Finding, VerifyReport
from pacsguard.verify.report import to_html, to_json
from pacsguard.verify.thumbnail import thumbnail

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip
# Appended to a copy of the page only: the report itself has no script.
PROBE = """<script>
const over = [];
const root = document.documentElement;
const width = root.clientWidth;
if (root.scrollWidth > width) over.push('page ' + root.scrollWidth);
for (const t of document.querySelectorAll('table, figure, img, p, h3, summary')) {
  const r = t.getBoundingClientRect();
  if (r.right > width + 0.5 || t.scrollWidth > t.clientWidth + 1)
    over.push(t.tagName + ' ' + Math.round(r.right) + ' ' + t.scrollWidth + '/' + t.clientWidth);
}
document.body.setAttribute('data-overflow', over.length ? over.join(';') : 'none');
document.body.setAttribute('data-width', String(width));
</script>"""


def long_report() -> VerifyReport:
    """12 files, 120 findings, long unbroken paths and locations, burned-in text pictured."""
    import numpy as np

    report = VerifyReport(root="out", ocr=True, mapping_used=True, patients=3)
    report.files_checked = 12
    frame = (np.arange(480 * 640) % 251).reshape(480, 640).astype(np.uint8)
    for n in range(12):
        patient = f"PG{'ABCDEFGHIJKLMNOP'[n % 3] * 16}"
        study = "2.25." + "1234567890" * 3 + "123456789" + str(n % 2)  # 39 digits, as deid's
        series = "2.25." + "9876543210" * 3 + "987654321" + str(n % 4)
        file = f"{patient}/{study}/{series}/2.25.{'31415926535897932384' * 2}{n}.dcm"
        for i in range(10):
            deep = " > ".join(f"(0040,A730) ContentSequence[{k}]" for k in range(i % 5 + 1))
            kind, klass = [
                ("person-name", "identifier"),
                ("text-not-allowed", "review"),
                ("burned-in-text", "identifier"),
                ("nir", "identifier"),
                ("date-in-text", "review"),
            ][i % 5]
            location = (
                f"pixels frame 0 box (8, {8 + i}, 140, 24)"
                if kind == "burned-in-text"
                else f"{deep} > (0040,A160) TextValue"
            )
            reason = (
                "free text outside the allow-list; recurs under 3 of 3 patients: not one patient's"
            )
            value = "X" * 90 if i % 2 else "DUPONT^JEAN-CHRISTOPHE-MARIE-HENRI-EMMANUEL" * 2
            report.findings.append(
                Finding(
                    file, location, kind, "detail", value, klass, reason, patient, study, series
                )
            )
        report.thumbnails[(file, 0)] = thumbnail(frame, [(8, 8, 140, 24), (8, 40, 190, 20)])
    return report


def render(html: str, tmp_path: Path, name: str) -> tuple[str, Path]:
    """(the probed DOM, a screenshot) of ``html`` at 1280 px wide."""
    assert CHROMIUM is not None
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    env = {**os.environ, "HOME": str(tmp_path)}
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}"]
    dom = subprocess.run(
        [*common, "--window-size=1280,900", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    ).stdout  # fmt: skip
    shot = tmp_path / f"{name}.png"
    subprocess.run(
        [*common, "--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    keep = os.environ.get("PACSGUARD_SCREENSHOTS")
    if keep:
        shutil.copyfile(shot, Path(keep) / shot.name)
    return dom, shot


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is in scripts/debian-packages.txt")
@pytest.mark.parametrize("show_phi", [False, True])
def test_html_report_fits_1280_px(tmp_path: Path, show_phi: bool) -> None:
    report = long_report()
    html = to_html(report, show_phi=show_phi)
    dom, shot = render(html, tmp_path, f"report-{'phi' if show_phi else 'plain'}")
    width = re.search(r'data-width="(\d+)"', dom)
    overflow = re.search(r'data-overflow="([^"]*)"', dom)
    assert width and int(width.group(1)) >= 1200, dom[:300]
    assert overflow and overflow.group(1) == "none", overflow.group(1) if overflow else dom[:300]
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
    # grouped: one block per patient, a heading per study, a picture per file with text
    assert html.count("<details") == 3
    assert html.count("<img") == 12
    assert "What removes each kind" in html and "--option clean-pixel-data" in html
    assert ("DUPONT" in html) is show_phi


def test_json_keeps_every_field(tmp_path: Path) -> None:
    doc = json.loads(to_json(long_report()))
    assert doc["clean"] is False and doc["patients"] == 3
    assert set(doc["counts_by_class"]) == {"identifier", "review"}
    for finding in doc["findings"]:
        assert {"kind", "class", "file", "location", "reason", "fix", "patient"} <= set(finding)
        assert finding["class"] in ("identifier", "review")
        assert "value" not in finding
    assert "DUPONT" not in json.dumps(doc)
