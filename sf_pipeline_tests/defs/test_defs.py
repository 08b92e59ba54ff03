"""The Dagster code location: definitions load, an asset backfill range is one run with correct rows,
and the sensor and schedules make the right run requests, all evaluated against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import create_run_for_test

from sf_pipeline.catalog import CatalogError, load_catalog
from sf_pipeline.defs.assets import POOL, asset_key, build_assets, partitions_def
from sf_pipeline.defs.automation import AutomationSettings
from sf_pipeline.defs.checks import EMPTY_GUARD_CHECK, RECONCILE_CHECK
from sf_pipeline.defs.jobs import PRIORITY_TAG, build_jobs
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.defs.schedules import build_schedules
from sf_pipeline.defs.sensors import build_change_sensor, build_initial_load_sensor
from sf_pipeline.defs.sweep import ID_SWEEP_CHECK, build_id_sweep
from sf_pipeline.errors import SettingsError
from sf_testbed.emulator.soql import epoch_ms

from ..helpers import Emulator

STARTED = DagsterRunStatus.STARTED

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_instance() -> Iterator[dg.DagsterInstance]:
    """Definitions resolve against the current instance's defs-state storage: a live one, whatever an earlier
    test of this worker left behind (an instance gone without being disposed of leaves a dead reference)."""
    with dg.instance_for_test() as instance:
        yield instance


def test_definitions_load_with_every_catalog_object(live_instance: dg.DagsterInstance) -> None:
    from sf_pipeline.definitions import catalog, defs

    keys = {k for a in defs.assets for k in a.keys}  # type: ignore[union-attr]
    assert keys == {asset_key(n) for n in catalog.names}
    assert len(catalog.names) >= 8
    for job in defs.jobs:  # type: ignore[union-attr]
        # every step that loads or sweeps an object sits in the object-load pool (one at a time, even in a run
        # launched outside the queue); discovery's step loads nothing
        pools = {node.pool for node in defs.resolve_job_def(job.name).graph.node_defs}
        assert pools == ({POOL} if job.name != "salesforce_discovery" else {None}), (job.name, pools)
    assert defs.resolve_job_def("salesforce_objects") is not None


def test_load_jobs_run_the_objects_checks_but_not_the_id_sweep(live_instance: dg.DagsterInstance) -> None:
    """Sensor and schedule runs go through the load jobs: a full Id extract on each would cost minutes and API
    calls every five minutes; the sweep has its own job."""
    from sf_pipeline.definitions import defs

    checks = defs.resolve_job_def("salesforce_objects").asset_layer.asset_graph.asset_check_keys
    account = {c.name for c in checks if c.asset_key == asset_key("Account")}
    assert "schema_unchanged" in account and "row_count_reconciliation" in account
    assert not any(c.name == ID_SWEEP_CHECK for c in checks)
    sweep = defs.resolve_job_def("salesforce_id_sweep").asset_layer.asset_graph.asset_check_keys
    assert dg.AssetCheckKey(asset_key("Account"), ID_SWEEP_CHECK) in sweep


def test_catalog_errors_name_the_object_and_setting(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text("objects:\n  - name: Account\n    cursor_field: 'Modstamp; DROP'\n")
    with pytest.raises(CatalogError, match=r"object 'Account'.*cursor_field"):
        load_catalog(bad)
    bad.write_text("objects:\n  - name: Account\n    colour: blue\n")
    with pytest.raises(CatalogError, match="unknown setting.*colour"):
        load_catalog(bad)
    # the key is always Id (the merge, the deletes, the Id sweep): another one is refused by name
    bad.write_text("objects:\n  - name: Account\n    primary_key: AccountNumber\n")
    with pytest.raises(CatalogError, match=r"object 'Account'.*primary_key 'AccountNumber'.*always Id"):
        load_catalog(bad)
    bad.write_text("objects:\n  - name: Account\n    primary_key: Id\n")
    assert load_catalog(bad).get("Account").name == "Account"


def resources(org: Emulator, db: Path) -> dict:
    return {
        "salesforce": SalesforceResource(login_url=org.url, max_records_per_page=2_000, max_retries=3),
        "warehouse": WarehouseResource(duckdb_path=str(db)),
        "pipeline_settings": PipelineSettings(chunk_min_rows=1_000, chunk_target_mb=1),
    }


@pytest.mark.e2e  # the whole pipeline through Dagster into the warehouse
def test_backfill_range_is_one_run_with_correct_rows(
    org: Emulator, tmp_path: Path, live_instance: dg.DagsterInstance
) -> None:
    catalog = load_catalog()
    assets = build_assets(catalog)
    account = next(a for a in assets if asset_key("Account") in a.keys)
    db = tmp_path / "sf.duckdb"
    result = dg.materialize(
        [account],
        resources=resources(org, db),
        tags={ASSET_PARTITION_RANGE_START_TAG: "2024-01-01", ASSET_PARTITION_RANGE_END_TAG: "2024-03-01"},
    )
    assert result.success
    materializations = result.asset_materializations_for_node("salesforce__Account")
    # Dagster records the range as one materialization per (monthly) partition, all from this one run and one
    # step: one Bulk query job and one load for the whole window
    assert len(materializations) == 3
    assert len({m.metadata["bulk_job_id"].value for m in materializations}) == 1
    # every partition says what was loaded; only the last carries the schema, columns and load ids
    assert all(
        "rows_written" in m.metadata and "dagster/column_schema" not in m.metadata for m in materializations[:-1]
    )
    meta = materializations[-1].metadata
    # the range starts at the first partition, which is open at its start: every older record comes with it
    until = datetime(2024, 4, 1, tzinfo=UTC)
    live = org.truth_ids("Account", None, epoch_ms(until.isoformat()))
    everything = org.truth_ids("Account", None, epoch_ms(until.isoformat()), True)
    assert meta["records_read"].value == len(everything)
    assert meta["records_deleted"].value == len(everything) - len(live)
    assert meta["rows_written"].value == len(live)
    assert meta["chunks"].value >= 2 and meta["peak_rss_mb"].value > 0
    with duckdb.connect(str(db), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute("SELECT id FROM salesforce.account").fetchall())
    assert ids == sorted(live)
    # dagster-dlt ran each chunk: its metadata merged over the chunks into the one materialization
    last = materializations[-1].metadata
    # a first load into an empty table appends the live rows: dlt wrote those alone
    assert (
        last["dlt_rows_loaded"].value == meta["rows_written"].value and last["dagster/storage_kind"].value == "duckdb"
    )
    assert last["dagster/table_name"].value == "salesforce.account" and "jobs" not in last
    assert last["dagster/row_count"].value == len(live), "the warehouse's own count"
    columns = {c.name: c for c in last["dagster/column_schema"].schema.columns}
    assert columns["annual_revenue"].description == "Annual Revenue (AnnualRevenue, currency)"
    assert columns["annual_revenue"].type.startswith("decimal")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[RECONCILE_CHECK].passed and checks[EMPTY_GUARD_CHECK].passed


def sensor_context(org: Emulator, cursor: dict[str, str], instance: dg.DagsterInstance):
    return dg.build_sensor_context(
        cursor=json.dumps(cursor),
        instance=instance,
        resources={"salesforce": SalesforceResource(login_url=org.url), "pipeline_settings": PipelineSettings()},
    )


def test_change_sensor_requests_the_changed_objects_in_batches_over_their_span(org: Emulator) -> None:
    catalog = load_catalog()
    jobs = build_jobs(catalog)
    sensor = build_change_sensor(catalog, jobs, AutomationSettings(batch_objects=4))
    cursor = {e.name: "2026-10-01T00:00:00+00:00" for e in catalog.objects}
    cursor["User"] = "2030-01-01T00:00:00+00:00"  # nothing after this: no request for User
    month = datetime.now(UTC).date().replace(day=1).isoformat()
    # an instance disposed of here: one left undisposed keeps Dagster's current defs-state storage pointing at
    # it after it is gone, and a later test of the same worker fails to load Definitions
    with dg.instance_for_test() as instance, sensor_context(org, cursor, instance) as context:
        result = sensor(context)
    objects = [k.path[1] for r in result.run_requests for k in r.asset_selection]
    assert sorted(objects) == sorted(n for n in catalog.names if n != "User")
    assert [len(r.asset_selection) for r in result.run_requests] == [4, 3], "7 objects, batches of 4"
    weights = {e.name: max(1, int(e.weight)) for e in catalog.objects}
    assert [weights[n] for n in objects] == sorted(weights[n] for n in objects)[::-1], "heaviest first"
    for r in result.run_requests:
        # from the cursor's partition to the open one (this month's), which holds the changes made today
        assert (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) == ("2026-10-01", month)
        assert int(r.tags[PRIORITY_TAG]) >= 1
        # each object loads just the span it was asked about, not the whole months, with its cheap checks
        for key in r.asset_selection:
            config = r.run_config["ops"][key.to_python_identifier()]["config"]
            assert config["since"] == cursor[key.path[1]] and config["until"] > config["since"]
        assert {c.asset_key for c in r.asset_check_keys} == set(r.asset_selection)
        assert ID_SWEEP_CHECK not in {c.name for c in r.asset_check_keys}
    new_cursor = json.loads(result.cursor)
    assert all(new_cursor[n] > cursor[n] for n in catalog.names if n != "User")


def test_change_sensor_skips_an_object_with_a_run_pending_and_keeps_its_cursor(org: Emulator) -> None:
    catalog = load_catalog()
    sensor = build_change_sensor(catalog, build_jobs(catalog), AutomationSettings())
    cursor = {e.name: "2026-10-01T00:00:00+00:00" for e in catalog.objects}
    with dg.instance_for_test() as instance:
        queued = create_run_for_test(  # a run of Lead in progress, launched as the UI launches it
            instance, job_name="__ASSET_JOB", asset_selection=frozenset({asset_key("Lead")}), status=STARTED
        )
        with sensor_context(org, cursor, instance) as context:
            result = sensor(context)
    objects = {k.path[1] for r in result.run_requests for k in r.asset_selection}
    assert "Lead" not in objects and "Account" in objects
    assert json.loads(result.cursor)["Lead"] == cursor["Lead"], "the pending run's object is counted again later"
    assert queued.run_id


def test_automation_skips_every_object_while_the_api_budget_is_low(org: Emulator) -> None:
    catalog = load_catalog()
    jobs = [*build_jobs(catalog), build_id_sweep(catalog)[1]]
    sensor = build_change_sensor(catalog, jobs, AutomationSettings(api_budget_floor=0.10))
    cursor = {e.name: "2026-10-01T00:00:00+00:00" for e in catalog.objects}
    org.set_api_usage(used=95_000, limit=100_000)
    try:
        with dg.instance_for_test() as instance, sensor_context(org, cursor, instance) as context:
            result = sensor(context)
        assert isinstance(result, dg.SkipReason) and "org API budget" in (result.skip_message or "")
        assert "5.0% left" in result.skip_message and "SF_PIPELINE_API_BUDGET_FLOOR" in result.skip_message
        daily = next(s for s in build_schedules(catalog, jobs, AutomationSettings()) if s.name == "salesforce_daily")
        with (
            dg.instance_for_test() as instance,
            dg.build_schedule_context(
                scheduled_execution_time=datetime(2026, 11, 22, 2, tzinfo=UTC),
                instance=instance,
                resources={"salesforce": SalesforceResource(login_url=org.url)},
            ) as context,
        ):
            assert list(daily(context)) == []
        org.set_api_usage(used=85_000, limit=100_000)  # 15% left: above the floor
        with dg.instance_for_test() as instance, sensor_context(org, cursor, instance) as context:
            assert sensor(context).run_requests
    finally:
        org.set_api_usage(used=0, limit=100_000)


def test_automation_settings_come_from_the_environment_and_name_the_variable() -> None:
    settings = AutomationSettings.from_env({"SF_PIPELINE_SENSOR_INTERVAL_SECONDS": "30"})
    assert settings.sensor_interval_seconds == 30 and settings.api_budget_floor == 0.10
    with pytest.raises(SettingsError, match="SF_PIPELINE_API_BUDGET_FLOOR"):
        AutomationSettings.from_env({"SF_PIPELINE_API_BUDGET_FLOOR": "ten percent"})
    with pytest.raises(SettingsError, match="SF_PIPELINE_API_BUDGET_FLOOR"):
        AutomationSettings.from_env({"SF_PIPELINE_API_BUDGET_FLOOR": "1.5"})
    with pytest.raises(SettingsError, match="SF_PIPELINE_RESYNC_CRON"):
        AutomationSettings.from_env({"SF_PIPELINE_RESYNC_CRON": "every sunday"})
    with pytest.raises(SettingsError, match="SF_PIPELINE_SENSOR_INTERVAL_SECONDS"):
        AutomationSettings.from_env({"SF_PIPELINE_SENSOR_INTERVAL_SECONDS": "0"})


def test_schedules_request_the_previous_day_and_the_sweep_in_batches(org: Emulator) -> None:
    catalog = load_catalog()
    jobs = [*build_jobs(catalog), build_id_sweep(catalog)[1]]
    daily, sweep = [
        s
        for s in build_schedules(catalog, jobs, AutomationSettings(batch_objects=3))
        if s.name in ("salesforce_daily", "salesforce_weekly_id_sweep")
    ]
    when = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            scheduled_execution_time=when,
            instance=instance,
            resources={"salesforce": SalesforceResource(login_url=org.url)},
        ) as context,
    ):
        daily_requests = list(daily(context))
        sweep_requests = list(sweep(context))
    assert {r.partition_key for r in daily_requests} == {"2026-11-01"}, "the partition that holds the 21st"
    for r in daily_requests:  # the previous day, complete, inside its (monthly) partition
        for config in r.run_config["ops"].values():
            assert config["config"] == {"since": "2026-11-21T00:00:00+00:00", "until": "2026-11-22T00:00:00+00:00"}
    assert [len(r.asset_selection) for r in daily_requests] == [3, 3, 2]
    priorities = [int(r.tags[PRIORITY_TAG]) for r in daily_requests]
    assert priorities == sorted(priorities, reverse=True), "heaviest batches are requested first"
    assert [c.asset_key for r in sweep_requests for c in r.asset_check_keys] == [
        k for r in daily_requests for k in r.asset_selection
    ]
    assert all(not r.asset_selection for r in sweep_requests), "checks alone"
    assert {c.name for r in sweep_requests for c in r.asset_check_keys} == {ID_SWEEP_CHECK}
    assert partitions_def(catalog).get_first_partition_key() == "2024-01-01"


def test_weekly_resync_requests_the_partitions_holding_the_last_days_in_batches(org: Emulator) -> None:
    catalog = load_catalog()
    jobs = [*build_jobs(catalog), build_id_sweep(catalog)[1]]
    for days, first in ((7, "2026-11-01"), (30, "2026-10-01")):
        resync = next(
            s
            for s in build_schedules(catalog, jobs, AutomationSettings(resync_days=days, batch_objects=5))
            if s.name == "salesforce_weekly_resync"
        )
        assert resync.cron_schedule == "0 4 * * 0" and resync.default_status == dg.DefaultScheduleStatus.STOPPED
        with (
            dg.instance_for_test() as instance,
            dg.build_schedule_context(
                scheduled_execution_time=datetime(2026, 11, 22, 4, 0, tzinfo=UTC),
                instance=instance,
                resources={"salesforce": SalesforceResource(login_url=org.url)},
            ) as context,
        ):
            requests = list(resync(context))
        assert [len(r.asset_selection) for r in requests] == [5, 3]
        assert {k.path[1] for r in requests for k in r.asset_selection} == set(catalog.names)
        for r in requests:
            assert (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
                first,
                "2026-11-01",
            )
            assert not r.run_config, "whole partitions, no narrower window"


def test_weekly_formula_reload_reloads_in_full_an_object_that_keeps_formula_fields(org: Emulator) -> None:
    catalog = load_catalog()
    jobs = [*build_jobs(catalog), build_id_sweep(catalog)[1]]
    reload = next(
        s for s in build_schedules(catalog, jobs, AutomationSettings()) if s.name == "salesforce_weekly_formula_reload"
    )
    with dg.instance_for_test() as instance:
        for name in ("Invoice__c", "Lead"):  # as their last loads recorded it; only Invoice__c keeps formulas
            fields = ["Margin__c"] if name == "Invoice__c" else []
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key(name), metadata={"formula_fields": dg.MetadataValue.json(fields)})
            )
        with dg.build_schedule_context(
            scheduled_execution_time=datetime(2026, 11, 22, 4, 0, tzinfo=UTC),
            instance=instance,
            resources={"salesforce": SalesforceResource(login_url=org.url)},
        ) as context:
            requests = {r.asset_selection[0].path[1]: r for r in reload(context)}
    assert list(requests) == ["Invoice__c"], "only objects whose catalog entry keeps formula fields"
    invoice = requests["Invoice__c"]
    assert invoice.run_config == {"ops": {"salesforce__Invoice__c": {"config": {"full_refresh": True}}}}
    assert (invoice.tags[ASSET_PARTITION_RANGE_START_TAG], invoice.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
        "2024-01-01",
        "2026-11-01",
    )


def test_dagster_definitions_validate_passes() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_materializing_an_object_runs_its_cheap_checks_but_not_the_sweep(
    org: Emulator, tmp_path: Path, live_instance: dg.DagsterInstance
) -> None:
    """As the UI's Materialize launches it: the implicit asset job, the asset and every one of its checks selected
    (the sweep's too). The load and the cheap checks run; the sweep is left out unless its check runs alone."""
    from sf_pipeline.definitions import defs

    key = asset_key("User")
    resources = {
        "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "sf.duckdb")),
        "pipeline_settings": PipelineSettings(work_dir=str(tmp_path / "work")),
    }
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={key},
        asset_check_selection={c for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key == key},
    )
    with dg.instance_for_test() as instance:
        materialized = job.execute_in_process(instance=instance, resources=resources, partition_key="2026-10-01")
        checks = {e.check_name for e in materialized.get_asset_check_evaluations()}
        assert materialized.success and ID_SWEEP_CHECK not in checks and "row_count_reconciliation" in checks
        assert any("Id sweep left out" in e.user_message for e in instance.all_logs(materialized.run_id))
        alone = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={dg.AssetCheckKey(key, ID_SWEEP_CHECK)}
        )
        swept = alone.execute_in_process(instance=instance, resources=resources)
        assert [e.check_name for e in swept.get_asset_check_evaluations()] == [ID_SWEEP_CHECK]


