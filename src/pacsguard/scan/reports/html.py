"""A self-contained HTML report: inline CSS and SVG charts, no script, no external asset."""

from __future__ import annotations

from html import escape
from pathlib import Path

from pacsguard import __version__
from pacsguard.core.io import atomic_write_text
from pacsguard.scan.model import SEVERITIES, SEVERITY_RANK, Finding, ScanResult
from pacsguard.scan.reports.charts import Bar, bar_chart

COLORS = {
    "critical": "#b3001b",
    "high": "#e4572e",
    "medium": "#f3a712",
    "low": "#4f86c6",
    "info": "#8d99ae",
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin-top:2rem}
.meta{color:#555;font-size:.9rem}
.cards{display:flex;gap:.8rem;flex-wrap:wrap;margin:1rem 0}
.card{border-radius:6px;padding:.6rem 1rem;color:#fff;min-width:7rem}
.card b{display:block;font-size:1.6rem}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}
.sev{font-weight:600;color:#fff;border-radius:4px;padding:.1rem .4rem;white-space:nowrap}
.chart text{font-size:12px;fill:#1d1d1f}.chart .chart-title{font-size:14px;font-weight:600}
.fix li{margin-bottom:.25rem}
.num{text-align:right;font-variant-numeric:tabular-nums}
"""


def _count(value: int | None, capped: bool) -> str:
    if value is None:
        return "–"
    return f"≥{value}" if capped else str(value)


def _severity_chart(result: ScanResult) -> str:
    counts = result.by_severity()
    bars = [Bar(name, counts[name], COLORS[name]) for name in SEVERITIES]
    return bar_chart("Findings by severity", bars, chart_id="chart-severity")


def _exposure_chart(result: ScanResult) -> str:
    bars = []
    for finding in result.findings:
        exposed = finding.exposed
        value = exposed.instances if exposed.instances is not None else exposed.studies
        if value is None:
            continue
        unit = " instances" if exposed.instances is not None else " studies"
        bars.append(
            Bar(
                f"{finding.host}:{finding.port} {finding.service}",
                value,
                COLORS[finding.severity],
                (" +" if exposed.capped else "") + unit,
            )
        )
    return bar_chart("Exposed data by server", bars, chart_id="chart-exposure")


def _row(finding: Finding) -> str:
    e = finding.exposed
    cells = [
        escape(finding.host),
        str(finding.port),
        escape(finding.service),
        escape(" ".join(x for x in (finding.product or "", finding.version or "") if x) or "–"),
        f'<span class="sev" style="background:{COLORS[finding.severity]}">'
        f"{finding.severity}</span>",
        escape(finding.access),
        escape(", ".join(finding.ae_titles) or "–"),
    ]
    counts = [_count(v, e.capped) for v in (e.patients, e.studies, e.series, e.instances)]
    body = "".join(f"<td>{c}</td>" for c in cells)
    body += "".join(f'<td class="num">{escape(c)}</td>' for c in counts)
    body += f"<td>{escape(finding.summary)}</td>"
    return f'<tr class="finding" data-severity="{finding.severity}">{body}</tr>'


def _fixes(result: ScanResult) -> str:
    items = []
    for finding in sorted(result.findings, key=lambda f: SEVERITY_RANK[f.severity]):
        if not finding.remediation:
            continue
        fixes = "".join(f"<li>{escape(text)}</li>" for text in finding.remediation)
        guard = (
            f'<details class="guard-config"><summary>guard.toml for {escape(finding.host)}:'
            f"{finding.port}</summary><pre>{escape(finding.guard_config)}</pre></details>"
            if finding.guard_config
            else ""
        )
        items.append(
            f"<h3>{escape(finding.host)}:{finding.port} ({escape(finding.service)}, "
            f'{finding.severity})</h3><ul class="fix">{fixes}</ul>{guard}'
        )
    return "".join(items) or "<p>Nothing to fix.</p>"


def render_html(result: ScanResult) -> str:
    counts = result.by_severity()
    cards = "".join(
        f'<div class="card" style="background:{COLORS[name]}" id="count-{name}">'
        f"<b>{counts[name]}</b>{name}</div>"
        for name in SEVERITIES
    )
    header = (
        "<tr><th>Host</th><th>Port</th><th>Service</th><th>Product</th><th>Severity</th>"
        "<th>Access</th><th>AE titles</th><th>Patients</th><th>Studies</th><th>Series</th>"
        "<th>Instances</th><th>Summary</th></tr>"
    )
    ordered = sorted(result.findings, key=lambda f: SEVERITY_RANK[f.severity])  # stable: host, port
    rows = "".join(_row(f) for f in ordered)
    targets = escape(", ".join(result.targets))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>pacsguard scan report</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>PACS exposure report</h1>"
        f'<p class="meta">pacsguard {escape(__version__)} · targets {targets} · '
        f"{result.hosts} hosts × {result.ports} ports · {escape(result.started)} → "
        f"{escape(result.finished)}</p>"
        f'<div class="cards">{cards}</div>'
        f"<h2>Charts</h2>{_severity_chart(result)}<br>{_exposure_chart(result)}"
        f'<h2>Findings ({len(result.findings)})</h2><table id="findings">{header}{rows}</table>'
        f"<h2>Remediation</h2>{_fixes(result)}"
        "</body></html>\n"
    )


def write_html(result: ScanResult, path: Path) -> None:
    atomic_write_text(path, render_html(result))
