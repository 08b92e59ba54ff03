"""The analyst policies of issue 33, end to end: HTTP to the emulator, Dagster runs of the object's asset and
of its Id sweep, into DuckDB and into Snowflake (the fakesnow server, staged in Azurite).

``deletes: flag``: a soft-deleted record stays with ``_sf_deleted``/``_sf_deleted_at``, an undeleted one is live
again, a hard-deleted one is flagged by the Id sweep; the count checks count live rows. ``hash_fields``: the
values are HMAC-SHA256 with the key, typed and labelled as hashed, never clear text in the table."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.datapath.row_policy import keyed_hash
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def
from sf_pipeline.defs.checks import WAREHOUSE_COUNT_CHECK
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.defs.sweep import ID_SWEEP_CHECK, SWEEP_JOB, build_id_sweep
from sf_pipeline.salesforce import SalesforceClient

from ..helpers import Emulator

pytestmark = pytest.mark.e2e  # Dagster runs from the org into the warehouse

KEY = "analysts-secret-key-0123456789"
CATALOG = """
defaults:
  partition_start: "2024-01-01"
objects:
  - name: Lead
    deletes: flag
    hash_fields: [Email]
"""


@pytest.fixture
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseResource:
    if request.param == "duckdb":
        return WarehouseResource(duckdb_path=str(tmp_path / "sf.duckdb"))
    from ..servers import AZURITE_ACCOUNT, AZURITE_KEY

    fakesnow, azurite = request.getfixturevalue("fakesnow_server"), request.getfixturevalue("azurite")
    container = f"p{tmp_path.name[-10:].lower().replace('_', '')}"
    azurite.service().create_container(container)
    return WarehouseResource(
        destination="snowflake",
        snowflake_account="sfpipeline-test",
        snowflake_user="loader",
        snowflake_password="fake-password",
        snowflake_database=f"DB_{container.upper()}",
        snowflake_endpoint=fakesnow.endpoint,
        staging=f"az://{container}/sf",
        azure_account_name=AZURITE_ACCOUNT,
        azure_account_key=AZURITE_KEY,
        azure_blob_endpoint=azurite.blob_endpoint,
    )


def rows(resource: WarehouseResource, sql: str) -> list[tuple]:
    target = resource.warehouse()
    if target.kind == "duckdb":
        with duckdb.connect(str(target.duckdb_path), read_only=True) as con:
            return con.execute(sql).fetchall()
    with target.connection() as conn:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()


class Stack:
    """The object's asset and its Id sweep in Definitions of their own, as the code location builds them."""

    def __init__(self, org: Emulator, warehouse: WarehouseResource, catalog_path: Path, work: Path) -> None:
        self.catalog = load_catalog(catalog_path)
        self.asset = next(a for a in build_assets(self.catalog) if asset_key("Lead") in a.keys)
        checks, _ = build_id_sweep(self.catalog)
        job = dg.define_asset_job(
            SWEEP_JOB, selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset_key("Lead"), ID_SWEEP_CHECK))
        )
        self.resources = {
            "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
            "warehouse": warehouse,
            "pipeline_settings": PipelineSettings(work_dir=str(work), hash_key=KEY),
        }
        self.defs = dg.Definitions(assets=[self.asset], asset_checks=[checks], jobs=[job], resources=self.resources)

    def load(self, keys: list[str]) -> dg.ExecuteInProcessResult:
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
        with dg.instance_for_test() as instance:
            result = dg.materialize([self.asset], instance=instance, resources=self.resources, tags=tags)
        assert result.success
        return result

    def sweep(self) -> dg.ExecuteInProcessResult:
        with dg.instance_for_test() as instance:
            return self.defs.resolve_job_def(SWEEP_JOB).execute_in_process(instance=instance)


def table(resource: WarehouseResource) -> dict[str, tuple]:
    """id -> (email, is_deleted, _sf_deleted, whether _sf_deleted_at is set). The time is asked as a predicate:
    the fakesnow server returns a NULL TIMESTAMP_TZ to Python as 1970-01-01 (its SQL sees NULL)."""
    sql = "SELECT id, email, is_deleted, _sf_deleted, _sf_deleted_at IS NOT NULL FROM salesforce.lead"
    found = rows(resource, sql)
    return {r[0]: tuple(r[1:]) for r in found}


@pytest.fixture
def stack(org: Emulator, warehouse: WarehouseResource, tmp_path: Path) -> Stack:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    return Stack(org, warehouse, path, tmp_path / "work")


