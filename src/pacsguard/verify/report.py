"""Render a verify report: JSON, and one self-contained HTML page (no script, no link out).

Neither names the verified folder (file paths are relative to it), and neither shows a
finding's value unless ``show_phi`` is asked. The HTML groups findings by patient, study,
series and file (pseudonymous labels only), wraps long paths, shows for burned-in text a
picture of the frame with the text's boxes filled in, and says what removes each kind.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from html import escape

from pacsguard import __version__
from pacsguard.verify.findings import IDENTIFIER, KINDS, Finding, VerifyReport, kind_rules

STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;
color:#1b1f24}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
h3{font-size:1rem;margin:1rem 0 .3rem;overflow-wrap:anywhere;word-break:break-all}
.verdict{font-size:1.1rem;font-weight:600;padding:.6rem 1rem;border-radius:6px;
display:inline-block}.clean{background:#dff3e4;color:#135c2b}
.dirty{background:#fbe1e1;color:#8a1c1c}.warn{background:#fff4d6;color:#6b4e00}
table{border-collapse:collapse;width:100%;margin-top:.4rem;table-layout:fixed}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d8dde3;vertical-align:top;
overflow-wrap:anywhere;word-break:break-word}
th{background:#f3f5f7}td.loc,.file{font-family:ui-monospace,monospace;font-size:12.5px}
.muted{color:#59636e;overflow-wrap:anywhere}.phi{font-family:ui-monospace,monospace;background:#fff4d6}
.identifier{color:#8a1c1c;font-weight:600}.review{color:#6b4e00}
details{border:1px solid #d8dde3;border-radius:6px;padding:.4rem .8rem;margin:.5rem 0}
summary{cursor:pointer;font-weight:600;overflow-wrap:anywhere;word-break:break-all}
.file{margin:.8rem 0 .2rem;font-weight:600;overflow-wrap:anywhere;word-break:break-all}
figure{display:inline-block;margin:.4rem .8rem .4rem 0}
figure img{max-width:100%;border:1px solid #d8dde3}figcaption{font-size:12px;color:#59636e}
col.c-class{width:7rem}col.c-kind{width:9rem}col.c-loc{width:34%}
"""


def to_json(report: VerifyReport, *, show_phi: bool = False) -> str:
    payload = report.to_dict(show_phi=show_phi)
    payload["version"] = __version__
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _summary(report: VerifyReport) -> str:
    rows = []
    for klass, counts in report.counts_by_class().items():
        for kind, count in counts.items():
            rows.append(
                f"<tr><td class={klass}>{klass}</td><td>{escape(kind)}</td>"
                f"<td>{escape(KINDS.get(kind, ''))}</td><td>{count}</td></tr>"
            )
    if not rows:
        return ""
    return (
        "<h2>By class and kind</h2><table><colgroup><col class=c-class><col class=c-kind>"
        "<col><col style='width:6rem'></colgroup>"
        "<tr><th>Class</th><th>Kind</th><th>Meaning</th><th>Findings</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _fixes(report: VerifyReport) -> str:
    kinds = sorted({f.kind for f in report.findings})
    if not kinds:
        return ""
    rules = kind_rules()
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(rules[k].fix if k in rules else '')}</td></tr>"
        for k in kinds
    )
    return (
        "<h2>What removes each kind</h2><table><colgroup><col class=c-kind><col></colgroup>"
        f"<tr><th>Kind</th><th>Option or policy rule</th></tr>{rows}</table>"
    )


def _rows(findings: list[Finding], show_phi: bool) -> str:
    head = "<tr><th>Class</th><th>Kind</th><th>Location</th><th>Reason</th>"
    cols = "<col class=c-class><col class=c-kind><col class=c-loc><col>"
    if show_phi:
        head += "<th>Value</th>"
        cols += "<col style='width:14%'>"
    rows = []
    for f in findings:
        klass = f.finding_class
        cells = (
            f"<td class={klass}>{klass}</td><td>{escape(f.kind)}</td>"
            f"<td class=loc>{escape(f.location)}</td><td>{escape(f.why)}</td>"
        )
        if show_phi:
            cells += f"<td class=phi>{escape(f.value)}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><colgroup>{cols}</colgroup>{head}</tr>{''.join(rows)}</table>"


