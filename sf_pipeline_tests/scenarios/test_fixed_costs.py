"""The production path's fixed costs: the emulator's production-latency profile (a Bulk job's floor, a round
trip per request, the daily Bulk job allowance), small windows read by REST and big ones by Bulk, the day's
Bulk jobs used up (a load demoted to REST, a big change waiting in the sensor), and one login a run on each
side (the Salesforce client and our own Snowflake statements shared by a run's objects). Figures under the
profile: bench/fixed_cost_bench.py."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def
from sf_pipeline.defs.automation import AutomationSettings
from sf_pipeline.defs.jobs import build_jobs
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.defs.sensors import build_change_sensor
from sf_pipeline.salesforce import ExtractOptions, SalesforceClient
from sf_pipeline.warehouse import Warehouse
from sf_testbed.emulator import EmulatorConfig

from ..helpers import TEST_ROWS, Emulator, running_emulator
from ..servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Fakesnow


@pytest.fixture(scope="module")
def slow_org(emulator_cache: Path) -> Iterator[Emulator]:
    """The production profile, scaled down so the suite stays quick: a 1.5 s Bulk floor, 50 ms a request."""
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache, bulk_floor_s=1.5, request_latency_s=0.05)
    with running_emulator(config) as org:
        yield org


def test_the_production_profile_holds_every_job_for_its_floor_and_every_request_for_its_round_trip(
    slow_org: Emulator, tmp_path: Path
) -> None:
    from sf_pipeline.salesforce.bulk import extract_object

    with SalesforceClient(slow_org.settings()) as client:
        started = time.monotonic()
        client.describe("User")
        one_request = time.monotonic() - started
        slow_org.reset_stats()
        started = time.monotonic()
        result, _ = extract_object(client, "User", tmp_path, options=ExtractOptions(rest_max_records=0))
        bulk = time.monotonic() - started
    # lower bounds only: the profile adds waits; how long the machine takes besides is not asserted
    assert one_request >= 0.05 and result.route == "bulk" and result.records == 300
    assert bulk >= 1.5, "a query job of 300 records still waits for the floor"


def test_the_poll_cadence_sees_a_job_of_bulks_floor_soon_after_it_ends() -> None:
    """Status requests at 0, 0.5, 1.25, 2.4, 4.1, 6.6, 10.4, 15.4 s...: a job done at Bulk's ~10 s floor is
    seen at 10.4 s (doubling up to 10 s saw it at 12.6 s), one done at 14 s at 15.4 s, and none later than
    5 s after it ends, for 7 requests to the 10 s job."""
    from sf_pipeline.salesforce.bulk import poll_delays

    asked, delays = [0.0], poll_delays(ExtractOptions())
    while asked[-1] < 60:
        asked.append(asked[-1] + next(delays))

    def seen(done: float) -> float:
        return next(t for t in asked if t >= done)

    assert seen(10) == pytest.approx(10.39, abs=0.01) and asked.index(seen(10)) + 1 == 7
    assert seen(14) == pytest.approx(15.39, abs=0.01)
    assert all(seen(done) - done <= 5.0 for done in (0.1, 3, 7, 12, 20, 33, 47))


def test_the_daily_bulk_jobs_are_counted_reported_and_refused_when_used_up(org: Emulator, tmp_path: Path) -> None:
    from sf_pipeline.salesforce.bulk import extract_object

    org.set_bulk_jobs(used=9_998, limit=10_000)
    with SalesforceClient(org.settings()) as client:
        client.org_api_usage()
        assert (client.bulk_jobs.used, client.bulk_jobs.limit) == (9_998, 10_000)
        first, _ = extract_object(client, "User", tmp_path / "a", options=ExtractOptions(rest_max_records=0))
        second, _ = extract_object(client, "User", tmp_path / "b", options=ExtractOptions(rest_max_records=0))
        client.org_api_usage()
        assert client.bulk_jobs.remaining_fraction == 0.0
        # the allowance is used up: Salesforce refuses the job; the load is read by REST instead
        third, _ = extract_object(client, "User", tmp_path / "c", options=ExtractOptions(rest_max_records=0))
    assert (first.route, second.route, third.route) == ("bulk", "bulk", "rest")
    assert "DailyBulkV2QueryJobs" in third.demoted and third.records == first.records == 300


def test_small_windows_go_by_rest_and_big_ones_by_bulk(org: Emulator, tmp_path: Path) -> None:
    entry = load_catalog().get("Contact")
    warehouse = Warehouse(duckdb_path=tmp_path / "sf.duckdb")
    until = datetime(2026, 12, 1, tzinfo=UTC)
    small_since = datetime(2026, 10, 1, tzinfo=UTC)
    options = ExtractOptions(rest_max_records=1_000)
    with SalesforceClient(org.settings()) as client:
        org.reset_stats()
        big = sync_object(client, entry, warehouse, until=until, work_dir=tmp_path / "w", extract_options=options)
        bulk_jobs = org.stats().get("POST /services/data/v62.0/jobs/query", 0)
        org.reset_stats()
        small = sync_object(
            client, entry, warehouse, since=small_since, until=until, work_dir=tmp_path / "w", extract_options=options
        )
        small_jobs = org.stats().get("POST /services/data/v62.0/jobs/query", 0)
    assert big.route == "bulk" and big.expected_records == big.salesforce_records > 1_000
    assert bulk_jobs == 1
    assert small.route == "rest" and small.expected_records == small.salesforce_records > 0
    assert small_jobs == 0 and small.reconciled and small.api_calls == 2, "describe, one REST page (its size)"
    # the big window: its first REST answer said its size and was dropped, the Bulk job's pages are the files
    assert big.reconciled and big.csv_records == big.salesforce_records


def test_the_sensor_lets_big_changes_wait_while_the_days_bulk_jobs_are_low(org: Emulator) -> None:
    catalog = load_catalog()
    sensor = build_change_sensor(catalog, build_jobs(catalog), AutomationSettings())
    since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    cursor = {e.name: "2030-01-01T00:00:00+00:00" for e in catalog.objects} | {"Lead": since, "Case": since}
    # stamped three minutes ago: the replication API answers whole minutes up to the last complete one
    at_ms = int((datetime.now(UTC) - timedelta(minutes=3)).timestamp() * 1000)
    lead_ids = org.truth_ids("Lead")[:5]
    org.change("Lead", update=[{"Id": i, "Company": "big change"} for i in lead_ids], at_ms=at_ms)
    org.change("Case", update=[{"Id": org.truth_ids("Case")[0], "Subject": "small change"}], at_ms=at_ms)
    org.set_bulk_jobs(used=9_500, limit=10_000)  # 5% left: under the 10% floor
    resources = {
        "salesforce": SalesforceResource(login_url=org.url, rest_max_records=3),
        "pipeline_settings": PipelineSettings(),
    }
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(cursor=json.dumps(cursor), instance=instance, resources=resources) as context,
    ):
        result = sensor(context)
    requested = {k.path[1] for r in result.run_requests for k in r.asset_selection}
    assert requested == {"Case"}, "the one-row change goes (by REST); the five-row one needs Bulk and waits"
    new_cursor = json.loads(result.cursor)
    assert new_cursor["Lead"] == since and new_cursor["Case"] > since, "the waiting object's cursor is kept"


def _run_selected(
    assets: list, resources: dict, instance: dg.DagsterInstance, **kwargs: object
) -> dg.ExecuteInProcessResult:
    """The assets run as one run that selects them, as the sensor's and the initial load's batches are launched
    (the run knows its objects: ``run.asset_selection``)."""
    job = dg.Definitions(
        assets=assets, resources=resources, jobs=[dg.define_asset_job("batch", selection=assets)]
    ).resolve_job_def("batch")
    return job.execute_in_process(instance=instance, asset_selection=[k for a in assets for k in a.keys], **kwargs)


@pytest.mark.e2e  # the whole pipeline through Dagster into the warehouse
def test_a_run_logs_in_once_on_each_side_and_a_small_window_asks_no_information_schema(
    org: Emulator, fakesnow_server: Fakesnow, azurite: Azurite, tmp_path: Path
) -> None:
    """Three objects in one run, with their checks, then a one-row change of each in the next two: each run
    logs in once to Salesforce and once to Snowflake (dlt's jobs share the run's connection), and once dlt has
    recorded the merge's schema a change window costs at most 4 requests an object (2 counts of ours; dlt's
    staging table emptied in the request of its COPY, and the merge with the load's record in one transaction:
    docs/performance.md) plus 5 a run (the column records of its objects; whether the two datasets exist, asked
    with SHOW; the schema versions dlt stored in each), none of them an INFORMATION_SCHEMA query and none a read
    of dlt's version table for one object. The edits land."""
    container = f"c{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(container)
    warehouse = WarehouseResource(
        destination="snowflake",
        snowflake_account="sfpipeline-test",
        snowflake_user="loader",
        snowflake_password="fake-password",
        snowflake_database=f"DB_{container.upper()}",
        snowflake_endpoint=fakesnow_server.endpoint,
        staging=f"az://{container}/sf",
        azure_account_name=AZURITE_ACCOUNT,
        azure_account_key=AZURITE_KEY,
        azure_blob_endpoint=azurite.blob_endpoint,
    )
    resources = {
        "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
        "warehouse": warehouse,
        "pipeline_settings": PipelineSettings(work_dir=str(tmp_path / "work")),
    }
    catalog = load_catalog()
    names = ("Lead", "Case", "User")
    assets = [a for a in build_assets(catalog) if any(asset_key(n) in a.keys for n in names)]
    parts = partitions_def(catalog)
    key = parts.get_last_partition_key()

    requests: list[int] = []  # Salesforce API requests of each run

    def run(**kwargs: object) -> list[dict]:
        before = len(fakesnow_server.statements())
        org.reset_stats()
        result = _run_selected(assets, resources, instance, **kwargs)
        assert result.success
        assert len(result.get_asset_check_evaluations()) == 3 * 6
        assert all(e.passed for e in result.get_asset_check_evaluations())
        stats = org.stats()
        assert stats.get("POST /services/oauth2/token") == 1, "one Salesforce login for the run"
        requests.append(sum(n for path, n in stats.items() if "/services/data" in path))
        seen = fakesnow_server.statements()[before:]
        assert [s["kind"] for s in seen].count("login") == 1, "one Snowflake login for the run, dlt's jobs included"
        return seen

    with dg.instance_for_test() as instance:
        first = parts.get_first_partition_key()  # the initial load: every partition, the whole history
        run(tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: key})
        since = datetime.now(UTC) - timedelta(minutes=1)
        edited = {}
        for name in names:
            record = org.server.state.org.get(name)
            edited[name] = record.raw_value(record.by_name["id"], 0)
            field = "Subject" if name == "Case" else "LastName"
            org.change(name, update=[{"Id": edited[name], field: f"edited {name}"}])
        window = {"since": since.isoformat(), "until": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
        config = {"ops": {asset_key(n).to_python_identifier(): {"config": window} for n in names}}
        run(partition_key=key, run_config=config)  # the first merge: dlt records its staging tables
        for name in names:
            field = "Subject" if name == "Case" else "LastName"
            org.change(name, update=[{"Id": edited[name], field: f"edited {name} again"}])
        window["until"] = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        with warehouse.warehouse().connection() as conn:
            loads_recorded = conn.cursor().execute('SELECT COUNT(*) FROM "SALESFORCE"."_DLT_LOADS"').fetchall()[0][0]
        seen = run(partition_key=key, run_config=config)
    # the run's describes in one Composite request; an object's REST page (which says the window's size: the
    # route) and the checks' two counts in one Composite request
    assert requests[-1] == 1 + 2 * len(names), org.stats()
    statements = [s for s in seen if s["kind"] != "login"]
    assert not [s for s in statements if s["kind"] == "information_schema"], "no INFORMATION_SCHEMA query"
    assert len(statements) <= 4 * len(names) + 5, [s["statement"][:60] for s in statements]
    texts = [s["statement"] for s in statements]
    merges = [text for text in texts if "DELETE FROM" in text]
    assert len(merges) == len(names) and all(m.startswith("BEGIN TRANSACTION;") for m in merges), (
        "each merge in one request, BEGIN to COMMIT"
    )
    assert not [text for text in texts if "_DLT_LOADS" in text.split(";")[0]], "the load record: no request of its own"
    assert not [text for text in texts if text.startswith("ALTER SESSION")], "no ALTER SESSION around transactions"
    copies = [k for k, text in enumerate(texts) if "COPY INTO" in text]
    assert len(copies) == len(names) and not any(texts[k - 1].startswith("ALTER SESSION") for k in copies), (
        "a COPY from the bucket runs on its own, not inside ALTER SESSION / COMMIT"
    )
    assert all(re.match(r'TRUNCATE TABLE "SALESFORCE_STAGING"\."\w+";\s*COPY INTO', texts[k]) for k in copies), (
        "dlt's staging table emptied in the COPY's request"
    )
    assert not [text for text in texts if text.startswith("TRUNCATE") and "COPY INTO" not in text]
    version_reads = [s for s in statements if '"_DLT_VERSION"' in s["statement"]]
    assert len(version_reads) == 2, "dlt's stored versions read once a dataset for the run, not once an object"
    with warehouse.warehouse().connection() as conn:
        cur = conn.cursor()
        cur.execute('SELECT COUNT(*) FROM "SALESFORCE"."_DLT_LOADS"')
        assert cur.fetchall() == [(loads_recorded + len(names),)], "each load recorded, in its merge's transaction"
        cur.execute('SELECT "SUBJECT" FROM "SALESFORCE"."CASE" WHERE "ID" = %s', (edited["Case"],))
        assert cur.fetchall() == [("edited Case again",)]
        cur.execute('SELECT "LAST_NAME" FROM "SALESFORCE"."LEAD" WHERE "ID" = %s', (edited["Lead"],))
        assert cur.fetchall() == [("edited Lead again",)]


def test_user_count_check_uses_query_not_queryall() -> None:
    """User has no IsDeleted: the checks' COUNT() is a plain query (a queryAll on IsDeleted fails)."""
    from sf_pipeline.defs.checks import salesforce_count

    class Client:
        def __init__(self) -> None:
            self.asked: list[tuple[str, bool]] = []

        def query(self, soql: str, *, sobject: str, include_deleted: bool) -> dict:
            self.asked.append((soql, include_deleted))
            return {"totalSize": 7}

    client = Client()  # a stand-in: only the query each count sends is looked at, not an answer
    user = replace(load_catalog().get("User"), include_deleted=True)
    assert salesforce_count(client, user, deletable=False) == 7  # type: ignore[arg-type]
    assert salesforce_count(client, load_catalog().get("Lead"), deletable=True) == 7  # type: ignore[arg-type]
    assert client.asked == [
        ("SELECT COUNT() FROM User", False),
        ("SELECT COUNT() FROM Lead WHERE (IsDeleted = false)", True),
    ]


def test_the_emulator_cli_takes_the_production_profile(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ..servers import ROOT, free_port, stop, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sf_pipeline.cli", "emulator", "--port", str(port), "--latency", "production",
         "--bulk-jobs", "10/500", "--rows", "User=10"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, "emulator")
        url = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client-id",
                "client_secret": "demo-client-secret",
            },
        ).json()["access_token"]
        started = time.monotonic()
        limits = httpx.get(f"{url}/services/data/v62.0/limits", headers={"Authorization": f"Bearer {token}"}).json()
        assert time.monotonic() - started >= 0.08, "80 ms a request"
        assert limits["DailyBulkV2QueryJobs"] == {"Max": 500, "Remaining": 490}
    finally:
        stop(proc)
