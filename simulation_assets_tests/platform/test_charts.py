"""The SVG charts the assets show in the UI: scales, stacking, gaps, axes; and that they stay cheap."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from simulation_assets.core.charts import Guide, Series, chart_svg, hbar_svg, nice_ticks

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 7.3, [0, 2, 4, 6, 8]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 1_234_567, [0, 500_000, 1_000_000, 1_500_000]),
        (3, 3, [3, 4, 5, 6]),  # an empty range still gets an axis
    ],
)
def test_ticks_are_round_steps_that_cover_the_range(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_stacked_areas_of_shares_fill_the_plot_to_the_top() -> None:
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    a, b = [0.25, 0.5, 0.75], [0.75, 0.5, 0.25]
    root = _parse(chart_svg(days, [Series("a", a, kind="area"), Series("b", b, kind="area")], y_range=(0, 1)))
    polygons = list(root.iter(f"{NS}polygon"))
    assert len(polygons) == 2
    top_of_b = [float(p.split(",")[1]) for p in polygons[1].get("points", "").split()[:3]]
    lower_of_b = [float(p.split(",")[1]) for p in polygons[1].get("points", "").split()[3:]]
    upper_of_a = [float(p.split(",")[1]) for p in polygons[0].get("points", "").split()[:3]]
    assert len(set(top_of_b)) == 1  # a + b = 1 every day: one flat top
    assert lower_of_b == upper_of_a[::-1]  # b sits on a
    assert {"2026-01-01", "2026-01-03", "a", "b"} <= set(_texts(root))


def test_bar_heights_are_proportional_and_a_right_axis_has_its_own_scale() -> None:
    root = _parse(
        chart_svg(
            [1, 2, 3],
            [Series("calls", [100, 200, 400], kind="bar"), Series("errors %", [1, 20, 5], axis="right")],
            guides=[Guide(10, axis="right")],
            y2_label="error rate %",
        )
    )
    bars = [
        r
        for r in root.iter(f"{NS}rect")
        if r.get("fill") not in ("white",) and float(r.get("height", 0)) > 10
    ]
    heights = [float(r.get("height", 0)) for r in bars]
    assert heights[1] / heights[0] == pytest.approx(2, rel=0.02)
    assert heights[2] / heights[0] == pytest.approx(4, rel=0.02)
    texts = _texts(root)
    assert "400" in texts and "20" in texts and "error rate %" in texts  # left ticks reach 400, right ones 20
    assert len(list(root.iter(f"{NS}polyline"))) == 1


def test_a_missing_value_breaks_the_line() -> None:
    root = _parse(chart_svg([0, 1, 2, 3, 4], [Series("x", [1, 2, None, 4, 5])]))
    assert [len(p.get("points", "").split()) for p in root.iter(f"{NS}polyline")] == [2, 2]


def test_category_labels_are_thinned_and_escaped() -> None:
    labels = [f"<day {i}>" for i in range(30)]
    svg = chart_svg(labels, [Series("n", list(range(30)), kind="bar")])
    root = _parse(svg)
    shown = [t for t in _texts(root) if t.startswith("<day")]
    assert 4 <= len(shown) <= 8 and shown[0] == "<day 0>"
    assert "<day 0>" not in svg  # escaped in the document


def test_horizontal_log_bars_grow_by_a_decade_per_step() -> None:
    root = _parse(hbar_svg(["a", "b", "c", "empty"], [10, 100, 1000, 0], log_scale=True, x_label="rows"))
    widths = [float(r.get("width", 0)) for r in root.iter(f"{NS}rect") if r.get("fill") != "white"]
    assert widths[1] - widths[0] == pytest.approx(widths[2] - widths[1], rel=0.01)
    assert widths[3] < 1  # zero rows: no bar
    assert "rows (log scale)" in _texts(root) and "1,000" in _texts(root)


def test_same_input_same_bytes() -> None:
    args = (["x", "y"], [Series("s", [1.5, 2.5], kind="bar")])
    assert chart_svg(*args) == chart_svg(*args)


def test_charts_import_nothing_heavy() -> None:
    code = "import sys, simulation_assets.core.charts; print(sorted(m.split('.')[0] for m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("matplotlib", "numpy", "polars", "dagster"):
        assert not re.search(rf"'{heavy}'", loaded), heavy