def _pictures(report: VerifyReport, file: str) -> str:
    shots = sorted((frame, png) for (name, frame), png in report.thumbnails.items() if name == file)
    figures = []
    for frame, png in shots:
        data = base64.b64encode(png).decode("ascii")
        figures.append(
            f"<figure><img alt='frame {frame}, text boxes filled' src='data:image/png;base64,"
            f"{data}'><figcaption>frame {frame}: boxes where OCR read text</figcaption></figure>"
        )
    return "".join(figures)


def _count(findings: list[Finding]) -> str:
    ident = sum(f.finding_class == IDENTIFIER for f in findings)
    return f"{ident} identifier, {len(findings) - ident} review"


def _groups(report: VerifyReport, show_phi: bool) -> str:
    if not report.findings:
        return ""
    tree: dict[str, dict[str, dict[str, dict[str, list[Finding]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    for f in report.findings:
        tree[f.patient or "(no patient)"][f.study or "(no study)"][f.series or "(no series)"][
            f.file
        ].append(f)
    out = ["<h2>Findings by patient, study and series</h2>"]
    for patient, studies in tree.items():
        all_p = [f for s in studies.values() for se in s.values() for fs in se.values() for f in fs]
        has_ident = any(f.finding_class == IDENTIFIER for f in all_p)
        out.append(
            f"<details{' open' if has_ident else ''}><summary>Patient {escape(patient)} — "
            f"{_count(all_p)}</summary>"
        )
        for study, series_map in studies.items():
            out.append(f"<h3>Study {escape(study)}</h3>")
            for series, files in series_map.items():
                all_s = [f for fs in files.values() for f in fs]
                out.append(f"<p class=muted>Series {escape(series)} — {_count(all_s)}</p>")
                for file, findings in files.items():
                    out.append(f"<p class=file>{escape(file)}</p>")
                    out.append(_pictures(report, file))
                    out.append(_rows(findings, show_phi))
        out.append("</details>")
    return "".join(out)


def to_html(report: VerifyReport, *, show_phi: bool = False) -> str:
    identifiers, reviews = len(report.identifiers), len(report.reviews)
    if not report.findings:
        verdict = '<p class="verdict clean">Clean: no residual identifier found</p>'
    elif report.clean:
        verdict = (
            f'<p class="verdict warn">Passes: no identifier; {reviews} finding(s) to review</p>'
        )
    else:
        verdict = (
            f'<p class="verdict dirty">Fails: {identifiers} identifier finding(s), '
            f"{reviews} to review{' (strict: review findings fail too)' if report.strict else ''}"
            "</p>"
        )
    facts = (
        f"{report.files_checked} DICOM file(s) of {report.patients} patient(s) checked, "
        f"{report.files_skipped} other file(s) read as text or reviewed; pixels read by OCR in "
        f"{report.ocr_checked} instance(s) at risk"
        + ("" if report.ocr else " (OCR turned off)")
        + ("; originals from a mapping checked" if report.mapping_used else "")
        + ("." if not show_phi else ". Values are shown: this page holds identifying data.")
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>pacsguard verify</title><style>{STYLE}</style></head><body>"
        f"<h1>pacsguard verify</h1><p class=muted>pacsguard {escape(__version__)}</p>"
        f"{verdict}<p>{escape(facts)}</p>"
        "<p class=muted>Identifier findings fail the run and make <code>pack</code> refuse the "
        "tree; review findings are free text not proven safe, failing only under "
        "<code>--strict</code>.</p>"
        f"{_summary(report)}{_fixes(report)}{_groups(report, show_phi)}"
        "</body></html>\n"
    )
