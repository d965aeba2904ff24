"""Inline SVG bar charts: no script, no external asset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    color: str
    note: str = ""


def bar_chart(title: str, bars: Sequence[Bar], *, chart_id: str, width: int = 640) -> str:
    """A horizontal bar chart; each bar carries its label and value as text."""
    row, label_w, pad = 26, 190, 8
    height = pad * 2 + row * max(1, len(bars)) + 24
    top = max((b.value for b in bars), default=0) or 1
    span = width - label_w - 130
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{pad}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    if not bars:
        parts.append(f'<text x="{pad}" y="46" class="empty">nothing to show</text>')
    for index, bar in enumerate(bars):
        y = 28 + pad + index * row
        length = round(span * bar.value / top) if bar.value else 0
        label = escape(bar.label)
        parts.append(
            f'<g class="bar" data-label="{label}" data-value="{bar.value}">'
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{label}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(length, 1)}" height="{row - 8}" '
            f'fill="{escape(bar.color)}"/>'
            f'<text x="{label_w + max(length, 1) + 6}" y="{y + 15}">'
            f"{bar.value}{escape(bar.note)}</text>"
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
