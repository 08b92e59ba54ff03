"""What a user sees in the UI, in a real browser: dagster-webserver on loopback with the project's
dagster.yaml, Debian's Chromium headless (installed by `make test` through scripts/ensure-chromium).
Screenshots are saved under test-output/ (asset catalog and graph, runs waiting in the queue, an asset's
column schema, a run's progress lines); each page's rendered DOM is checked for what the shot must show."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.local_dagster import LocalDagster

from ..helpers import TEST_ROWS, Emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output"
ASSET_JOB = "__ASSET_JOB"  # the implicit job the asset graph's Materialize button launches
RANGE = ("2026-10-01", "2026-10-31")
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


class Browser:
    """One headless Chromium profile: ``page(url, name)`` renders a page once, saves its PNG under test-output/
    and returns its DOM."""

    def __init__(self, profile: str) -> None:
        path = shutil.which("chromium")
        if path is None:
            pytest.fail("chromium is not installed: `make test` installs Debian's chromium (scripts/ensure-chromium)")
        self.command = [path, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]

    def page(self, url: str, name: str) -> str:
        path = OUT / name
        path.unlink(missing_ok=True)
        done = subprocess.run(
            [*self.command, "--dump-dom", f"--screenshot={path}", url], capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert path.exists() and path.stat().st_size > 10_000, f"no screenshot of {url}"
        return done.stdout


def dismiss_community_dialog(stack: LocalDagster) -> None:
    """What the dialog's Skip button does on the server, so it covers no screenshot (a fresh browser profile
    has no memory of it)."""
    stack.graphql("mutation { setNuxSeen }", {})


def test_the_ui_shows_objects_queued_runs_column_schema_and_progress(tmp_path: Path, emulator_cache: Path) -> None:
    OUT.mkdir(exist_ok=True)
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    with (
        # Bulk, whatever the size: the slow job below keeps Account's run in progress
        LocalDagster(
            tmp_path / "home", tmp_path / "ui.duckdb", config, extra_env={"SF_PIPELINE_REST_MAX_RECORDS": "0"}
        ) as stack,
        tempfile.TemporaryDirectory() as profile,
    ):
        dismiss_community_dialog(stack)
        browser = Browser(profile)
        catalog_dom = browser.page(f"{stack.url}/assets", "asset-catalog.png")
        browser.page(f"{stack.url}/asset-groups/salesforce_standard", "asset-graph.png")

        # Account's query job stays InProgress until the faults are cleared, so that two more objects
        # materialized from the asset graph, as the Materialize button launches them, wait in the queue
        assert stack.emulator is not None
        org = Emulator(stack.emulator)
        org.fault(kind="slow_job", stage="poll", object="Account", polls=1000)
        tags = {ASSET_PARTITION_RANGE_START_TAG: RANGE[0], ASSET_PARTITION_RANGE_END_TAG: RANGE[1]}
        account = stack.launch(ASSET_JOB, assets=[asset_key("Account").path], tags=tags)
        stack.start_daemon()
        stack.wait_for_status(account, "STARTED", timeout_s=120)
        waiting = [stack.launch(ASSET_JOB, assets=[asset_key(name).path], tags=tags) for name in ("Lead", "Contact")]
        queued_url = f"{stack.url}/runs?q[]={quote('status:QUEUED')}"
        queued_dom = browser.page(queued_url, "runs-queued.png")
        statuses_then = stack.statuses([account, *waiting])
        org.clear_faults()  # Account's job is done at its next poll
        assert set(stack.wait([account, *waiting], timeout_s=600).values()) == {"SUCCESS"}

        account_url = f"{stack.url}/assets/salesforce/Account"
        account_dom = browser.page(account_url, "asset-column-schema.png")
        # the run's event log filtered to the loader's progress lines, as typing in its filter box does
        progress_url = f"{stack.url}/runs/{account}?logs={quote('[Account]')}"
        progress_dom = browser.page(progress_url, "run-progress.png")

    missing = [name for name in load_catalog().names if name not in catalog_dom]
    assert not missing, f"objects missing from the asset page: {missing}"
    assert statuses_then == {account: "STARTED", waiting[0]: "QUEUED", waiting[1]: "QUEUED"}, statuses_then
    assert "Queued (2)" in queued_dom and "In progress (1)" in queued_dom, "the Runs page's tabs miscount"
    assert all(run_id[:8] in queued_dom for run_id in waiting), "a queued run is missing from the Queued tab"
    # the column schema: Salesforce field names, their labels and types as descriptions
    assert "Columns" in account_dom
    for column, label in (("annual_revenue", "Annual Revenue"), ("billing_city", "Billing City")):
        assert column in account_dom and label in account_dom, f"{column} ({label}) missing from the column schema"
    for line in ("page Account.00000.csv on disk", "ready to load", "chunk 1 loaded", "peak RSS"):
        assert line in progress_dom, f"{line!r} is not among the run's log lines"
