"""A command of one step prints its summary without rich; longer ones get rich's bar, every task on it."""

from __future__ import annotations

import io

import pytest

from simulation_assets.commands import common

PLAIN = {"markup": False, "highlight": False}  # how the power-user command prints its report's lines


@pytest.mark.parametrize(
    ("text", "options", "renders"),
    [
        ("Activity: tick 1 in 0.31 s; 13 customers, +253 API calls", {}, False),
        ("Wrote out/customers, tick_log (.parquet), summary.json ✅", {}, False),
        ("[bold red]error:[/] --days must be a positive integer", {}, True),  # markup: rich renders it
        ("took 0:00:01 :warning: twice", {}, True),  # an emoji code: rich renders it
        ("Edge cases: 3/3 [rate_limit, timeout] against http://127.0.0.1:8000/api", PLAIN, False),
        ("took 0:00:01 :warning: twice", PLAIN, True),  # markup off leaves emoji codes on
        ("p95 120 ms [slo 300 ms]", {"markup": False, "highlight": True}, True),  # highlighting on
        ("p95 120 ms", {"markup": False, "style": "bold"}, True),  # another option
    ],
)
def test_the_console_writes_what_rich_writes(
    monkeypatch, capsys, text: str, options: dict, renders: bool
) -> None:
    from rich.console import Console

    expected = io.StringIO()
    Console(file=expected, highlight=False, soft_wrap=True, force_terminal=False).print(text, **options)
    monkeypatch.setattr(common, "_CONSOLE", [])  # rich not loaded yet, as in a fresh command
    common.console.print(text, **options)
    assert capsys.readouterr().out == expected.getvalue()
    assert bool(common._CONSOLE) == renders  # rich only where it may render the line otherwise


def test_the_bar_appears_with_the_first_task_worth_it_and_shows_the_earlier_ones(monkeypatch) -> None:
    monkeypatch.setattr(common, "_CONSOLE", [])
    with common.progress(min_total=2) as bar:
        days = bar.add_task("lifecycle", total=1)
        bar.advance(days)
        hidden = bar.add_task("traffic", total=0, visible=False)
        assert bar.bar is None and not common._CONSOLE  # one day: no bar, no rich
        windows = bar.add_task("windows", total=48)
        assert bar.bar is not None
        bar.advance(windows, 3)
        shown = {t.description: (t.completed, t.total, t.visible) for t in bar.bar.tasks}
    assert shown == {"lifecycle": (1, 1, True), "traffic": (0, 0, False), "windows": (3, 48, True)}
    assert hidden == 1
