"""Every record of an org whose history starts years before ``partition_start`` lands: the first partition is
open at its start (a run of every partition, a UI run of the first one, ``sf-pipeline sync`` without
``--since``), a late-committed record arrives with the next window, empty objects load on every route, the
whole-object check catches a table that lost rows, and every count says what it counts. Over HTTP against
the emulator, into real DuckDB files, through Dagster's own executor (the daemon's path is test_org_demo's)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import Catalog, CatalogObject, load_catalog
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def
from sf_pipeline.defs.checks import WAREHOUSE_COUNT_CHECK, WHOLE_OBJECT_CHECK
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.salesforce import ExtractOptions, SalesforceClient
from sf_pipeline.salesforce.changes import ChangeAsk, count_changes
from sf_pipeline.warehouse import Warehouse
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.emulator.org import RECENT_START
from sf_testbed.emulator.soql import epoch_ms

from ..helpers import TEST_ROWS, Emulator, running_emulator

EMPTY = ("Invoice__c", "Case")  # objects with no record at all in this module's org


@pytest.fixture(scope="module")
def history_org(emulator_cache: Path) -> Iterator[Emulator]:
    rows = {**TEST_ROWS, **dict.fromkeys(EMPTY, 0)}
    with running_emulator(EmulatorConfig(port=0, rows=rows, cache_dir=emulator_cache)) as org:
        yield org


@pytest.fixture
def org(history_org: Emulator) -> Iterator[Emulator]:
    yield history_org
    history_org.reset_records()


def catalog_starting(tmp_path: Path, start: str) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        f"defaults: {{partition_start: '{start}', partition_granularity: monthly}}\n"
        "objects: [Account, Contact, Invoice__c, Case]\n"
    )
    return load_catalog(path)


def resources(org: Emulator, db: Path, work: Path) -> dict:
    return {
        "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
        "warehouse": WarehouseResource(duckdb_path=str(db)),
        "pipeline_settings": PipelineSettings(work_dir=str(work)),
    }


def table_ids(db: Path, table: str) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return sorted(r[0] for r in con.execute(f"SELECT id FROM salesforce.{table}").fetchall())


def test_the_org_has_a_decade_of_history(org: Emulator) -> None:
    account = org.org.get("Account")
    assert account is not None
    stamps = [account.modstamp_ms(i) for i in range(account.rows)]
    assert datetime.fromtimestamp(stamps[0] / 1000, UTC).year == 2008
    old = sum(ms < RECENT_START.timestamp() * 1000 for ms in stamps)
    assert 0.6 < old / len(stamps) < 0.8, "most records are old and untouched since"
    created = [account.created_ms(i) for i in range(account.rows)]
    assert all(c <= m for c, m in zip(created, stamps, strict=True)), "never created after its last change"
    years = timedelta(days=3 * 365).total_seconds() * 1000
    recent = [i for i, ms in enumerate(stamps) if ms >= RECENT_START.timestamp() * 1000]
    long_ago = [i for i in recent if stamps[i] - created[i] > years]
    assert 0.2 < len(long_ago) / len(recent) < 0.45, "a third of the recent tail: old records edited lately"


def test_a_run_of_every_partition_loads_the_history_before_partition_start(org: Emulator, tmp_path: Path) -> None:
    """partition_start 2020-01 while the org's records go back to 2008: the whole-history run (what the
    initial-load sensor, the demo and a UI backfill of every partition request) loads every live record."""
    catalog = catalog_starting(tmp_path, "2020-01-01")
    parts = partitions_def(catalog)
    account = next(a for a in build_assets(catalog) if asset_key("Account") in a.keys)
    db = tmp_path / "sf.duckdb"
    first, last = parts.get_first_partition_key(), parts.get_last_partition_key()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [account],
            instance=instance,
            resources=resources(org, db, tmp_path / "work"),
            tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        )
    assert result.success
    live = org.truth_ids("Account")
    before_start = org.truth_ids("Account", until_ms=epoch_ms("2020-01-01T00:00:00Z"))
    assert len(before_start) > len(live) / 3, "the test means something: much of the org predates the start"
    assert table_ids(db, "account") == sorted(live)
    materializations = result.asset_materializations_for_node("salesforce__Account")
    assert materializations[0].metadata["window"].value.startswith("every record before ")
    meta = materializations[-1].metadata
    # one meaning per number: records as Salesforce sent them, deleted ones kept out, the table's rows
    everything = org.truth_ids("Account", include_deleted=True)
    assert meta["records_read"].value == len(everything)
    assert meta["records_deleted"].value == len(everything) - len(live)
    assert meta["rows_written"].value == meta["dagster/row_count"].value == len(live)
    assert meta["read_from"].value == "the first record"
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[WHOLE_OBJECT_CHECK].passed and checks[WHOLE_OBJECT_CHECK].metadata[
        "salesforce_live_count"
    ].value == len(live)
    assert checks[WAREHOUSE_COUNT_CHECK].passed


def test_a_ui_run_of_the_first_partition_alone_holds_everything_older(org: Emulator, tmp_path: Path) -> None:
    catalog = catalog_starting(tmp_path, "2020-01-01")
    contact = next(a for a in build_assets(catalog) if asset_key("Contact") in a.keys)
    db = tmp_path / "sf.duckdb"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [contact], instance=instance, resources=resources(org, db, tmp_path / "work"), partition_key="2020-01-01"
        )
    assert result.success
    expected = org.truth_ids("Contact", until_ms=epoch_ms("2020-02-01T00:00:00Z"))
    assert table_ids(db, "contact") == sorted(expected)
    meta = result.asset_materializations_for_node("salesforce__Contact")[0].metadata
    assert meta["dagster/partition_row_count"].value == len(expected), "the partition's count: all older rows"
    assert "(the first partition holds all older history)" in meta["window"].value
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[WAREHOUSE_COUNT_CHECK].passed
    # the rest of the object is not loaded yet: the whole-object check says so, with both numbers
    whole = checks[WHOLE_OBJECT_CHECK]
    assert not whole.passed and whole.severity == dg.AssetCheckSeverity.WARN
    assert whole.metadata["warehouse_rows"].value == len(expected)
    assert whole.metadata["salesforce_live_count"].value == len(org.truth_ids("Contact"))
    assert "never loaded" in whole.metadata["likely_cause"].value


def test_the_whole_object_check_catches_a_table_that_lost_rows(org: Emulator, tmp_path: Path) -> None:
    catalog = catalog_starting(tmp_path, "2024-01-01")
    parts = partitions_def(catalog)
    account = next(a for a in build_assets(catalog) if asset_key("Account") in a.keys)
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    first, last = parts.get_first_partition_key(), parts.get_last_partition_key()
    with dg.instance_for_test() as instance:
        tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
        assert dg.materialize([account], instance=instance, resources=resources(org, db, work), tags=tags).success
        with duckdb.connect(str(db)) as con:  # rows lost from an old window, which no window check looks at
            con.execute("DELETE FROM salesforce.account WHERE system_modstamp < '2015-01-01'")
            lost = 12_000 - con.execute("SELECT COUNT(*) FROM salesforce.account").fetchone()[0]
        result = dg.materialize(
            [account], instance=instance, resources=resources(org, db, work), partition_key="2026-10-01"
        )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[WAREHOUSE_COUNT_CHECK].passed, "the window itself is whole"
    whole = checks[WHOLE_OBJECT_CHECK]
    live = len(org.truth_ids("Account"))
    assert not whole.passed and whole.severity == dg.AssetCheckSeverity.WARN
    assert whole.metadata["salesforce_live_count"].value == live
    assert whole.metadata["warehouse_rows"].value < live and lost > 0
    assert "rows missing" in whole.metadata["likely_cause"].value


def test_the_whole_object_check_is_not_counted_while_the_api_budget_is_under_the_floor(
    org: Emulator, tmp_path: Path
) -> None:
    catalog = catalog_starting(tmp_path, "2024-01-01")
    contact = next(a for a in build_assets(catalog, budget_floor=0.10) if asset_key("Contact") in a.keys)
    org.set_api_usage(used=95_000, limit=100_000)
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [contact],
                instance=instance,
                resources=resources(org, tmp_path / "sf.duckdb", tmp_path / "work"),
                partition_key="2026-10-01",
            )
    finally:
        org.set_api_usage(used=0, limit=100_000)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    whole = checks[WHOLE_OBJECT_CHECK]
    assert not whole.passed and whole.severity == dg.AssetCheckSeverity.WARN
    assert whole.metadata["evaluated"].value is False and "under the floor of 10%" in (whole.description or "")
    assert checks[WAREHOUSE_COUNT_CHECK].passed


def test_sync_without_since_loads_every_record_before_until(org: Emulator, tmp_path: Path) -> None:
    entry = load_catalog().get("Contact")
    db = tmp_path / "sf.duckdb"
    until = datetime(2026, 12, 1, tzinfo=UTC)
    with SalesforceClient(org.settings()) as client:
        result = sync_object(client, entry, Warehouse(duckdb_path=db), until=until, work_dir=tmp_path / "work")
    assert result.reconciled and result.read_since is None
    assert table_ids(db, "contact") == sorted(org.truth_ids("Contact"))


def test_a_late_commit_lands_with_the_next_window(org: Emulator, tmp_path: Path) -> None:
    """A record stamped inside a window already read, committed (visible) only after: the next window reads
    back the overlap and merges it; with no overlap it would be lost until a re-sync."""
    entry = load_catalog().get("Account")
    warehouse = Warehouse(duckdb_path=tmp_path / "sf.duckdb")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first, second = (now - timedelta(hours=1), now - timedelta(minutes=10)), (now - timedelta(minutes=10), now)
    target = org.truth_ids("Account")[5]
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, since=first[0], until=first[1], work_dir=tmp_path / "work")
        late = int((first[1] - timedelta(minutes=2)).timestamp() * 1000)  # inside the first window
        org.change("Account", update=[{"Id": target, "Name": "committed late"}], at_ms=late)

        def name_in_table() -> str:
            with duckdb.connect(str(tmp_path / "sf.duckdb"), read_only=True) as con:
                return con.execute("SELECT name FROM salesforce.account WHERE id = ?", [target]).fetchone()

        no_overlap = sync_object(
            client, entry, warehouse, since=second[0], until=second[1], work_dir=tmp_path / "w", overlap=timedelta(0)
        )
        assert no_overlap.salesforce_records == 0 and name_in_table() is None, "lost without the overlap"
        result = sync_object(client, entry, warehouse, since=second[0], until=second[1], work_dir=tmp_path / "w")
    assert result.read_since == second[0] - timedelta(minutes=5)
    assert result.salesforce_records == 1 and name_in_table() == ("committed late",)


def test_the_sensors_count_trails_now_by_the_overlap(org: Emulator) -> None:
    """Objects asked by COUNT() (here a CreatedDate cursor) are asked up to the overlap before now, as
    latestDateCovered trails now: a record committed late with a stamp before that is counted next tick."""
    now = datetime.now(UTC)
    org.change("Contact", insert=[{"LastName": "late"}], at_ms=int((now - timedelta(minutes=3)).timestamp() * 1000))
    ask = ChangeAsk("Contact", "CreatedDate", now - timedelta(minutes=30), now)
    with SalesforceClient(org.settings()) as client:
        settled = count_changes(client, [ask], now, settle=timedelta(minutes=5))
        (answer,) = settled.values()
        assert answer.rows == 0 and answer.covered == now - timedelta(minutes=5), "not yet settled"
        later = now + timedelta(minutes=6)
        next_ask = ChangeAsk("Contact", "CreatedDate", answer.covered, later)
        (next_answer,) = count_changes(client, [next_ask], later, settle=timedelta(minutes=5)).values()
    assert next_answer.rows == 1 and next_answer.covered == later - timedelta(minutes=5)


ROUTES = [("bulk", None), ("rest", None), ("bulk", "none")]


@pytest.mark.parametrize(("route", "cursor"), ROUTES, ids=["bulk", "rest", "bulk-no-cursor"])
def test_an_empty_object_loads_on_every_route(org: Emulator, tmp_path: Path, route: str, cursor: str | None) -> None:
    """First load and reload, as a window (partitioned) and as a full refresh: the table exists, empty."""
    entry = CatalogObject("Invoice__c", route=route, cursor_field=None if cursor else "SystemModstamp")
    warehouse = Warehouse(duckdb_path=tmp_path / "sf.duckdb")
    until = datetime(2026, 12, 1, tzinfo=UTC)
    loads = [{"full_refresh": True}] * 2
    if entry.cursor_field:
        loads = [{"until": until}, {"since": until - timedelta(days=30), "until": until}, *loads]
    options = ExtractOptions(rest_max_records=0)  # the route asked for, not REST because the object is small
    with SalesforceClient(org.settings()) as client:
        for window in loads:
            result = sync_object(
                client, entry, warehouse, work_dir=tmp_path / "work", extract_options=options, **window
            )
            assert result.reconciled and result.salesforce_records == result.rows_written == 0, window
            assert result.route == route, window  # a Bulk job (header-only result) or REST pages
            with duckdb.connect(str(tmp_path / "sf.duckdb"), read_only=True) as con:
                count = con.execute("SELECT COUNT(*) FROM salesforce.invoice_c").fetchone()[0]
                names = {r[0] for r in con.execute("DESCRIBE salesforce.invoice_c").fetchall()}
            assert count == 0 and {"id", "amount__c", "system_modstamp"} <= names, window


def test_an_empty_object_materializes_with_every_check_green(org: Emulator, tmp_path: Path) -> None:
    catalog = catalog_starting(tmp_path, "2024-01-01")
    parts = partitions_def(catalog)
    case = next(a for a in build_assets(catalog) if asset_key("Case") in a.keys)
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: parts.get_first_partition_key(),
        ASSET_PARTITION_RANGE_END_TAG: parts.get_last_partition_key(),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize([case], instance=instance, resources=resources(org, db, work), tags=tags)
        again = dg.materialize(
            [case], instance=instance, resources=resources(org, db, work), partition_key="2026-10-01"
        )
    for run in (result, again):
        assert run.success
        checks = run.get_asset_check_evaluations()
        assert len(checks) == 6 and all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]
    assert table_ids(db, "case") == []
