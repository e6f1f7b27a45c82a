"""Small charts as SVG text, for the plots the assets show in the Dagster UI.

Drawn by hand on purpose: importing matplotlib and drawing a first figure costs 0.5-1 s of CPU,
more than most of the assets it would illustrate (a HogFlix day, an activity tick); building one
of these takes about a millisecond. Two shapes cover the project's plots:

- ``chart_svg``: series over a shared x axis, each drawn as a line, bars or a stacked area,
  on the left axis or a second (right) one, with optional horizontal guides;
- ``hbar_svg``: one horizontal bar per label, on a linear or log scale.

The x values are numbers, or labels (dates, names) placed one per slot. Pure functions: the same
input gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
FONT = 'font-family="sans-serif" font-size="11"'
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    """One series of ``chart_svg``: ``values`` line up with the chart's x values (None leaves a gap)."""

    name: str
    values: Sequence[float | None]
    kind: Literal["line", "bar", "area"] = "line"
    axis: Literal["left", "right"] = "left"
    color: str = ""
    dashed: bool = False
    markers: bool = False


@dataclass(frozen=True)
class Guide:
    """A horizontal guide line at ``y`` on one axis (e.g. a threshold)."""

    y: float
    axis: Literal["left", "right"] = "left"
    color: str = "#d62728"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round tick values (steps of 1, 2 or 5 x 10^k) covering [low, high] with about ``count`` ticks."""
    if not math.isfinite(low) or not math.isfinite(high):
        low, high = 0.0, 1.0
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    """Return a short axis label: 1.2M, 35k, 0.25, 12."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:.6g}"


