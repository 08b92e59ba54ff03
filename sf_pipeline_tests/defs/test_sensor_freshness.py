"""The change sensor through a real webserver and daemon with the project's dagster.yaml: records created,
edited and deleted in the org reach DuckDB within one sensor interval plus one run; a window already loaded
with no change since gets no run; every tick says why in its log. The Id sweep, launched as the UI launches
a check-only run, removes a hard-deleted record."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key
from sf_pipeline.defs.jobs import run_tags
from sf_pipeline.defs.sensors import SENSOR_NAME
from sf_pipeline.defs.sweep import ID_SWEEP_CHECK, SWEEP_JOB
from sf_pipeline.salesforce import SalesforceClient
from sf_pipeline.warehouse import Warehouse
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.local_dagster import LocalDagster, instigator_ticks, tick_log

from ..helpers import TEST_ROWS, Emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

INTERVAL_S = 10  # SF_PIPELINE_SENSOR_INTERVAL_SECONDS for the test (the default is 300)


def sensor_ticks(instance: dg.DagsterInstance) -> list:
    """The change sensor's ticks, oldest first."""
    return instigator_ticks(instance, SENSOR_NAME)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def lead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if asset_key("Lead") in (r.asset_selection or ())]


def test_changes_reach_the_warehouse_within_one_interval_plus_one_run(tmp_path: Path, emulator_cache: Path) -> None:
    env = {"SF_PIPELINE_SENSOR_INTERVAL_SECONDS": str(INTERVAL_S), "SF_PIPELINE_WORK_DIR": str(tmp_path / "work")}
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    catalog = load_catalog()
    with LocalDagster(tmp_path / "home", tmp_path / "sf.duckdb", config, extra_env=env) as stack:
        assert stack.emulator is not None
        org = Emulator(stack.emulator)
        # the warehouse already holds Lead, as after the loads of earlier days
        with SalesforceClient(org.settings()) as client:
            sync_object(
                client,
                catalog.get("Lead"),
                Warehouse(duckdb_path=stack.duckdb_path),
                full_refresh=True,
                work_dir=tmp_path / "seed",
            )
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.home)))
        stack.start_daemon()
        stack.start_sensor(SENSOR_NAME)
        first = wait_for(lambda: [t for t in sensor_ticks(instance) if t.is_completed], 120, "the sensor's first tick")[
            0
        ]
        assert first.run_ids == [], "nothing changed in the org's last 24 hours: no run"
        assert "Lead: skipped: nothing changed" in tick_log(instance, first)

        ids = org.truth_ids("Lead")
        changed_at = time.time()
        (new_id,) = org.change(
            "Lead",
            insert=[{"LastName": "Newman", "Company": "Fresh Co", "Status": "Open"}],
            update=[{"Id": ids[0], "Company": "Renamed, Inc."}],
            delete=[ids[1]],
        )["inserted"]
        run = wait_for(lambda: lead_runs(instance), 120, "a Lead run")[0]
        statuses = stack.wait([run.run_id], timeout_s=300)
        assert statuses == {run.run_id: "SUCCESS"}
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None and record.end_time is not None
        latency = record.end_time - changed_at
        requesting = next(t for t in sensor_ticks(instance) if run.run_id in t.run_ids)
        # Salesforce's updated/ and deleted/ resources see whole minutes: the change is seen once its minute is
        # over, by a tick begun in the minute's last 8 s (the next one, 10 s later, would come after the end: it
        # waits for the end, and says so) or else by the first tick after the end
        minute_over = (changed_at // 60 + 1) * 60
        earlier = [
            t for t in sensor_ticks(instance) if changed_at < t.timestamp < requesting.timestamp and t.is_completed
        ]
        # (stamped as it starts, a tick asks a moment later: one stamped 8.x s before the end may wait too)
        assert [t for t in earlier if t.timestamp > minute_over - 7] == [], "the first tick that could see it"
        if requesting.timestamp < minute_over:
            assert "for the minute to end" in tick_log(instance, requesting), tick_log(instance, requesting)
        month = time.strftime("%Y-%m-01", time.gmtime())
        assert run.tags["dagster/asset_partition_range_end"] == month, "the open partition holds today's changes"
        config = run.run_config["ops"]["salesforce__Lead"]["config"]
        assert config["until"] > config["since"] > month, "only the span the sensor counted, not the whole month"
        log = tick_log(instance, requesting)
        assert "Lead: 3 row(s) created, edited or deleted" in log and "Account: skipped: nothing changed" in log
        tick_after, run_s = requesting.timestamp - changed_at, record.end_time - record.start_time
        print(
            f"\nchange -> in DuckDB: {latency:.1f}s (sensor interval {INTERVAL_S}s; tick "
            f"{tick_after:.1f}s after the change, {'waiting' if requesting.timestamp < minute_over else 'begun'} "
            f"{abs(requesting.timestamp - minute_over):.1f}s before/after its minute's end; run {run_s:.1f}s)"
        )
        # the load's progress, as the UI's run view shows it: the pipeline's own lines in the run's event log
        progress = [e.user_message for e in instance.all_logs(run.run_id) if "[Lead]" in e.user_message]
        # three changed records: read by REST (no Bulk job for a window this small), then loaded
        assert any("3 records by REST queryAll" in m for m in progress), progress
        assert any("chunk 1 loaded: 3 rows" in m and "peak RSS" in m for m in progress), progress
        assert not any("HTTP Request:" in e.user_message for e in instance.all_logs(run.run_id)), "no httpx noise"
        with duckdb.connect(str(stack.duckdb_path), read_only=True) as con:
            rows = dict(con.execute("SELECT id, company FROM salesforce.lead").fetchall())
        assert rows[new_id] == "Fresh Co" and rows[ids[0]] == "Renamed, Inc." and ids[1] not in rows
        assert set(rows) == set(org.truth_ids("Lead"))

        # no run for a window already loaded with no change since: a tick begun after the run ended asks Lead
        # again (no longer pending) and requests nothing
        after = wait_for(
            lambda: [t for t in sensor_ticks(instance) if t.timestamp > record.end_time and t.is_completed],
            120,
            "a tick after the run",
        )[0]
        assert "Lead: skipped: nothing changed" in tick_log(instance, after), tick_log(instance, after)
        assert len(lead_runs(instance)) == 1

        # a hard delete never shows in queryAll: the Id sweep (a check-only run, launched as the UI does) finds it
        org.change("Lead", hard_delete=[ids[2]])
        sweep = stack.launch(
            SWEEP_JOB,
            checks=[(asset_key("Lead").path, ID_SWEEP_CHECK)],
            tags=run_tags(instance, catalog.get("Lead")),
        )
        assert stack.wait([sweep], timeout_s=300) == {sweep: "SUCCESS"}
        with duckdb.connect(str(stack.duckdb_path), read_only=True) as con:
            left = {r[0] for r in con.execute("SELECT id FROM salesforce.lead").fetchall()}
        assert left == set(org.truth_ids("Lead")) and ids[2] not in left
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(asset_key("Lead"), ID_SWEEP_CHECK)]
        )[dg.AssetCheckKey(asset_key("Lead"), ID_SWEEP_CHECK)]
        assert evaluation.run_id == sweep


