"""The asset graph in a real browser: dagster-webserver on loopback, Debian's Chromium headless
(installed by `make test` through scripts/ensure-chromium), a screenshot saved under test-output/."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sf_pipeline.catalog import load_catalog
from sf_pipeline.emulator import EmulatorConfig
from sf_pipeline.local_dagster import LocalDagster

from .helpers import TEST_ROWS

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium (scripts/ensure-chromium)")
    return path


def test_asset_graph_shows_every_catalog_object(tmp_path: Path, emulator_cache: Path) -> None:
    browser = chromium()
    out_dir = ROOT / "test-output"
    out_dir.mkdir(exist_ok=True)
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    with (
        LocalDagster(tmp_path / "home", tmp_path / "ui.duckdb", config) as stack,
        tempfile.TemporaryDirectory() as profile,
    ):
        url = f"{stack.url}/assets"
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
        shot = out_dir / "asset-catalog.png"
        subprocess.run([browser, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=180)
        graph = out_dir / "asset-graph.png"
        subprocess.run(
            [browser, *flags, f"--screenshot={graph}", f"{stack.url}/asset-groups/salesforce"],
            capture_output=True,
            timeout=180,
        )
    assert dom.returncode == 0, dom.stderr[-2000:]
    missing = [name for name in load_catalog().names if name not in dom.stdout]
    assert not missing, f"objects missing from the asset page: {missing}"
    assert shot.exists() and shot.stat().st_size > 10_000
