"""Render a verify report: JSON, and one self-contained HTML page (no script, no link out).

Neither names the verified folder (file paths are relative to it), and neither shows a
finding's value unless ``show_phi`` is asked.
"""

from __future__ import annotations

import json
from html import escape

from pacsguard import __version__
from pacsguard.verify.findings import KINDS, VerifyReport

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#1b1f24}
h1{font-size:1.4rem;margin:0 0 .3rem}.verdict{font-size:1.1rem;font-weight:600;padding:.6rem 1rem;
border-radius:6px;display:inline-block}.clean{background:#dff3e4;color:#135c2b}
.dirty{background:#fbe1e1;color:#8a1c1c}table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d8dde3;vertical-align:top}
th{background:#f3f5f7}td.loc,td.file{font-family:ui-monospace,monospace;font-size:12.5px}
.muted{color:#59636e}.phi{font-family:ui-monospace,monospace;background:#fff4d6}
"""


def to_json(report: VerifyReport, *, show_phi: bool = False) -> str:
    payload = report.to_dict(show_phi=show_phi)
    payload["version"] = __version__
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _summary(report: VerifyReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(kind)}</td><td>{escape(KINDS.get(kind, ''))}</td><td>{count}</td></tr>"
        for kind, count in report.counts_by_kind().items()
    )
    if not rows:
        return ""
    return (
        "<h2>By kind</h2><table><tr><th>Kind</th><th>Meaning</th><th>Findings</th></tr>"
        f"{rows}</table>"
    )


def _findings(report: VerifyReport, show_phi: bool) -> str:
    if not report.findings:
        return ""
    head = "<tr><th>File</th><th>Location</th><th>Kind</th><th>Detail</th>"
    head += "<th>Value</th></tr>" if show_phi else "</tr>"
    rows = []
    for f in report.findings:
        cells = (
            f"<td class=file>{escape(f.file)}</td><td class=loc>{escape(f.location)}</td>"
            f"<td>{escape(f.kind)}</td><td>{escape(f.detail)}</td>"
        )
        if show_phi:
            cells += f"<td class=phi>{escape(f.value)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<h2>Findings</h2><table>{head}{''.join(rows)}</table>"


def to_html(report: VerifyReport, *, show_phi: bool = False) -> str:
    verdict = (
        '<p class="verdict clean">Clean: no residual identifier found</p>'
        if report.clean
        else f'<p class="verdict dirty">{len(report.findings)} residual identifier(s) found</p>'
    )
    facts = (
        f"{report.files_checked} DICOM file(s) checked, {report.files_skipped} other file(s) "
        f"skipped; pixels read by OCR in {report.ocr_checked} instance(s) at risk"
        + ("" if report.ocr else " (OCR turned off)")
        + ("; originals from a mapping checked" if report.mapping_used else "")
        + ("." if not show_phi else ". Values are shown: this page holds identifying data.")
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>pacsguard verify</title><style>{STYLE}</style></head><body>"
        f"<h1>pacsguard verify</h1><p class=muted>pacsguard {escape(__version__)}</p>"
        f"{verdict}<p>{escape(facts)}</p>{_summary(report)}{_findings(report, show_phi)}"
        "</body></html>\n"
    )
