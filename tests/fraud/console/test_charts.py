"""The console's SVG charts: axes that read right, every label escaped."""

from __future__ import annotations

import re

from fraud.console import charts


def texts(svg: str, css_class: str) -> list[str]:
    return re.findall(rf'<text[^>]*class="{css_class}"[^>]*>([^<]*)</text>', svg)


def test_a_log_axis_starts_at_one_and_climbs_by_powers_of_ten():
    svg = charts.bar_chart("Decisions", ["approve", "review", "decline"], [25_000, 40, 0], log=True)
    assert texts(svg, "tick")[:6] == ["1", "10", "100", "1,000", "10,000", "100,000"]
    assert "0" not in texts(svg, "tick")
    assert texts(svg, "value") == ["25,000", "40", "0"]


def test_linear_ticks_are_round_and_never_repeat():
    assert texts(charts.line_chart("Rate", ["a", "b"], [0.004, 0.0123], fmt="{:.1%}"), "tick")[:5] == [
        "0.0%",
        "0.5%",
        "1.0%",
        "1.5%",
        "2.0%",
    ]
    assert texts(charts.bar_chart("Few", ["a"], [1]), "tick")[:5] == ["0", "1", "2", "3", "4"]
    assert texts(charts.bar_chart("None", ["a"], [0]), "tick")[:5] == ["0", "1", "2", "3", "4"]


def test_axis_titles_and_labels_are_escaped_text():
    svg = charts.grouped_bar_chart("<b>t</b>", ["<i>"], [("<s>", [1])], x_title="Day <UTC>", y_title="Count & more")
    assert "<b>" not in svg and "<i>" not in svg and "<s>" not in svg
    assert texts(svg, "axis-title") == ["Day &lt;UTC&gt;", "Count &amp; more"]