def test_the_weekly_resync_schedule_runs_batches_the_daemon_launches(tmp_path: Path, emulator_cache: Path) -> None:
    """With the re-sync's cron set to every minute, the daemon's scheduler requests the trailing partitions of
    every object in batches (here 2 objects a run); the runs are object loads, one at a time."""
    catalog = tmp_path / "catalog.yaml"  # three objects keep the test short
    catalog.write_text("objects:\n  - name: Lead\n  - name: Case\n  - name: User\n")
    env = {
        "SF_PIPELINE_CATALOG": str(catalog),
        "SF_PIPELINE_RESYNC_CRON": "* * * * *",
        "SF_PIPELINE_BATCH_OBJECTS": "2",
        "SF_PIPELINE_WORK_DIR": str(tmp_path / "work"),
    }
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    with LocalDagster(tmp_path / "home", tmp_path / "sf.duckdb", config, extra_env=env, with_daemon=True) as stack:
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.home)))
        stack.start_schedule("salesforce_weekly_resync")

        def first_tick_runs() -> list[dg.DagsterRun]:
            runs = [x for x in instance.get_runs() if x.tags.get("dagster/schedule_name")]
            first = min((x.tags[SCHEDULED_EXECUTION_TIME_TAG] for x in runs), default=None)
            return [x for x in runs if x.tags[SCHEDULED_EXECUTION_TIME_TAG] == first]

        runs = wait_for(lambda: len(first_tick_runs()) >= 2 and first_tick_runs(), 240, "the re-sync's runs")
        statuses = stack.wait([r.run_id for r in runs], timeout_s=600)
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    assert sorted(len(r.asset_selection) for r in runs) == [1, 2], "three objects, batches of two"
    assert {k for r in runs for k in r.asset_selection} == {asset_key(e.name) for e in load_catalog(catalog).objects}
    records = sorted((r.start_time, r.end_time) for r in (instance.get_run_record_by_id(x.run_id) for x in runs))
    assert all(a[1] <= b[0] for a, b in zip(records, records[1:], strict=False)), "runs never overlap"