@pytest.mark.parametrize("warehouse", ["duckdb", "snowflake"], indirect=True)
def test_deleted_records_are_kept_flagged_and_hashed_fields_never_leave_in_clear(
    org: Emulator, stack: Stack, warehouse: WarehouseResource
) -> None:
    keys = partitions_def(stack.catalog).get_partition_keys()
    first = stack.load(keys)
    everything = org.truth_ids("Lead", include_deleted=True)
    live = set(org.truth_ids("Lead"))
    loaded = table(warehouse)
    # every record, deleted ones included, each once; the flag says which
    assert sorted(loaded) == sorted(everything) and len(everything) > len(live), "the org has deleted Leads"
    for record_id, (_, is_deleted, deleted, deleted_at) in loaded.items():
        assert bool(deleted) == (record_id not in live) == bool(is_deleted), record_id
        assert deleted_at == bool(deleted), record_id
    # hashed: 64 hex digits, the keyed hash of what Salesforce holds, never the clear value
    with SalesforceClient(org.settings()) as client:
        sample = client.query("SELECT Id, Email FROM Lead WHERE Email != null LIMIT 20", sobject="Lead")["records"]
    assert sample
    for record in sample:
        assert loaded[record["Id"]][0] == keyed_hash(record["Email"], KEY.encode()), record["Id"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", e) for e, *_ in loaded.values() if e is not None)
    meta = first.asset_materializations_for_node("salesforce__Lead")[-1].metadata  # one a partition
    described = {c.name: c for c in meta["dagster/column_schema"].value.columns}
    assert "HMAC-SHA256" in described["email"].description and described["email"].type == "text"
    assert {"_sf_deleted", "_sf_deleted_at"} <= set(described)
    spec = stack.asset.specs_by_key[asset_key("Lead")]
    assert spec.metadata["salesforce/deletes"] == "flag"
    assert spec.metadata["salesforce/hash_fields"].value == ["Email"]
    checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
    assert checks[WAREHOUSE_COUNT_CHECK].passed, checks[WAREHOUSE_COUNT_CHECK].metadata

    # soft-delete two live records, hard-delete a third, undelete a deleted one; a window run then the sweep
    alive = sorted(live)
    soft, hard = alive[:2], alive[2]
    undeleted = sorted(set(everything) - live)[0]
    org.change("Lead", delete=soft, undelete=[undeleted])
    org.change("Lead", hard_delete=[hard])
    window = stack.load(keys[-1:])
    after = table(warehouse)
    for record_id in soft:
        email, is_deleted, deleted, deleted_at = after[record_id]
        assert deleted and is_deleted and deleted_at, record_id
        assert email == loaded[record_id][0], "a flagged row keeps its values"
    assert after[undeleted][1:] == (False, False, False), "an undeleted record is live again"
    assert not after[hard][2], "a hard delete is invisible to a window: the Id sweep finds it"
    checks = {c.check_name: c for c in window.get_asset_check_evaluations()}
    assert checks[WAREHOUSE_COUNT_CHECK].passed, checks[WAREHOUSE_COUNT_CHECK].metadata
    sweep = stack.sweep()
    assert sweep.success
    (evaluation,) = sweep.get_asset_check_evaluations()
    assert evaluation.metadata["gone_from_salesforce"].value == 1
    swept = table(warehouse)
    assert swept[hard][2] and swept[hard][3], "hard-deleted: kept, flagged, with the time found"
    assert len(swept) == len(everything), "no row removed under deletes: flag"
    live_rows = rows(warehouse, "SELECT count(*) FROM salesforce.lead WHERE _sf_deleted_at IS NULL")[0][0]
    assert live_rows == len(org.truth_ids("Lead"))


def test_hashing_without_a_key_fails_naming_the_setting_and_loads_nothing(org: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(CATALOG)
    catalog = load_catalog(path)
    asset = next(a for a in build_assets(catalog) if asset_key("Lead") in a.keys)
    db = tmp_path / "sf.duckdb"
    resources: dict[str, Any] = {
        "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
        "warehouse": WarehouseResource(duckdb_path=str(db)),
        "pipeline_settings": PipelineSettings(work_dir=str(tmp_path / "work")),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset], instance=instance, resources=resources, partition_key="2025-06-01", raise_on_error=False
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "SF_PIPELINE_HASH_KEY" in str(failure) and "[Lead]" in str(failure)
    assert not db.exists() or not rows(resources["warehouse"], "SHOW ALL TABLES")


HISTORY_CATALOG = """
defaults:
  partition_start: "2024-01-01"
objects:
  - name: Lead
    history: true
"""


def versions(resource: WarehouseResource) -> dict[str, list[tuple]]:
    """id -> its versions (company, is valid_to set), oldest first."""
    sql = "SELECT id, company, _sf_valid_to IS NOT NULL, _sf_valid_from FROM salesforce.lead ORDER BY id, 4"
    out: dict[str, list[tuple]] = {}
    for record_id, company, closed, _ in rows(resource, sql):
        out.setdefault(record_id, []).append((company, closed))
    return out


@pytest.mark.parametrize("warehouse", ["duckdb", "snowflake"], indirect=True)
def test_history_keeps_every_version_and_a_replay_or_full_refresh_adds_none(
    org: Emulator, warehouse: WarehouseResource, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(HISTORY_CATALOG)
    stack = Stack(org, warehouse, path, tmp_path / "work")
    keys = partitions_def(stack.catalog).get_partition_keys()
    stack.load(keys)
    live = set(org.truth_ids("Lead"))
    first = versions(warehouse)
    assert set(first) == live and all(v == [(v[0][0], False)] for v in first.values()), "one current version each"

    alive = sorted(live)
    edited, deleted, gone = alive[0], alive[1], alive[2]
    org.change("Lead", update=[{"Id": edited, "Company": "Renamed Inc"}], delete=[deleted])
    window = stack.load(keys[-1:])
    after = versions(warehouse)
    assert after[edited] == [(first[edited][0][0], True), ("Renamed Inc", False)], "old closed, new current"
    assert after[deleted] == [(first[deleted][0][0], True)], "a deleted record's version is closed, none added"
    checks = {c.check_name: c for c in window.get_asset_check_evaluations()}
    assert checks[WAREHOUSE_COUNT_CHECK].passed, checks[WAREHOUSE_COUNT_CHECK].metadata

    stack.load(keys[-1:])  # the same window again (a retry): the same row hashes, no new version
    full = {"ops": {"salesforce__Lead": {"config": {"full_refresh": True}}}}
    with dg.instance_for_test() as instance:
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
        refreshed = dg.materialize(
            [stack.asset], instance=instance, resources=stack.resources, tags=tags, run_config=full
        )
    assert refreshed.success
    assert versions(warehouse) == after, "neither a replayed window nor a full refresh erases or doubles history"

    org.change("Lead", hard_delete=[gone])
    assert stack.sweep().success
    swept = versions(warehouse)
    assert swept[gone] == [(first[gone][0][0], True)], "the Id sweep closes a hard-deleted record's version"
    current = rows(warehouse, "SELECT count(*) FROM salesforce.lead WHERE _sf_valid_to IS NULL")[0][0]
    assert current == len(org.truth_ids("Lead"))
    spec = stack.asset.specs_by_key[asset_key("Lead")]
    assert spec.metadata["salesforce/history"] is True


def test_history_a_field_added_adds_a_column_and_no_version(org: Emulator, tmp_path: Path) -> None:
    """Schema drift under history: the new field gets a column whose values the current versions take in
    place; the records' versions stay as they were (a version is a SystemModstamp, not a hash of the values)."""
    import httpx

    path = tmp_path / "catalog.yaml"
    path.write_text(HISTORY_CATALOG)
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "sf.duckdb"))
    stack = Stack(org, warehouse, path, tmp_path / "work")
    keys = partitions_def(stack.catalog).get_partition_keys()
    stack.load(keys)
    before = rows(warehouse, "SELECT count(*), count(DISTINCT id) FROM salesforce.lead")[0]
    change = {"object": "Lead", "add": [{"name": "Region__c", "type": "string", "label": "Region"}]}
    httpx.post(f"{org.url}/__emulator__/schema", json=change).raise_for_status()
    try:
        stack.load(keys)  # every partition again, with the new field
        after = rows(warehouse, "SELECT count(*), count(DISTINCT id), count(region__c) FROM salesforce.lead")[0]
    finally:
        httpx.delete(f"{org.url}/__emulator__/schema").raise_for_status()
    assert after[:2] == before, "no record got a new version from a new column"
    assert after[2] > 0, "the current versions took the new field's values (in place)"


def test_history_a_load_killed_mid_way_then_rerun_leaves_one_version_a_record(org: Emulator, tmp_path: Path) -> None:
    """`sf-pipeline sync` of Account with history, SIGKILLed while its second chunk loads (the first chunk's
    versions are in), then run again: every record has exactly one version, the current one."""
    import os
    import subprocess

    from sf_testbed.emulator.soql import epoch_ms

    from ..datapath.test_recovery import ROOT, SINCE, UNTIL, kill_when_stopped, sync_command

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text('defaults:\n  partition_start: "2024-01-01"\nobjects:\n  - name: Account\n    history: true\n')
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    env = {
        **os.environ,
        "SF_LOGIN_URL": org.url,
        "SF_PIPELINE_CATALOG": str(catalog),
        "SF_PIPELINE_DUCKDB": str(db),
        "SF_PIPELINE_WORK_DIR": str(work),
        "SF_PIPELINE_FAULTPOINTS": "batch_read:Account@2=stop",
        "SF_PIPELINE_REST_MAX_RECORDS": "0",
    }
    cmd = sync_command("Account", full_refresh=False)
    dead = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_when_stopped(dead)
    with duckdb.connect(str(db), read_only=True) as con:
        half = con.execute("SELECT count(*) FROM salesforce.account").fetchone()[0]
    del env["SF_PIPELINE_FAULTPOINTS"]
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    truth = org.truth_ids("Account", epoch_ms(SINCE), epoch_ms(UNTIL))
    with duckdb.connect(str(db), read_only=True) as con:
        total, distinct, current = con.execute(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE _sf_valid_to IS NULL) FROM salesforce.account"
        ).fetchone()
    assert 0 < half < total, "the dead run had merged its first chunk's versions"
    assert total == distinct == current == len(truth), (total, distinct, current, len(truth))


