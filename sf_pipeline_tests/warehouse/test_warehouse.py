"""The production path against real emulators: Snowflake (fakesnow's HTTP server) loading files that dlt
staged in Azure Blob Storage (Azurite), through adlfs.

fakesnow cannot read ``azure://`` URLs; its COPY is served from the blob in Azurite by a shim (see
fakesnow_server.py), so a file COPYed here really was in the bucket when the warehouse read it. fakesnow
cannot COPY JSON by column name: the JSONL format is checked on its statement and its staged file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dlt.destinations.exceptions import DatabaseException

from sf_pipeline.catalog import CatalogObject, load_catalog
from sf_pipeline.cli.connections import check_staging, check_warehouse
from sf_pipeline.datapath.dlt_settings import DltSettings
from sf_pipeline.datapath.load import ObjectLoader, run_chunk_plainly
from sf_pipeline.datapath.split import SplitOptions
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key, build_assets
from sf_pipeline.defs.checks import WAREHOUSE_COUNT_CHECK
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.salesforce import SalesforceClient
from sf_pipeline.warehouse import SnowflakeSettings, StagingSettings, Warehouse, WarehouseConfigError
from sf_pipeline.warehouse.snowflake_session import SessionSqlClient, session_for, session_snowflake

from ..helpers import ODD_TEXT, Emulator, assert_text_round_trips
from ..servers import AZURITE_ACCOUNT, AZURITE_KEY, ROOT, Azurite, Fakesnow

SMALL_CHUNKS = SplitOptions(min_rows=1_000, target_bytes=400_000)


def snowflake_settings(fakesnow: Fakesnow, database: str) -> SnowflakeSettings:
    return SnowflakeSettings(
        account="sfpipeline-test",
        user="loader",
        password="fake-password",
        database=database,
        role="LOADER",
        warehouse="LOAD_WH",
        endpoint=fakesnow.endpoint,
    )


def staging_settings(azurite: Azurite, container: str, key: str = AZURITE_KEY) -> StagingSettings:
    return StagingSettings(
        location=f"az://{container}/sf",
        azure_account_name=AZURITE_ACCOUNT,
        azure_account_key=key,
        azure_blob_endpoint=azurite.blob_endpoint,
    )


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    return name


@pytest.fixture
def warehouse(fakesnow_server: Fakesnow, azurite: Azurite, container: str) -> Warehouse:
    """A Snowflake warehouse of its own (a new database) staging in a container of its own."""
    return Warehouse(
        kind="snowflake",
        snowflake=snowflake_settings(fakesnow_server, f"DB_{container.upper()}"),
        staging=staging_settings(azurite, container),
    )


def ids(warehouse: Warehouse, table: str) -> list[str]:
    with warehouse.connection() as conn:
        cur = conn.cursor()
        cur.execute(f'SELECT "ID" FROM "SALESFORCE"."{table.upper()}" ORDER BY 1')
        return [r[0] for r in cur.fetchall()]


def execute(warehouse: Warehouse, *statements: str) -> None:
    with warehouse.connection() as conn:
        cur = conn.cursor()
        for sql in statements:
            cur.execute(sql)


def count(warehouse: Warehouse, table: str) -> int:
    with warehouse.connection() as conn:
        return conn.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0]


def copies_of(fakesnow: Fakesnow, container: str) -> list[dict]:
    return [c for c in fakesnow.copies() if c["container"] == container]


def load_files_in(azurite: Azurite, container: str) -> list[str]:
    """Staged load files left in the container (dlt's own `init` marker of the dataset is not one)."""
    return [b for b in azurite.blobs(container) if b.rsplit("/", 1)[-1] != "init"]


@pytest.mark.e2e  # the whole pipeline through Dagster into the warehouse
def test_full_refresh_then_window_stage_in_azure_and_clean_up(
    org: Emulator, warehouse: Warehouse, fakesnow_server: Fakesnow, azurite: Azurite, container: str, tmp_path: Path
) -> None:
    entry = load_catalog().get("Account")
    with SalesforceClient(org.settings()) as client:
        full = sync_object(client, entry, warehouse, full_refresh=True, work_dir=tmp_path, split_options=SMALL_CHUNKS)
        assert full.chunks >= 3 and full.reconciled
        assert ids(warehouse, "account") == sorted(org.truth_ids("Account"))
        copied = copies_of(fakesnow_server, container)
        assert len(copied) >= full.chunks, "every chunk's file is COPYed from the bucket"
        # a full refresh loads into a shadow table, swapped in at the end: its files are staged under its name
        assert all(
            c["blob"].startswith("sf/salesforce/account__sf_refresh/") and c["format"] == "PARQUET" for c in copied
        )
        assert "fake-password" not in json.dumps(copied) and AZURITE_KEY not in json.dumps(copied)

        # a window merges on Id and removes the rows Salesforce reports deleted in it
        since, until = _month("2025-02"), _month("2025-03")
        window = sync_object(client, entry, warehouse, since=since, until=until, work_dir=tmp_path)
    assert window.rows_deleted > 0
    assert ids(warehouse, "account") == sorted(org.truth_ids("Account"))
    assert warehouse.count_rows("account", "SystemModstamp", since, until) == window.rows_loaded - window.rows_deleted
    assert load_files_in(azurite, container) == [], "staged files are deleted once loaded"
    assert [p.name for p in tmp_path.iterdir()] == ["Account.lock"], "local packages and chunks are deleted too"


@pytest.mark.e2e  # a load from the org into the warehouse, staged in Azure
def test_files_a_dead_run_left_are_deleted_before_a_load_and_only_the_objects(
    org: Emulator,
    warehouse: Warehouse,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before it loads, a window of Account deletes what a dead run staged for Account's table or its full
    refresh's shadow (one listing of both), never a file of a table whose name merely starts the same."""
    bucket = azurite.service().get_container_client(container)
    left = ["sf/salesforce/account/1.a.parquet", "sf/salesforce/account__sf_refresh/2.b.parquet"]
    other = "sf/salesforce/accountcontactrelation/3.c.parquet"
    for name in (*left, other):
        bucket.upload_blob(name, b"left by a dead run")
    # a hierarchical-namespace account lists a folder as an empty blob of the folder's name (Azurite has none)
    folder_entry = "sf/salesforce/account"
    bucket.upload_blob(folder_entry, b"", metadata={"hdi_isfolder": "true"})
    since, until = _month("2025-02"), _month("2025-03")
    caplog.set_level("WARNING", logger="sf_pipeline")
    with SalesforceClient(org.settings()) as client:
        window = sync_object(
            client, load_catalog().get("Account"), warehouse, since=since, until=until, work_dir=tmp_path
        )
    assert window.reconciled and window.rows_loaded > 0
    assert load_files_in(azurite, container) == [folder_entry, other]
    warned = [r.getMessage() for r in caplog.records if "left by an earlier run" in r.getMessage()]
    assert len(warned) == 2 and {w.rsplit("/", 1)[-1] for w in warned} == {"account", "account__sf_refresh"}, warned


def test_a_loader_begins_deleting_a_dead_runs_files_as_it_starts(
    warehouse: Warehouse, azurite: Azurite, container: str
) -> None:
    """``start`` (which a sync calls before its extract) begins the sweep on adlfs's loop: the files go with no
    load asked for, so the listing and the deletes overlap the extract rather than wait for it."""
    stale = "sf/salesforce/case/1.a.parquet"
    azurite.service().get_container_client(container).upload_blob(stale, b"left by a dead run")
    loader = ObjectLoader("Case", destination=None, staging=warehouse.staging)
    loader.start()
    deadline = time.monotonic() + 10
    while load_files_in(azurite, container) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert load_files_in(azurite, container) == []


def blob_requests(caplog: pytest.LogCaptureFixture, container: str) -> list[tuple[str, str]]:
    """The blob requests the Azure SDK logged (its HTTP logging policy, which adlfs's client goes through), as
    (method, path in the container), its query left out."""
    out = []
    for record in caplog.records:
        url = re.search(r"Request URL: '([^']*)'", record.getMessage())
        method = re.search(r"Request method: '([^']*)'", record.getMessage())
        if url and method:
            path = url.group(1).split("?", 1)[0].split(f"/{container}", 1)[-1]
            out.append((method.group(1), path))
    return out


@pytest.mark.e2e  # window loads from the org into the warehouse, staged in Azure
def test_a_window_load_makes_three_blob_requests_once_the_dataset_is_initialized(
    org: Emulator,
    warehouse: Warehouse,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each blob request is a round trip to Azure: after the process's first load, a window's load lists the
    object's folders once (a dead run's files), uploads its file and deletes it by the name dlt reports, begun
    as soon as Snowflake has copied it (dlt's COPY job tells the session, inside dlt's run: before the merge).
    No check of dlt's ``init`` file, no truncation of the folder by dlt, no listing after the load."""
    caplog.set_level("INFO", logger="azure.core.pipeline.policies.http_logging_policy")
    entry = load_catalog().get("Lead")
    per_load, copied = [], []

    def run_chunk(pipeline: Any, resource: Any, file_format: str) -> Any:
        session = pipeline.destination.session
        deleting = session.on_copied
        session.on_copied = lambda url: (copied.append(url.split(container, 1)[-1]), deleting(url))
        return run_chunk_plainly(pipeline, resource, file_format)

    with SalesforceClient(org.settings()) as client:
        for since, until in (("2025-02", "2025-03"), ("2025-03", "2025-04"), ("2025-04", "2025-05")):
            caplog.clear()
            window = sync_object(
                client,
                entry,
                warehouse,
                since=_month(since),
                until=_month(until),
                work_dir=tmp_path,
                run_chunk=run_chunk,
            )
            assert window.reconciled and window.rows_loaded > 0
            per_load.append(blob_requests(caplog, container))
    assert ("HEAD", "/sf/salesforce/init") in per_load[0], "the first load of the process checks dlt's init file"
    for k, requests in enumerate(per_load[1:], start=1):
        assert [method for method, _ in requests] == ["GET", "PUT", "DELETE"], requests
        (_, listed), (_, put), (_, deleted) = requests
        assert listed == "" and put == deleted and put.startswith("/sf/salesforce/lead/"), requests
        assert copied[k] == put, "the deletion begun once the COPY was done, not sent again after the load"
    assert load_files_in(azurite, container) == [], "each load's file is deleted once loaded"


def _month(text: str) -> datetime:
    return datetime.fromisoformat(f"{text}-01T00:00:00+00:00")


def test_full_refresh_touches_only_the_catalog_objects_table(org: Emulator, warehouse: Warehouse) -> None:
    execute(
        warehouse,
        'CREATE SCHEMA IF NOT EXISTS "SALESFORCE"',
        'CREATE TABLE "SALESFORCE"."NOT_IN_CATALOG" ("ID" VARCHAR)',
        'INSERT INTO "SALESFORCE"."NOT_IN_CATALOG" VALUES (\'keep-me\')',
        'CREATE TABLE "SALESFORCE"."CONTACT" ("ID" VARCHAR)',
        'INSERT INTO "SALESFORCE"."CONTACT" VALUES (\'contact-row\')',
        'CREATE TABLE "SALESFORCE"."USER" ("ID" VARCHAR, "OBSOLETE" VARCHAR)',
        "INSERT INTO \"SALESFORCE\".\"USER\" VALUES ('stale-user', 'x')",
    )
    with SalesforceClient(org.settings()) as client:
        sync_object(client, load_catalog().get("User"), warehouse, full_refresh=True)
    assert ids(warehouse, "user") == sorted(org.truth_ids("User")), "the old table was dropped and recreated"
    assert ids(warehouse, "not_in_catalog") == ["keep-me"]
    assert ids(warehouse, "contact") == ["contact-row"]


def test_files_left_by_a_dead_run_are_deleted_not_loaded(
    org: Emulator, warehouse: Warehouse, azurite: Azurite, fakesnow_server: Fakesnow, container: str
) -> None:
    stale = "sf/salesforce/case/1700000000.0.deadbeef00.parquet"
    azurite.service().get_blob_client(container, stale).upload_blob(b"not a parquet file")
    with SalesforceClient(org.settings()) as client:
        result = sync_object(client, load_catalog().get("Case"), warehouse, full_refresh=True)
    assert result.reconciled
    assert stale not in [c["blob"] for c in copies_of(fakesnow_server, container)]
    assert load_files_in(azurite, container) == []


def test_jsonl_staging_writes_json_files_and_a_json_copy(
    org: Emulator, warehouse: Warehouse, azurite: Azurite, fakesnow_server: Fakesnow, container: str
) -> None:
    """fakesnow refuses the JSON COPY (shim 5), so the statement and the staged file are checked instead."""
    with SalesforceClient(org.settings()) as client, pytest.raises(Exception, match="cannot COPY JSON"):
        sync_object(
            client,
            load_catalog().get("User"),
            warehouse,
            full_refresh=True,
            dlt_settings=DltSettings(loader_file_format="jsonl"),
        )
    copies = copies_of(fakesnow_server, container)  # dlt retries the refused COPY: the same file each time
    assert len({c["blob"] for c in copies}) == 1
    copy = copies[0]
    assert copy["format"] == "JSON" and copy["blob"].startswith("sf/salesforce/user__sf_refresh/")
    assert "MATCH_BY_COLUMN_NAME" in copy["statement"] and "***" in copy["statement"]
    assert copy["blob"].endswith(".jsonl") or copy["blob"].endswith(".jsonl.gz")
    data = azurite.service().get_blob_client(container, copy["blob"]).download_blob().readall()
    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    rows = [json.loads(line) for line in data.splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(org.truth_ids("User"))


def test_asset_on_snowflake_counts_rows_in_the_warehouse(
    org: Emulator, fakesnow_server: Fakesnow, azurite: Azurite, container: str
) -> None:
    database = f"DB_{container.upper()}"
    resource = WarehouseResource(
        destination="snowflake",
        snowflake_account="sfpipeline-test",
        snowflake_user="loader",
        snowflake_password="fake-password",
        snowflake_database=database,
        snowflake_endpoint=fakesnow_server.endpoint,
        staging=f"az://{container}/sf",
        azure_account_name=AZURITE_ACCOUNT,
        azure_account_key=AZURITE_KEY,
        azure_blob_endpoint=azurite.blob_endpoint,
    )
    lead = next(a for a in build_assets(load_catalog()) if asset_key("Lead") in a.keys)
    # an instance of its own: Dagster keeps the current instance's state storage in a context variable,
    # which an earlier test's instance can leave pointing at a disposed instance
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [lead],
            partition_key="2025-06-01",
            instance=instance,
            resources={
                "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
                "warehouse": resource,
                "pipeline_settings": PipelineSettings(),
            },
        )
    assert result.success
    (meta,) = [m.metadata for m in result.asset_materializations_for_node("salesforce__Lead")]
    assert meta["destination_table"].value == "salesforce.lead"
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    count = checks[WAREHOUSE_COUNT_CHECK]
    assert count.passed and count.metadata["warehouse_rows"].value == count.metadata["salesforce_live_count"].value
    assert load_files_in(azurite, container) == []


def test_settings_that_cannot_work_name_the_setting(azurite: Azurite, container: str) -> None:
    cases = [
        (Warehouse(kind="bigquery"), "SF_PIPELINE_DESTINATION"),  # type: ignore[arg-type]
        (
            Warehouse(kind="snowflake", snowflake=SnowflakeSettings(user="u", password="p", database="D")),
            "SF_PIPELINE_SNOWFLAKE_ACCOUNT",
        ),
        (
            Warehouse(kind="snowflake", snowflake=SnowflakeSettings(account="a", user="u", database="D")),
            "SF_PIPELINE_SNOWFLAKE_PASSWORD",
        ),
        (Warehouse(staging=staging_settings(azurite, container)), "needs destination snowflake"),
        (Warehouse(staging=StagingSettings(location="s3://bucket/x")), "SF_PIPELINE_STAGING"),
        (
            Warehouse(
                kind="snowflake",
                snowflake=SnowflakeSettings(account="a", user="u", password="p", database="D"),
                staging=StagingSettings(location="az://c/p", azure_account_name="acct"),
            ),
            "AZURE_STORAGE_ACCOUNT_KEY",
        ),
    ]
    for warehouse, setting in cases:
        with pytest.raises(WarehouseConfigError, match=setting):
            warehouse.validate()
    with pytest.raises(dg.Failure, match="SF_PIPELINE_SNOWFLAKE_ACCOUNT"):
        WarehouseResource(destination="snowflake").warehouse()


def test_check_connections_reports_each_part(
    org: Emulator, fakesnow_server: Fakesnow, azurite: Azurite, container: str
) -> None:
    env = {
        **os.environ,
        "SF_LOGIN_URL": org.url,
        "SF_PIPELINE_DESTINATION": "snowflake",
        "SF_PIPELINE_SNOWFLAKE_ACCOUNT": "sfpipeline-test",
        "SF_PIPELINE_SNOWFLAKE_USER": "loader",
        "SF_PIPELINE_SNOWFLAKE_PASSWORD": "fake-password",
        "SF_PIPELINE_SNOWFLAKE_DATABASE": "DB_CHECK",
        "SF_PIPELINE_SNOWFLAKE_ENDPOINT": fakesnow_server.endpoint,
        "SF_PIPELINE_STAGING": f"az://{container}/sf",
        "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
        "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
        "AZURE_STORAGE_BLOB_ENDPOINT": azurite.blob_endpoint,
    }
    cmd = [sys.executable, "-m", "sf_pipeline.cli", "check-connections"]
    good = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", "salesforce"], ["ok", "staging"], ["ok", "warehouse"]]
    assert load_files_in(azurite, container) == [], "the probe file is deleted"

    wrong_key = "d3Jvbmcta2V5" * 8
    bad = subprocess.run(
        cmd,
        env={**env, "AZURE_STORAGE_ACCOUNT_KEY": wrong_key, "SF_CLIENT_SECRET": "nope"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    status = {line.split()[1]: line for line in bad.stdout.splitlines()}
    assert status["salesforce"].startswith("FAIL") and "invalid_client" in status["salesforce"]
    assert status["staging"].startswith("FAIL") and status["warehouse"].startswith("ok")
    assert wrong_key not in bad.stdout + bad.stderr and "nope" not in bad.stdout + bad.stderr


def test_checks_fail_clearly_on_a_missing_container_and_an_unreachable_warehouse(azurite: Azurite) -> None:
    missing = check_staging(staging_settings(azurite, "no-such-container"), "snowflake")
    assert not missing.ok and "no-such-container" in missing.detail
    unreachable = Warehouse(
        kind="snowflake",
        snowflake=SnowflakeSettings(account="a", user="u", password="p", database="D", endpoint="http://127.0.0.1:9"),
    )
    result = check_warehouse(unreachable)
    assert not result.ok and result.part == "warehouse"


# What each Salesforce type becomes: Arrow (arrow_types.py), then dlt's type for the destination.
SNOWFLAKE_TYPES = {
    "Amount__c": ("currency", "NUMBER(18,2)"),
    "Tax_Rate__c": ("percent", "NUMBER(5,2)"),
    "Line_Count__c": ("double", "NUMBER(18,0)"),
    "Due_Date__c": ("date", "DATE"),
    "CreatedDate": ("datetime", "TIMESTAMP_TZ"),
    "Reminder_Time__c": ("time", "TIME"),
    "Paid__c": ("boolean", "BOOLEAN"),
    "Name": ("string", "VARCHAR"),
    "Status__c": ("picklist", "VARCHAR"),
    "Notes__c": ("textarea", "VARCHAR"),
}


def test_each_salesforce_type_gets_its_snowflake_type(org: Emulator, warehouse: Warehouse) -> None:
    with SalesforceClient(org.settings()) as client:
        result = sync_object(client, CatalogObject("Invoice__c"), warehouse, full_refresh=True)
    assert result.reconciled
    describe = {f["name"]: f["type"] for f in org.org.get("Invoice__c").describe()["fields"]}
    with warehouse.connection() as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            "WHERE table_schema = 'SALESFORCE' AND table_name = 'INVOICE_C'"
        )
        found = {name.upper(): (t.upper(), p, s) for name, t, p, s in cur.fetchall()}
    for field, (sf_type, expected) in SNOWFLAKE_TYPES.items():
        assert describe[field] == sf_type, f"{field} is no longer a {sf_type} in the emulator"
        data_type, precision, scale = found[result.columns[field].upper()]
        shown = f"NUMBER({precision},{scale})" if data_type in ("NUMBER", "DECIMAL") else data_type
        shown = {"TEXT": "VARCHAR", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ"}.get(shown, shown)
        assert shown == expected, f"{field} ({sf_type}): {data_type} {precision},{scale}"


def test_long_and_odd_text_on_the_snowflake_path(org: Emulator, warehouse: Warehouse) -> None:
    """The same text cases through staged Parquet in Azurite and fakesnow's COPY (NUL bytes kept)."""
    with SalesforceClient(org.settings()) as client:
        result = sync_object(client, CatalogObject("Invoice__c"), warehouse, full_refresh=True)
    values = {}
    with warehouse.connection() as conn:
        for api in ("Long_Notes__c", "Notes__c", "Name"):
            cur = conn.cursor()
            cur.execute(f'SELECT "ID", "{result.columns[api].upper()}" FROM "SALESFORCE"."INVOICE_C"')
            values[api] = dict(cur.fetchall())
    seen = assert_text_round_trips(org.org.get("Invoice__c"), values)
    assert seen >= set(ODD_TEXT) - {"tab"}, seen


def test_a_runs_column_records_are_read_once_and_written_as_one_insert(tmp_path: Path) -> None:
    """A run that knows its objects reads their column records in one statement, then writes each schema change
    with its seq continuing the object's own; what it wrote reads back the same without the run's cache."""
    from sf_pipeline.warehouse import RunColumnMaps
    from sf_pipeline.warehouse.ddl import COLUMN_MAP_TABLE
    from sf_pipeline.warehouse.naming import ColumnRecord

    plain = Warehouse(duckdb_path=tmp_path / "w.duckdb")
    first = {"Id": ColumnRecord("id", "id", "string"), "Name": ColumnRecord("name", "string", "string")}
    run = Warehouse(duckdb_path=tmp_path / "w.duckdb", run_column_maps=RunColumnMaps(["Account", "Lead"]))
    assert run.column_map("Account") == {} and run.column_map("Lead") == {}  # no table yet
    run.record_columns("Account", first)
    run.record_columns("Lead", {"Id": first["Id"]})
    assert run.column_map("Account") == first
    retyped = {"Name": ColumnRecord("name__v2", "textarea", "large_string")}
    later = Warehouse(duckdb_path=tmp_path / "w.duckdb", run_column_maps=RunColumnMaps(["Account"]))
    assert later.column_map("Account") == first
    later.record_columns("Account", retyped)
    assert plain.column_map("Account") == {**first, **retyped} and plain.column_map("Lead") == {"Id": first["Id"]}
    with plain.connection() as conn:
        seqs = conn.execute(f"SELECT sobject, seq FROM salesforce.{COLUMN_MAP_TABLE} ORDER BY sobject, seq").fetchall()
    assert seqs == [("Account", 1), ("Account", 2), ("Account", 3), ("Lead", 1)]


@pytest.mark.e2e  # loads through dlt into fakesnow, staged in Azurite
def test_one_connection_for_many_loads_reads_dlts_versions_once_and_again_after_a_swap(
    org: Emulator, warehouse: Warehouse, fakesnow_server: Fakesnow, tmp_path: Path
) -> None:
    """As in a Dagster run, every load goes through one connection: dlt's stored schema versions are read once
    a dataset, and read again after a full refresh swapped a table in (which deletes the object's versions), so
    the next load recreates what it needs instead of trusting a version that is gone."""
    entry = load_catalog().get("Account")
    with warehouse.connection() as conn:
        shared = dataclasses.replace(warehouse, snowflake_connection=lambda: contextlib.nullcontext(conn))
        since, until = _month("2025-02"), _month("2025-03")

        def load(**kwargs: object) -> list[str]:
            before = len(fakesnow_server.statements())
            with SalesforceClient(org.settings()) as client:
                sync_object(client, entry, shared, work_dir=tmp_path, split_options=SMALL_CHUNKS, **kwargs)
            return [s["statement"] for s in fakesnow_server.statements()[before:]]

        load(full_refresh=True)
        assert ids(warehouse, "account") == sorted(org.truth_ids("Account"))
        load(since=since, until=until)  # the first merge: the staging dataset's versions read once
        steady = load(since=since, until=until)
        assert not [s for s in steady if '"_DLT_VERSION"' in s and s.startswith("SELECT")], "read once, not a load"
        org.change("Account", delete=org.truth_ids("Account")[:3])
        load(full_refresh=True)  # the swap deletes the object's versions: they are read again
        refreshed_window = load(since=since, until=until)
        assert [s for s in refreshed_window if '"_DLT_VERSION"' in s and s.startswith("SELECT")]
    assert ids(warehouse, "account") == sorted(org.truth_ids("Account"))


def test_a_merge_that_fails_inside_its_one_request_leaves_the_table_as_it_was(
    org: Emulator, warehouse: Warehouse, fakesnow_server: Fakesnow, tmp_path: Path
) -> None:
    """A merge is one request, ``BEGIN``, delete, insert, ``COMMIT``: when its insert fails (here a column the load
    writes was dropped behind dlt's back), the rows its delete removed are back, the error names the object, and
    the run's connection goes on serving the next statement."""
    entry = load_catalog().get("Account")
    since, until = _month("2025-02"), _month("2025-03")
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, full_refresh=True, work_dir=tmp_path)
        sync_object(client, entry, warehouse, since=since, until=until, work_dir=tmp_path)  # dlt's merge tables
    execute(warehouse, 'ALTER TABLE "SALESFORCE"."ACCOUNT" DROP COLUMN "NAME"')
    before = ids(warehouse, "account")
    loads_before = count(warehouse, '"SALESFORCE"."_DLT_LOADS"')
    org.change("Account", update=[{"Id": before[0], "Name": "edited"}])
    with warehouse.connection() as conn:
        shared = dataclasses.replace(warehouse, snowflake_connection=lambda: contextlib.nullcontext(conn))
        start = len(fakesnow_server.statements())
        with SalesforceClient(org.settings()) as client, pytest.raises(Exception, match="Account"):
            sync_object(client, entry, shared, since=since, until=until + timedelta(days=3650), work_dir=tmp_path)
        merges = [s["statement"] for s in fakesnow_server.statements()[start:] if "DELETE FROM" in s["statement"]]
        assert merges and all(m.startswith("BEGIN TRANSACTION;") for m in merges), "BEGIN and the merge: one request"
        assert not [s for s in fakesnow_server.statements()[start:] if s["statement"].startswith("ALTER SESSION")]
        cur = conn.cursor()
        cur.execute('SELECT COUNT(*) FROM "SALESFORCE"."ACCOUNT"')
        assert cur.fetchall() == [(len(before),)], "the same connection answers, and nothing was deleted"
    assert ids(warehouse, "account") == before
    assert count(warehouse, '"SALESFORCE"."_DLT_LOADS"') == loads_before, "no record of a load whose merge failed"


@pytest.mark.e2e  # loads through dlt into fakesnow, staged in Azurite
def test_rows_a_dead_load_left_in_the_staging_table_never_reach_the_table(
    org: Emulator, warehouse: Warehouse, fakesnow_server: Fakesnow, tmp_path: Path
) -> None:
    """dlt empties the staging table before each load; the TRUNCATE goes in the COPY's request, and still before
    it: rows a load left there when it died between its COPY and its merge (an Id Salesforce never had, and an
    old version of a real record) are gone before the next merge, which writes Salesforce's rows alone."""
    entry = load_catalog().get("Account")
    since, until = _month("2025-02"), _month("2025-03")
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, full_refresh=True, work_dir=tmp_path)
        sync_object(client, entry, warehouse, since=since, until=until, work_dir=tmp_path)  # dlt's merge tables
    real = ids(warehouse, "account")[0]
    execute(
        warehouse,
        'INSERT INTO "SALESFORCE_STAGING"."ACCOUNT" ("ID", "NAME") VALUES (\'001NEVERINSALESFORCE\', \'stale\')',
        f'INSERT INTO "SALESFORCE_STAGING"."ACCOUNT" ("ID", "NAME") VALUES (\'{real}\', \'stale\')',
    )
    org.change("Account", update=[{"Id": real, "Name": "edited"}])
    start = len(fakesnow_server.statements())
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, since=since, until=until + timedelta(days=3650), work_dir=tmp_path)
    assert ids(warehouse, "account") == sorted(org.truth_ids("Account"))
    with warehouse.connection() as conn:
        cur = conn.cursor()
        cur.execute('SELECT "NAME" FROM "SALESFORCE"."ACCOUNT" WHERE "ID" = %s', (real,))
        assert cur.fetchall() == [("edited",)]
    texts = [s["statement"] for s in fakesnow_server.statements()[start:]]
    assert [t for t in texts if t.startswith("TRUNCATE") and "COPY INTO" in t], "the TRUNCATE rides with the COPY"


def test_a_pending_truncate_keeps_dlts_order_whatever_comes_next(
    warehouse: Warehouse, fakesnow_server: Fakesnow
) -> None:
    """dlt's TRUNCATE waits for the next request: a COPY or a merge carries it (``transactions_as``); a statement
    whose result is read gets it sent alone first (the result is the statement's own); a merge that fails keeps
    it out of its ROLLBACK, and the next statement sends it. A request that fails with it keeps it pending."""
    execute(
        warehouse,
        'CREATE SCHEMA IF NOT EXISTS "SALESFORCE"',
        'CREATE TABLE "SALESFORCE"."T" ("ID" VARCHAR)',
        "INSERT INTO \"SALESFORCE\".\"T\" VALUES ('a'), ('b')",
    )
    with warehouse.connection() as conn:
        capabilities = session_snowflake(session_for(conn)).capabilities()
        credentials = warehouse.snowflake.dlt_credentials()
        sql = SessionSqlClient(session_for(conn), "salesforce", "salesforce_staging", credentials, capabilities)
        sql.open_connection()  # the session's connection: dlt opens it before a job
        table = sql.make_qualified_table_name("t")
        start = len(fakesnow_server.statements())

        def sent() -> list[str]:
            return [" ".join(s["statement"].split()) for s in fakesnow_server.statements()[start:]]

        sql.truncate_tables("t")
        assert sent() == [], "nothing sent yet"
        assert sql.execute_sql(f"SELECT COUNT(*) FROM {table}") == [(0,)]
        assert sent() == [f"TRUNCATE TABLE {table};", f"SELECT COUNT(*) FROM {table}"]

        execute(warehouse, 'INSERT INTO "SALESFORCE"."T" VALUES (\'c\')')
        start = len(fakesnow_server.statements())
        sql.truncate_tables("t")
        with sql.transactions_as("one request"), sql.begin_transaction():
            sql.execute_many(['INSERT INTO "SALESFORCE"."T" VALUES (\'d\')'])
        assert sent()[0].startswith('TRUNCATE TABLE "SALESFORCE"."T"; BEGIN TRANSACTION; INSERT'), sent()
        assert sql.execute_sql('SELECT "ID" FROM "SALESFORCE"."T"') == [("d",)]

        start = len(fakesnow_server.statements())
        sql.truncate_tables("t")
        failing = pytest.raises(DatabaseException, match="NO_SUCH_TABLE")
        with failing, sql.transactions_as("one request"), sql.begin_transaction():
            sql.execute_many(['INSERT INTO "SALESFORCE"."NO_SUCH_TABLE" VALUES (1)'])
        assert sent()[-1] == "ROLLBACK", "the ROLLBACK alone"
        assert sql.session.pending, "the TRUNCATE still waits, its request having failed"
        assert sql.execute_sql(f"SELECT COUNT(*) FROM {table}") == [(0,)]
        assert not sql.session.pending