def test_initial_load_requests_every_object_never_loaded_once_in_batches(live_instance: dg.DagsterInstance) -> None:
    """Turned on, the initial-load sensor requests the full history of each object not loaded yet, batched,
    heaviest first; an object already loaded or with a run pending is left out; nothing is requested twice."""
    catalog = load_catalog()
    sensor = build_initial_load_sensor(catalog, build_jobs(catalog), AutomationSettings(batch_objects=3))
    parts = partitions_def(catalog)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key("Lead"), partition="2025-01-01"))
        create_run_for_test(
            instance, job_name="__ASSET_JOB", asset_selection=frozenset({asset_key("Case")}), status=STARTED
        )
        with dg.build_sensor_context(instance=instance) as context:
            first = sensor(context)
        requested = [k.path[1] for r in first.run_requests for k in r.asset_selection]
        assert sorted(requested) == sorted(set(catalog.names) - {"Lead", "Case"})
        assert [len(r.asset_selection) for r in first.run_requests] == [3, 3]
        weights = {e.name: max(1, int(e.weight)) for e in catalog.objects}
        assert [weights[n] for n in requested] == sorted((weights[n] for n in requested), reverse=True)
        for r in first.run_requests:
            assert (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
                parts.get_first_partition_key(),
                parts.get_last_partition_key(),
            )
            assert not r.run_config, "whole partitions: the full history"
        assert set(json.loads(first.cursor)) == set(requested)
        with dg.build_sensor_context(instance=instance, cursor=first.cursor) as context:
            again = sensor(context)
    assert isinstance(again, dg.SkipReason) or not again.run_requests, "each object is requested once"


