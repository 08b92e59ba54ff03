"""Progress of many object runs, as the demo and the org bench show it: which object is loading, each one as
it ends (status, rows, seconds), done/total and an estimate of what is left. A live display (rich) in an
interactive terminal; plain lines otherwise (CI, pipes, log files), so a long run is never silent."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Ended:
    name: str
    status: str
    rows: object
    seconds: float


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class RunProgress:
    """Told of runs starting and ending; prints plain lines. ``live()`` picks the rich display on a TTY."""

    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total = total
        self.out = out or sys.stdout
        self.done = 0
        self.started_at = time.monotonic()
        self.first_start: float | None = None

    @staticmethod
    def live(total: int) -> RunProgress:
        return RichProgress(total) if sys.stdout.isatty() else RunProgress(total)

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def estimate(self) -> str:
        """What is left, at the pace of the runs ended so far (from the first run's start)."""
        if not self.done or self.first_start is None:
            return "estimating"
        pace = (time.monotonic() - self.first_start) / self.done
        return f"~{_duration(pace * (self.total - self.done))} left"

    def started(self, name: str) -> None:
        self.first_start = self.first_start or time.monotonic()
        self.out.write(f"[{self.done}/{self.total}] loading {name}\n")
        self.out.flush()

    def ended(self, run: Ended) -> None:
        self.done += 1
        self.out.write(
            f"[{self.done}/{self.total}] {run.name}: {run.status}, {run.rows} rows in the table, {run.seconds:.1f}s "
            f"(elapsed {_duration(time.monotonic() - self.started_at)}, {self.estimate()})\n"
        )
        self.out.flush()


class RichProgress(RunProgress):
    """The same, as a live bar with the loading object and the estimate, each ended object printed above it."""

    def __init__(self, total: int, console: object | None = None) -> None:
        super().__init__(total)
        self.console = console  # a rich Console; None: the terminal

    def __enter__(self) -> RunProgress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[estimate]}"),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task("queued", total=self.total, estimate="")
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def started(self, name: str) -> None:
        self.first_start = self.first_start or time.monotonic()
        self._progress.update(self._task, description=f"loading {name}")

    def ended(self, run: Ended) -> None:
        self.done += 1
        style = "green" if run.status == "SUCCESS" else "red"
        self._progress.console.print(
            f"[{style}]{run.status:<8}[/] {run.name:<32} {run.rows!s:>10} rows in the table {run.seconds:8.1f}s"
        )
        self._progress.update(self._task, completed=self.done, estimate=self.estimate())