FORMULA_CATALOG = """
defaults:
  partition_start: "2024-01-01"
objects:
  - name: Invoice__c
    formula_fields: include
  - name: Lead
"""


@pytest.mark.parametrize("warehouse", ["duckdb", "snowflake"], indirect=True)
def test_the_formula_refresh_updates_only_formula_columns_of_existing_rows(
    org: Emulator, warehouse: WarehouseResource, tmp_path: Path
) -> None:
    from sf_pipeline.defs.automation import AutomationSettings
    from sf_pipeline.defs.formulas import FORMULA_JOB, FORMULA_OP, build_formula_refresh

    path = tmp_path / "catalog.yaml"
    path.write_text(FORMULA_CATALOG)
    catalog = load_catalog(path)
    asset = next(a for a in build_assets(catalog) if asset_key("Invoice__c") in a.keys)
    resources = {
        "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
        "warehouse": warehouse,
        "pipeline_settings": PipelineSettings(work_dir=str(tmp_path / "work")),
    }
    keys = partitions_def(catalog).get_partition_keys()
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    with dg.instance_for_test() as instance:
        assert dg.materialize([asset], instance=instance, resources=resources, tags=tags).success
    sql = "SELECT id, margin__c, name, system_modstamp FROM salesforce.invoice_c ORDER BY id"
    before = rows(warehouse, sql)
    org.advance_formulas()  # every formula value moves; SystemModstamp does not
    with SalesforceClient(org.settings()) as client:
        truth = {
            r["Id"]: r["Margin__c"]
            for r in client.query("SELECT Id, Margin__c FROM Invoice__c LIMIT 200", sobject="Invoice__c")["records"]
        }

    job, schedule = build_formula_refresh(catalog, AutomationSettings(batch_objects=1))
    defs = dg.Definitions(jobs=[job], schedules=[schedule], resources=resources)
    config = {"ops": {FORMULA_OP: {"config": {"objects": ["Invoice__c"]}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(FORMULA_JOB).execute_in_process(run_config=config, instance=instance)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 12, 6, 3, tzinfo=UTC),
            resources={"salesforce": resources["salesforce"]},
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests
    assert result.success
    (observation,) = [e.asset_observation_data.asset_observation for e in result.get_asset_observation_events()]
    assert observation.asset_key == asset_key("Invoice__c")
    meta = {k: v.value for k, v in observation.metadata.items()}
    assert meta["formula_fields_refreshed"] == ["Margin__c"] and meta["rows_updated"] > 0, meta
    after = rows(warehouse, sql)
    assert len(after) == len(before), "no row added or removed"
    changed = 0
    for (id_, margin, name, stamp), (id2, old_margin, old_name, old_stamp) in zip(after, before, strict=True):
        assert (id_, name, stamp) == (id2, old_name, old_stamp), "only the formula column changes"
        if id_ in truth and truth[id_] is None:
            assert margin is None, id_
        elif id_ in truth:
            assert float(margin) == pytest.approx(float(truth[id_]), abs=0.006), id_
        changed += margin != old_margin
    assert changed == meta["rows_updated"]
    # the daily schedule asks for the objects that keep formula fields only, a batch a run
    assert [r.run_config["ops"][FORMULA_OP]["config"]["objects"] for r in requests] == [["Invoice__c"]]