def test_the_code_location_loads_without_a_beta_warning() -> None:
    """Loading the definitions prints no Dagster beta or preview warning (one a partitioned asset, before)."""
    code = (
        "import warnings, dagster\n"
        "warnings.simplefilter('error', dagster.BetaWarning)\n"
        "warnings.simplefilter('error', dagster.PreviewWarning)\n"
        "import sf_pipeline.definitions\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_resync_schedule_that_is_not_cron_is_refused_by_name() -> None:
    from sf_pipeline.defs.automation import AutomationSettings
    from sf_pipeline.errors import SettingsError

    var = AutomationSettings.variable("resync_cron")
    assert AutomationSettings.from_env({var: "0 3 * * 0"}).resync_cron == "0 3 * * 0"
    for bad in ("weekly", "61 3 * * 0"):
        with pytest.raises(SettingsError, match=var):
            AutomationSettings.from_env({var: bad})


def test_objects_are_weighed_with_one_asset_records_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick weighs every object it requests (heaviest first) from one asset-records query, not one
    latest-materialization query an object."""
    from sf_pipeline.defs.assets import weight_hint
    from sf_pipeline.defs.jobs import object_weights

    catalog = load_catalog()
    entries = [catalog.get("Lead"), catalog.get("Case"), catalog.get("User")]
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset_key("Lead"), metadata={"bytes": 5_000_000})
        )
        calls = []
        real = instance.get_asset_records
        monkeypatch.setattr(instance, "get_asset_records", lambda keys=None: calls.append(keys) or real(keys))
        monkeypatch.setattr(instance, "get_latest_materialization_event", lambda *a: pytest.fail("one query an object"))
        weights = object_weights(instance, entries)
    assert weights == {"Lead": 5, "Case": weight_hint(entries[1]), "User": weight_hint(entries[2])}
    assert len(calls) == 1
