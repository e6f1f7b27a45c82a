"""Funnel charts as SVG text: users per state on a log scale, with optional 5-95 % whiskers.

Written by hand rather than with matplotlib on purpose: importing matplotlib and drawing
the first figure costs 0.8-1.0 s on the 2-core development machine, more than the whole
Monte Carlo forecast it illustrates (~0.02 s); this function takes about a millisecond.
"""

from __future__ import annotations

import math
from html import escape

WIDTH = 640
ROW = 22
LABEL_WIDTH = 150
TOP = 28
BOTTOM = 30
BAR_COLOR = "#4c72b0"


def funnel_svg(
    counts: dict[str, float],
    title: str,
    low: dict[str, float] | None = None,
    high: dict[str, float] | None = None,
) -> str:
    """Return an SVG document with one horizontal bar per entry of ``counts`` (log-scaled x axis).

    ``low``/``high`` (same keys) draw whiskers, e.g. the 5th and 95th percentiles.
    Counts below 0.5 are drawn at 0.5 so a log scale can show them.
    """
    names = list(counts)
    values = [max(float(counts[n]), 0.5) for n in names]
    tops = [max(float(high[n]), 0.5) for n in names] if high else values
    lo_decade = math.floor(math.log10(max(min(values) / 5, 0.3)))
    hi_decade = math.ceil(math.log10(max(max(tops), 1.0) * 1.05))
    hi_decade = max(hi_decade, lo_decade + 1)
    plot_width = WIDTH - LABEL_WIDTH - 20
    height = TOP + ROW * len(names) + BOTTOM

    def x(value: float) -> float:
        share = (math.log10(max(value, 10.0**lo_decade)) - lo_decade) / (hi_decade - lo_decade)
        return LABEL_WIDTH + share * plot_width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="12">{escape(title)}</text>',
    ]
    for decade in range(lo_decade, hi_decade + 1):
        gx = x(10.0**decade)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{TOP - 4}" x2="{gx:.1f}" y2="{height - BOTTOM}" stroke="#ddd"/>'
            f'<text x="{gx:.1f}" y="{height - BOTTOM + 14}" text-anchor="middle" fill="#555">'
            f"{_decade_label(decade)}</text>"
        )
    for i, (name, value) in enumerate(zip(names, values)):
        y = TOP + i * ROW
        mid = y + ROW / 2
        end = x(value)
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{mid + 4:.1f}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{max(end - LABEL_WIDTH, 1):.1f}" height="{ROW - 6}" '
            f'fill="{BAR_COLOR}"/>'
        )
        if low is not None and high is not None:
            lx, hx = x(max(float(low[name]), 0.5)), x(max(float(high[name]), 0.5))
            parts.append(
                f'<path d="M{lx:.1f},{mid - 4:.1f}V{mid + 4:.1f}M{lx:.1f},{mid:.1f}H{hx:.1f}'
                f'M{hx:.1f},{mid - 4:.1f}V{mid + 4:.1f}" stroke="#222" fill="none"/>'
            )
            end = max(end, hx)
        parts.append(
            f'<text x="{end + 4:.1f}" y="{mid + 4:.1f}" fill="#222">{float(counts[name]):,.0f}</text>'
        )
    parts.append(
        f'<text x="{LABEL_WIDTH + plot_width / 2}" y="{height - 4}" text-anchor="middle" fill="#555">'
        "users (log scale)</text></svg>"
    )
    return "".join(parts)


def _decade_label(decade: int) -> str:
    value = 10.0**decade
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def comparison_svg(rows: list[tuple[str, float, float | None, float | None]], title: str) -> str:
    """Return an SVG of observed shares (bars, 0-100 %) against expected ones (ticks with +- band whiskers).

    ``rows`` are ``(label, observed, expected, tolerance)``; expected and tolerance may be None.
    """
    plot_width = WIDTH - LABEL_WIDTH - 60
    height = TOP + ROW * len(rows) + BOTTOM

    def x(share: float) -> float:
        return LABEL_WIDTH + min(max(share, 0.0), 1.0) * plot_width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="12">{escape(title)}</text>',
    ]
    for tick in range(0, 101, 20):
        gx = x(tick / 100)
        parts.append(
            f'<line x1="{gx:.1f}" y1="{TOP - 4}" x2="{gx:.1f}" y2="{height - BOTTOM}" stroke="#ddd"/>'
            f'<text x="{gx:.1f}" y="{height - BOTTOM + 14}" text-anchor="middle" fill="#555">{tick} %</text>'
        )
    for i, (label, observed, expected, tolerance) in enumerate(rows):
        y = TOP + i * ROW
        mid = y + ROW / 2
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{mid + 4:.1f}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{max(x(observed) - LABEL_WIDTH, 1):.1f}" '
            f'height="{ROW - 8}" fill="{BAR_COLOR}"/>'
        )
        end = x(observed)
        if expected is not None:
            ex = x(expected)
            parts.append(f'<path d="M{ex:.1f},{y + 1}V{y + ROW - 1}" stroke="#c44e52" stroke-width="2"/>')
            if tolerance:
                lo, hi = x(expected - tolerance), x(expected + tolerance)
                parts.append(f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}" stroke="#c44e52" fill="none"/>')
                end = max(end, hi)
        label_text = f"{observed:.1%}" + (f" (expected {expected:.1%})" if expected is not None else "")
        parts.append(f'<text x="{end + 4:.1f}" y="{mid + 4:.1f}" fill="#222">{label_text}</text>')
    parts.append(
        f'<text x="{LABEL_WIDTH + plot_width / 2}" y="{height - 4}" text-anchor="middle" fill="#555">'
        "observed (bars) and expected +- band (red)</text></svg>"
    )
    return "".join(parts)
