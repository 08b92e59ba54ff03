"""Freshness and deletes: records changed now in the org (the emulator's admin endpoint), the API budget
Salesforce reports on every answer, formula fields, and the Id sweep that finds hard deletes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from sf_pipeline.catalog import HARD_DELETED_COLUMN, load_catalog
from sf_pipeline.datapath.reconcile import sweep_ids
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.defs.sweep import ID_SWEEP_CHECK, SWEEP_JOB, build_id_sweep
from sf_pipeline.salesforce import ApiLimitError, ApiUsage, SalesforceClient
from sf_pipeline.warehouse import Warehouse

from ..helpers import Emulator, materialize_object


def rest_query(client: SalesforceClient, soql: str, all_rows: bool = False) -> list[dict]:
    return client.query(soql, include_deleted=all_rows)["records"]


def test_records_changed_now_are_what_queries_see(org: Emulator) -> None:
    """Insert, update, soft-delete and hard-delete now: SystemModstamp = now; query hides the recycle bin,
    queryAll shows it, and a hard-deleted record is in neither, as in Salesforce."""
    ids = org.truth_ids("Lead")
    before_ms = int(time.time() * 1000)
    answer = org.change(
        "Lead",
        insert=[{"LastName": "Newman", "Company": "Fresh Co", "Status": "Open"}],
        update=[{"Id": ids[0], "Company": "Renamed, Inc."}],
        delete=[ids[1]],
        hard_delete=[ids[2]],
    )
    (new_id,) = answer["inserted"]
    with SalesforceClient(org.settings()) as client:
        recent = "SELECT Id, Company, IsDeleted FROM Lead WHERE SystemModstamp >= " + time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(before_ms / 1000 - 1)
        )
        live = {r["Id"]: r for r in rest_query(client, recent)}
        everything = {r["Id"]: r for r in rest_query(client, recent, all_rows=True)}
        assert set(live) == {new_id, ids[0]}
        assert set(everything) == {new_id, ids[0], ids[1]} and everything[ids[1]]["IsDeleted"] is True
        assert live[ids[0]]["Company"] == "Renamed, Inc." and live[new_id]["Company"] == "Fresh Co"
        total = client.query("SELECT COUNT() FROM Lead")["totalSize"]
        assert total == len(ids) + 1 - 2
        gone = rest_query(client, f"SELECT Id FROM Lead WHERE Id = '{ids[2]}'", all_rows=True)
        assert gone == []
    assert org.truth_ids("Lead") == [i for i in ids if i not in (ids[1], ids[2])] + [new_id]
    with pytest.raises(httpx.HTTPStatusError):
        org.change("Lead", update=[{"Id": ids[1], "Company": "in the bin"}])
    with pytest.raises(httpx.HTTPStatusError):
        org.change("User", delete=[org.truth_ids("User")[0]])  # Users cannot be deleted


def test_every_api_answer_reports_the_org_usage_and_the_client_counts_its_calls(org: Emulator) -> None:
    org.set_api_usage(used=1_000, limit=15_000)
    with SalesforceClient(org.settings()) as client:
        client.describe("Lead")
        assert client.api_usage == ApiUsage(1_001, 15_000)
        client.query("SELECT COUNT() FROM Lead")
        assert client.api_calls == 2 and str(client.api_usage) == "1002/15000"
        usage = client.org_api_usage()  # the limits resource, itself a call
        assert usage == ApiUsage(1_003, 15_000) and usage.remaining_fraction == pytest.approx(13_997 / 15_000)
        org.set_api_usage(used=15_000, limit=15_000)
        with pytest.raises(ApiLimitError, match="REQUEST_LIMIT_EXCEEDED"):
            client.describe("Lead")
    assert ApiUsage.from_header("api-usage=25/5000; per-app-api-usage=17/250(appName=x)") == ApiUsage(25, 5000)
    assert ApiUsage.from_header(None) is None


def test_a_sync_records_its_api_calls_and_the_org_usage(org: Emulator, tmp_path: Path) -> None:
    result = materialize_object(org, "Lead", tmp_path / "sf.duckdb", tmp_path / "work", partition_key="2025-06-01")
    assert result.success
    (meta,) = [m.metadata for m in result.asset_materializations_for_node("salesforce__Lead")]
    calls = meta["salesforce_api_calls"].value
    # a month of 1,500 Leads is small: describe, one REST page (its totalSize chose the route); no Bulk job
    assert meta["route"].value.startswith("rest (by size: ") and calls == 2
    used, limit = map(int, meta["org_api_usage"].value.split("/"))
    assert limit == 100_000 and used >= calls


def test_formula_fields_are_left_out_by_default_and_kept_when_the_catalog_says_so(
    org: Emulator, tmp_path: Path
) -> None:
    """Margin__c is calculated: its values move with the formula clock, SystemModstamp does not."""
    invoice = load_catalog().get("Invoice__c")
    assert invoice.formula_fields == "include" and load_catalog().get("Lead").formula_fields == "exclude"
    warehouse = Warehouse(duckdb_path=tmp_path / "sf.duckdb")
    with SalesforceClient(org.settings()) as client:
        left_out = sync_object(
            client,
            dataclasses.replace(invoice, formula_fields="exclude"),
            warehouse,
            full_refresh=True,
            work_dir=tmp_path / "work",
        )
        assert left_out.formula_fields == ["Margin__c"] and not left_out.formula_fields_loaded
        assert "Margin__c" in left_out.skipped_fields and "Margin__c" not in left_out.columns
        kept = sync_object(client, invoice, warehouse, full_refresh=True, work_dir=tmp_path / "work")
        assert kept.formula_fields_loaded and kept.columns["Margin__c"] == "margin__c"
        with duckdb.connect(str(tmp_path / "sf.duckdb")) as con:
            before = dict(con.execute("SELECT id, margin__c FROM salesforce.invoice_c").fetchall())
        org.advance_formulas()
        count_query = "SELECT COUNT() FROM Invoice__c WHERE SystemModstamp >= 2026-11-01T00:00:00Z"
        assert client.query(count_query)["totalSize"] == 0, "formula changes never move SystemModstamp"
        sync_object(client, invoice, warehouse, full_refresh=True, work_dir=tmp_path / "work")
        with duckdb.connect(str(tmp_path / "sf.duckdb")) as con:
            after = dict(con.execute("SELECT id, margin__c FROM salesforce.invoice_c").fetchall())
    changed = sum(1 for k in before if before[k] != after[k])
    assert set(before) == set(after) and changed > len(before) // 2, "the full reload took the new values"


def sweep_job(org: Emulator, db: Path, work: Path, name: str):
    """The sweep job for one object, executed in process as a check-only run (as the schedule requests it)."""
    catalog = load_catalog()
    checks, _ = build_id_sweep(catalog)
    # the job with one object's check selected: what a run the schedule requests executes
    job = dg.define_asset_job(
        SWEEP_JOB, selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset_key(name), ID_SWEEP_CHECK))
    )
    defs = dg.Definitions(
        asset_checks=[checks],
        jobs=[job],
        resources={
            "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
            "warehouse": WarehouseResource(duckdb_path=str(db)),
            "pipeline_settings": PipelineSettings(work_dir=str(work)),
        },
    )
    with dg.instance_for_test() as instance:
        return defs.resolve_job_def(SWEEP_JOB).execute_in_process(instance=instance)


@pytest.mark.parametrize("mode", ["delete", "flag"])
def test_the_id_sweep_removes_or_flags_rows_salesforce_no_longer_has(org: Emulator, tmp_path: Path, mode: str) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    entry = dataclasses.replace(load_catalog().get("Lead"), hard_deletes=mode)
    warehouse = Warehouse(duckdb_path=db)
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, full_refresh=True, work_dir=work)
        ids = org.truth_ids("Lead")
        org.change(
            "Lead", hard_delete=ids[:3], insert=[{"LastName": "Late", "Company": "Not loaded", "Status": "Open"}]
        )
        result = sweep_ids(client, entry, warehouse, work_dir=work)
        again = sweep_ids(client, entry, warehouse, work_dir=work)
    c = result.comparison
    assert (c.table_rows, c.salesforce_ids, c.gone_from_salesforce, c.missing_in_table) == (
        len(ids),
        len(ids) - 3 + 1,
        3,
        1,
    )
    assert not result.ids_match, "an Id Salesforce has and the table lacks is reported"
    assert again.comparison.gone_from_salesforce == 0 and again.comparison.already_flagged == (
        3 if mode == "flag" else 0
    )
    with duckdb.connect(str(db)) as con:
        if mode == "delete":
            left = {r[0] for r in con.execute("SELECT id FROM salesforce.lead").fetchall()}
            assert left == set(ids[3:])
        else:
            flagged = con.execute(f"SELECT id FROM salesforce.lead WHERE {HARD_DELETED_COLUMN} IS NOT NULL").fetchall()
            assert sorted(r[0] for r in flagged) == sorted(ids[:3])
            assert con.execute("SELECT count(*) FROM salesforce.lead").fetchone()[0] == len(ids)
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "lead__sf_ids" not in tables, "the scratch table of Ids is dropped"


def test_the_id_sweep_check_reports_the_counts_in_dagster(org: Emulator, tmp_path: Path) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    with SalesforceClient(org.settings()) as client:
        sync_object(client, load_catalog().get("Lead"), Warehouse(duckdb_path=db), full_refresh=True, work_dir=work)
    ids = org.truth_ids("Lead")
    org.change("Lead", hard_delete=ids[10:12])
    result = sweep_job(org, db, work, "Lead")
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == ID_SWEEP_CHECK and evaluation.passed
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["gone_from_salesforce"] == 2 and meta["salesforce_ids"] == len(ids) - 2
    assert meta["missing_in_table"] == 0 and meta["action"] == "deleted" and meta["salesforce_api_calls"] >= 2
    assert result.get_asset_materialization_events() == [], "the sweep is a check: no new materialization"