def _numeric(values: Sequence[object]) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def chart_svg(
    x: Sequence[object],
    series: Sequence[Series],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    y2_label: str = "",
    y_range: tuple[float, float] | None = None,
    guides: Sequence[Guide] = (),
    x_ticks: Sequence[tuple[float, str]] = (),
    width: int = 640,
    height: int = 260,
) -> str:
    """Return an SVG document plotting ``series`` over ``x``.

    Area series stack on top of each other (in order), so do bar series of one axis; a left axis
    starts at 0 unless ``y_range`` says otherwise. Numeric ``x`` is spaced by value; anything else
    (dates, names) gets one slot per value, labelled at most ``MAX_X_LABELS`` times; ``x_ticks``
    (``(value, label)`` pairs) replaces the labels of a numeric axis.
    """
    n = len(x)
    has_right = any(s.axis == "right" for s in series)
    left, right, top, bottom = 58, (58 if has_right else 16), (34 if title else 22), (44 if x_label else 30)
    plot_w, plot_h = width - left - right, height - top - bottom
    numeric_x = _numeric(list(x))
    bars = [s for s in series if s.kind == "bar"]
    if numeric_x and n:
        x_lo, x_hi = float(min(x)), float(max(x))  # type: ignore[type-var,arg-type]
        pad = (x_hi - x_lo) / max(n - 1, 1) / 2 if bars else 0.0
        x_lo, x_hi = x_lo - pad, x_hi + pad
        if x_hi <= x_lo:
            x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
        slot = plot_w / max(n, 1) * 0.8 if bars else 0.0

        def at(value: float) -> float:
            return left + (value - x_lo) / (x_hi - x_lo) * plot_w

        def px(i: int) -> float:
            return at(float(x[i]))  # type: ignore[arg-type]
    else:
        step = plot_w / max(n, 1)
        slot = step * 0.8

        def px(i: int) -> float:
            return left + (i + 0.5) * step if bars or n == 1 else left + i / max(n - 1, 1) * plot_w

    stacks: dict[tuple[str, str], list[float]] = {}
    tops: dict[str, list[float]] = {"left": [0.0], "right": [0.0]}
    drawn: list[tuple[Series, list[tuple[float, float] | None]]] = []  # per series: (base, top) per x
    for s in series:
        key = (s.axis, s.kind)
        base = stacks.setdefault(key, [0.0] * n) if s.kind in ("area", "bar") else [0.0] * n
        spans: list[tuple[float, float] | None] = []
        for i in range(n):
            v = s.values[i] if i < len(s.values) else None
            if v is None or not math.isfinite(float(v)):
                spans.append(None)
                continue
            lo = base[i] if s.kind != "line" else float(v)
            hi = lo + float(v) if s.kind != "line" else float(v)
            if s.kind != "line":
                base[i] = hi
            spans.append((lo, hi))
            tops[s.axis].extend((lo, hi))
        drawn.append((s, spans))

    def scale(axis: str) -> tuple[float, float, list[float]]:
        if axis == "left" and y_range is not None:
            lo, hi = y_range
            return lo, hi, nice_ticks(lo, hi)
        values = tops[axis]
        lo, hi = min(values), max(values)
        ticks = nice_ticks(min(lo, 0.0), hi if hi > lo else lo + 1)
        return ticks[0], ticks[-1], ticks

    axes = {"left": scale("left"), **({"right": scale("right")} if has_right else {})}

    def py(axis: str, value: float) -> float:
        lo, hi, _ = axes[axis]
        share = (value - lo) / (hi - lo) if hi > lo else 0.0
        return top + plot_h - min(max(share, -0.05), 1.05) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {FONT}>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(
            f'<text x="{width / 2:.0f}" y="15" text-anchor="middle" font-size="12">{escape(title)}</text>'
        )
    for axis, (_lo, _hi, ticks) in axes.items():
        gx = left - 4 if axis == "left" else width - right + 4
        anchor = "end" if axis == "left" else "start"
        for t in ticks:
            y = py(axis, t)
            if axis == "left":
                out.append(
                    f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                )
            out.append(
                f'<text x="{gx}" y="{y + 4:.1f}" text-anchor="{anchor}" fill="#555">{_label(t)}</text>'
            )
    out.append(
        f'<path d="M{left},{top}V{top + plot_h}H{width - right}" stroke="#888" fill="none"/>'
        + (
            f'<path d="M{width - right},{top}V{top + plot_h}" stroke="#888" fill="none"/>'
            if has_right
            else ""
        )
    )
    if numeric_x and x_ticks:
        places = [(at(float(value)), label) for value, label in x_ticks]
    else:
        places = [(px(i), _label(float(x[i])) if numeric_x else str(x[i])) for i in _x_label_slots(n)]  # type: ignore[arg-type]
    for gx, label in places:
        out.append(
            f'<text x="{gx:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#555">{escape(label)}</text>'
        )
    bar_groups: dict[str, int] = {}
    for s, _ in drawn:
        if s.kind == "bar":
            bar_groups.setdefault(s.axis, len(bar_groups))
    for k, (s, spans) in enumerate(drawn):
        color = s.color or PALETTE[k % len(PALETTE)]
        if s.kind == "bar":
            groups = len(bar_groups)
            w = slot / groups
            offset = -slot / 2 + bar_groups[s.axis] * w
            for i, span in enumerate(spans):
                if span is None:
                    continue
                y0, y1 = py(s.axis, span[0]), py(s.axis, span[1])
                out.append(
                    f'<rect x="{px(i) + offset:.1f}" y="{min(y0, y1):.1f}" width="{max(w - 0.5, 0.5):.1f}" '
                    f'height="{abs(y0 - y1):.1f}" fill="{color}"/>'
                )
        elif s.kind == "area":
            for run in _runs(spans):
                upper = " ".join(f"{px(i):.1f},{py(s.axis, spans[i][1]):.1f}" for i in run)  # type: ignore[index]
                lower = " ".join(f"{px(i):.1f},{py(s.axis, spans[i][0]):.1f}" for i in reversed(run))  # type: ignore[index]
                out.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.85"/>')
        else:
            dash = ' stroke-dasharray="5,3"' if s.dashed else ""
            for run in _runs(spans):
                points = " ".join(f"{px(i):.1f},{py(s.axis, spans[i][1]):.1f}" for i in run)  # type: ignore[index]
                out.append(
                    f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"{dash}/>'
                )
                if s.markers:
                    out.extend(
                        f'<circle cx="{px(i):.1f}" cy="{py(s.axis, spans[i][1]):.1f}" r="2.5" fill="{color}"/>'  # type: ignore[index]
                        for i in run
                    )
    for g in guides:
        if g.axis in axes:
            y = py(g.axis, g.y)
            out.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{g.color}" '
                'stroke-dasharray="2,3"/>'
            )
    lx = left + 4
    for k, (s, _) in enumerate(drawn):
        color = s.color or PALETTE[k % len(PALETTE)]
        label = s.name + (" (right)" if s.axis == "right" and has_right else "")
        out.append(
            f'<rect x="{lx}" y="{top - 13}" width="10" height="8" fill="{color}"/>'
            f'<text x="{lx + 13}" y="{top - 5}" font-size="10">{escape(label)}</text>'
        )
        lx += 24 + 7 * len(label)
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" fill="#333">{escape(x_label)}</text>'
        )
    for axis, label in (("left", y_label), ("right", y2_label)):
        if label and axis in axes:
            gx = 12 if axis == "left" else width - 6
            cy = top + plot_h / 2
            out.append(
                f'<text x="{gx}" y="{cy:.0f}" text-anchor="middle" fill="#333" '
                f'transform="rotate(-90 {gx} {cy:.0f})">{escape(label)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _x_label_slots(n: int) -> list[int]:
    if n <= MAX_X_LABELS:
        return list(range(n))
    step = math.ceil((n - 1) / (MAX_X_LABELS - 1))
    return list(range(0, n, step))


def _runs(spans: Sequence[object]) -> list[list[int]]:
    """Return the index runs of consecutive present values (a gap ends a line or an area)."""
    runs: list[list[int]] = []
    current: list[int] = []
    for i, span in enumerate(spans):
        if span is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(i)
    if current:
        runs.append(current)
    return runs


def hbar_svg(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    x_label: str = "",
    log_scale: bool = False,
    width: int = 640,
    color: str = PALETTE[0],
) -> str:
    """Return an SVG with one horizontal bar per label (top to bottom in the given order), values written at the end."""
    row, label_w, top, bottom = 16, max(60, min(220, 7 * max((len(s) for s in labels), default=4))), 30, 34
    height = top + row * len(labels) + bottom
    plot_w = width - label_w - 70
    if log_scale:
        floor_ = 1.0
        lo_dec = 0
        hi_dec = max(1, math.ceil(math.log10(max([floor_, *values]) * 1.05)))
        ticks = [10.0**d for d in range(lo_dec, hi_dec + 1)]

        def px(v: float) -> float:
            return label_w + math.log10(max(v, floor_)) / hi_dec * plot_w
    else:
        ticks = nice_ticks(0.0, max([0.0, *values]) or 1.0)

        def px(v: float) -> float:
            return label_w + max(v, 0.0) / ticks[-1] * plot_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" {FONT}>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(
            f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="12">{escape(title)}</text>'
        )
    for t in ticks:
        gx = px(t)
        out.append(
            f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - bottom}" stroke="#e5e5e5"/>'
            f'<text x="{gx:.1f}" y="{height - bottom + 14}" text-anchor="middle" fill="#555">{_label(t)}</text>'
        )
    for i, (name, value) in enumerate(zip(labels, values)):
        y = top + i * row
        end = px(float(value))
        out.append(
            f'<text x="{label_w - 6}" y="{y + row - 4}" text-anchor="end" font-size="10">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{max(end - label_w, 0.5):.1f}" height="{row - 4}" fill="{color}"/>'
            f'<text x="{end + 4:.1f}" y="{y + row - 4}" font-size="10" fill="#222">{value:,.0f}</text>'
        )
    if x_label:
        out.append(
            f'<text x="{label_w + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle" fill="#333">'
            f"{escape(x_label)}{' (log scale)' if log_scale else ''}</text>"
        )
    out.append("</svg>")
    return "".join(out)
