"""Helpers shared by the benchmarks: an emulator in its own process, timing, and a table printer."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def start_emulator(port: int, rows: str, page_records: int | None = None) -> subprocess.Popen:
    """The emulator in a separate process, so the client's RSS is measured alone."""
    page_args = ["--page-records", str(page_records)] if page_records else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sf_pipeline.cli",
            "--log-level",
            "WARNING",
            "emulator",
            "--port",
            str(port),
            "--rows",
            rows,
            *page_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/services/data", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("emulator did not start")


def materialize_range_command(name: str, first: str, last: str) -> list[str]:
    """`dagster asset materialize` of one object over a partition range, as a user types it."""
    dagster = str(Path(sys.executable).parent / "dagster")
    select = ["-m", "sf_pipeline.definitions", "--select", f"salesforce/{name}"]
    return [dagster, "asset", "materialize", *select, "--partition-range", f"{first}...{last}"]


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values)
