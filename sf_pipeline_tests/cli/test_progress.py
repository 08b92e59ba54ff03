"""The demo's progress: plain lines when output is not a terminal, a live rich display when it is."""

from __future__ import annotations

import io

from rich.console import Console

from sf_pipeline.cli.progress import Ended, RichProgress, RunProgress


def test_plain_lines_say_what_loads_what_ended_and_what_is_left() -> None:
    out = io.StringIO()
    with RunProgress(2, out) as progress:
        progress.started("Account")
        progress.ended(Ended("Account", "SUCCESS", 1200, 3.5))
        progress.started("Contact")
        progress.ended(Ended("Contact", "FAILURE", "-", 0.0))
    lines = out.getvalue().splitlines()
    assert lines[0] == "[0/2] loading Account"
    assert lines[1].startswith("[1/2] Account: SUCCESS, 1200 rows in the table, 3.5s (elapsed ") and "left)" in lines[1]
    assert lines[3].startswith("[2/2] Contact: FAILURE, - rows in the table")
    assert RunProgress.live(3).__class__ is RunProgress, "pytest's output is no terminal: plain lines"


def test_a_terminal_gets_a_live_bar_with_each_object_printed_above_it() -> None:
    screen = io.StringIO()
    with RichProgress(2, Console(file=screen, force_terminal=True, color_system=None, width=100)) as progress:
        progress.started("Account")
        progress.ended(Ended("Account", "SUCCESS", 1200, 3.5))
        progress.started("Contact")
        progress.ended(Ended("Contact", "SUCCESS", 30, 0.7))
    text = screen.getvalue()
    assert "loading Contact" in text and "2/2" in text and "left" in text
    assert "Account" in text and "1200 rows" in text and "30 rows" in text
