"""Inline SVG charts, drawn on the server: no JavaScript library, no CDN, readable in a
screenshot and by a screen reader (each chart has a title and a text table beside it).
No Django import; every label is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 48, 36, 12


def _frame(title: str, body: list[str]) -> str:
    t = escape(title)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{t}</title>{''.join(body)}</svg>"
    )


def _axis(max_value: float, fmt: str) -> list[str]:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    parts = [f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - PAD_BOTTOM}" class="axis"/>']
    for i in range(5):
        value = max_value * i / 4
        y = HEIGHT - PAD_BOTTOM - plot_h * i / 4
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{escape(fmt.format(value))}</text>'
        )
    return parts


def _log_axis(top: float) -> list[str]:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    parts = [f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - PAD_BOTTOM}" class="axis"/>']
    for power in range(int(top) + 1):
        y = HEIGHT - PAD_BOTTOM - plot_h * math.log10(1 + 10**power) / top if power else HEIGHT - PAD_BOTTOM
        parts.append(f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{10**power if power else 0:,}</text>'
        )
    return parts


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: str = "{:,.0f}",
    label_every: int = 1,
    log: bool = False,
) -> str:
    """Bars; ``log`` scales heights by log10(1 + value), for counts spanning orders of magnitude
    (each bar's tooltip still shows the exact value)."""
    n = max(1, len(values))

    def scale(v: float) -> float:
        return math.log10(1 + v) if log else v

    top = max([scale(v) for v in values if v is not None] + [1e-9])
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    parts = _log_axis(top) if log else _axis(top, fmt)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * scale(value or 0) / top
        x = PAD_LEFT + i * slot + slot * 0.15
        y = HEIGHT - PAD_BOTTOM - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" class="bar">'
            f"<title>{escape(str(label))}: {escape(fmt.format(value or 0))}</title></rect>"
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" text-anchor="middle">{escape(str(label))}</text>'
            )
    return _frame(title, parts)


def line_chart(
    title: str, labels: Sequence[str], values: Sequence[float | None], *, fmt: str = "{:.0%}", label_every: int = 5
) -> str:
    """Points with gaps where a value is None (no data that day)."""
    n = max(1, len(values))
    top = max([v for v in values if v is not None] + [1e-9])
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(1, n - 1) if n > 1 else 0
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
            y = HEIGHT - PAD_BOTTOM - plot_h * value / top
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="point"><title>{escape(str(label))}: {escape(fmt.format(value))}</title></circle>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" text-anchor="middle">{escape(str(label))}</text>'
            )
    if segment:
        segments.append(segment)
    parts.extend(f'<polyline points="{" ".join(s)}" class="line"/>' for s in segments if len(s) > 1)
    return _frame(title, parts)


def grouped_bar_chart(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, fmt: str = "{:,.0f}",
    label_every: int = 1,
) -> str:  # fmt: skip
    """Bars side by side per label, one colour per series (``bar s0``, ``bar s1``…), with a legend."""
    n = max(1, len(labels))
    top = max([v for _, values in series for v in values] + [1e-9])
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    width = slot * 0.8 / max(1, len(series))
    parts = _axis(top, fmt)
    for s, (name, values) in enumerate(series):
        for i, (label, value) in enumerate(zip(labels, values, strict=True)):
            h = plot_h * (value or 0) / top
            x = PAD_LEFT + i * slot + slot * 0.1 + s * width
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM - h:.1f}" width="{width:.1f}" height="{h:.1f}" class="bar s{s}">'
                f"<title>{escape(name)}, {escape(str(label))}: {escape(fmt.format(value or 0))}</title></rect>"
            )
        parts.append(
            f'<rect x="{PAD_LEFT + 10 + s * 150}" y="4" width="10" height="10" class="bar s{s}"/>'
            f'<text x="{PAD_LEFT + 25 + s * 150}" y="13" class="tick">{escape(name)}</text>'
        )
    for i, label in enumerate(labels):
        if i % label_every == 0:
            parts.append(
                f'<text x="{PAD_LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" class="tick" '
                f'text-anchor="middle">{escape(str(label))}</text>'
            )
    return _frame(title, parts)
