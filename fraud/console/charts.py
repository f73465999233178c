"""Inline SVG charts, drawn on the server: no JavaScript library, no CDN, readable in a
screenshot and by a screen reader (each chart has a title and a text table beside it).
No Django import; every label is escaped.

Sizes are in the viewBox's units, which the page scales to the chart's width: the console shows
charts about as wide as the viewBox (see ``.charts`` in console.css), so 13 units of text stay at
or above 11 px on screen."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 260
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 76, 12, 24, 58
PLOT_W, PLOT_H = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
BASE = HEIGHT - PAD_BOTTOM  # the x axis's y
# Bars get their value written above them when there are few enough for the numbers to fit.
MAX_VALUE_LABELS = 12


def _frame(title: str, body: list[str], x_title: str, y_title: str) -> str:
    t = escape(title)
    if x_title:
        body.append(
            f'<text x="{PAD_LEFT + PLOT_W / 2:.1f}" y="{HEIGHT - 8}" class="axis-title" text-anchor="middle">'
            f"{escape(x_title)}</text>"
        )
    if y_title:
        cy = PAD_TOP + PLOT_H / 2
        body.append(
            f'<text x="16" y="{cy:.1f}" class="axis-title" text-anchor="middle" transform="rotate(-90 16 {cy:.1f})">'
            f"{escape(y_title)}</text>"
        )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{t}</title>{''.join(body)}</svg>"
    )


def _linear_top(max_value: float, fmt: str) -> float:
    """The axis's top: four equal steps of a round size (1, 2, 2.5 or 5 × 10ⁿ), the smallest that
    reaches ``max_value`` and whose five tick labels read differently in ``fmt`` (no "0, 0, 1, 1")."""
    max_value = max(max_value, 1e-9)
    first = math.floor(math.log10(max_value / 4))
    for power in range(first, first + 16):
        for multiple in (1, 2, 2.5, 5):
            step = multiple * 10.0**power
            if step * 4 >= max_value and len({fmt.format(step * i) for i in range(5)}) == 5:
                return step * 4
    return max_value


def _axis(top: float, fmt: str) -> list[str]:
    parts = [f'<line x1="{PAD_LEFT}" y1="{BASE}" x2="{WIDTH - PAD_RIGHT}" y2="{BASE}" class="axis"/>']
    parts.extend(_tick_y(BASE - PLOT_H * i / 4, fmt.format(top * i / 4)) for i in range(5))
    return parts


def _tick_y(y: float, text: str) -> str:
    return (
        f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" y2="{y:.1f}" class="grid"/>'
        f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(text)}</text>'
    )


def _tick_x(x: float, text: str) -> str:
    return f'<text x="{x:.1f}" y="{BASE + 18}" class="tick" text-anchor="middle">{escape(text)}</text>'


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: str = "{:,.0f}",
    label_every: int = 1,
    log: bool = False,
    x_title: str = "",
    y_title: str = "",
) -> str:
    """Bars. ``log`` draws heights on a log10 axis from 1 up to the next power of ten, for counts
    spanning orders of magnitude; a bar of 0 (or 1) has no height there, so with few bars every
    bar's value is also written above it (and each bar's tooltip has it)."""
    n = max(1, len(values))
    slot = PLOT_W / n
    if log:
        top = 10.0 ** max(1, math.ceil(math.log10(max([v or 0 for v in values] + [1]))))

        def height(v: float) -> float:
            return PLOT_H * math.log10(v) / math.log10(top) if v >= 1 else 0.0

        decades = round(math.log10(top))
        parts = [f'<line x1="{PAD_LEFT}" y1="{BASE}" x2="{WIDTH - PAD_RIGHT}" y2="{BASE}" class="axis"/>']
        parts.extend(_tick_y(BASE - PLOT_H * p / decades, f"{10**p:,}") for p in range(decades + 1))
    else:
        top = _linear_top(max([v or 0 for v in values] + [0]), fmt)

        def height(v: float) -> float:
            return PLOT_H * v / top

        parts = _axis(top, fmt)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = height(value or 0)
        x = PAD_LEFT + i * slot + slot * 0.15
        text = fmt.format(value or 0)
        parts.append(
            f'<rect x="{x:.1f}" y="{BASE - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" class="bar">'
            f"<title>{escape(str(label))}: {escape(text)}</title></rect>"
        )
        if n <= MAX_VALUE_LABELS:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{BASE - h - 5:.1f}" class="value" text-anchor="middle">{escape(text)}</text>'
            )
        if i % label_every == 0:
            parts.append(_tick_x(x + slot * 0.35, str(label)))
    return _frame(title, parts, x_title, y_title)


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    fmt: str = "{:.0%}",
    label_every: int = 5,
    x_title: str = "",
    y_title: str = "",
) -> str:
    """Points joined by a line, with gaps where a value is None (no data that day)."""
    n = max(1, len(values))
    top = _linear_top(max([v for v in values if v is not None] + [0]), fmt)
    step = PLOT_W / (n - 1) if n > 1 else 0
    parts = _axis(top, fmt)
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = PAD_LEFT + i * step
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            y = BASE - PLOT_H * value / top
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="point"><title>{escape(str(label))}: {escape(fmt.format(value))}</title></circle>'
            )
        if i % label_every == 0:
            parts.append(_tick_x(x, str(label)))
    if segment:
        segments.append(segment)
    parts.extend(f'<polyline points="{" ".join(s)}" class="line"/>' for s in segments if len(s) > 1)
    return _frame(title, parts, x_title, y_title)


def grouped_bar_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, fmt: str = "{:,.0f}",
    label_every: int = 1, x_title: str = "", y_title: str = "",
) -> str:  # fmt: skip
    """Bars side by side per label, one colour per series (``bar s0``, ``bar s1``…), with a legend."""
    n = max(1, len(labels))
    top = _linear_top(max([v or 0 for _, values in series for v in values] + [0]), fmt)
    slot = PLOT_W / n
    width = slot * 0.8 / max(1, len(series))
    parts = _axis(top, fmt)
    for s, (name, values) in enumerate(series):
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            h = PLOT_H * (value or 0) / top
            x = PAD_LEFT + i * slot + slot * 0.1 + s * width
            parts.append(
                f'<rect x="{x:.1f}" y="{BASE - h:.1f}" width="{width:.1f}" height="{h:.1f}" class="bar s{s}">'
                f"<title>{escape(name)}, {escape(str(label))}: {escape(fmt.format(value or 0))}</title></rect>"
            )
        parts.append(
            f'<rect x="{PAD_LEFT + 10 + s * 170}" y="4" width="12" height="12" class="bar s{s}"/>'
            f'<text x="{PAD_LEFT + 28 + s * 170}" y="15" class="tick">{escape(name)}</text>'
        )
    for i, label in enumerate(labels):
        if i % label_every == 0:
            parts.append(_tick_x(PAD_LEFT + i * slot + slot / 2, str(label)))
    return _frame(title, parts, x_title, y_title)
