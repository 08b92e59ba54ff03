"""Schema drift between runs, end to end through the asset (emulator over HTTP, DuckDB file): an admin adds
a field, removes one (or hides it from the integration user) and retypes two between loads of the same
window. Every load succeeds without a dlt schema error; the new field gets a column, the removed field's
column stays, a retyped field whose values need another type gets a new column (the old column keeps what
it held), and every change is reported (metadata ``schema_changes``, WARN check ``schema_unchanged``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import partitions_def
from sf_pipeline.defs.checks import SCHEMA_CHECK
from sf_pipeline.salesforce import SalesforceClient, SalesforceSettings
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.local_dagster import free_port

from ..helpers import Emulator, materialize_object, running_emulator
from ..servers import stop, wait_for_port

OBJECT = "Invoice__c"
PARTITIONS = 120  # the trailing window: a few hundred of the test org's invoices, few materialization events


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An org of its own: the test changes its schema."""
    with running_emulator(EmulatorConfig(port=0, rows={OBJECT: 2_000}, cache_dir=tmp_path_factory.mktemp("c"))) as org:
        yield org


def load_window(org: Emulator, db: Path, work: Path) -> dg.ExecuteInProcessResult:
    keys = partitions_def(load_catalog()).get_partition_keys()[-PARTITIONS:]
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    return materialize_object(org, OBJECT, db, work, tags=tags)


def schema_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}[SCHEMA_CHECK]


def columns(db: Path) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'salesforce' AND table_name = 'invoice_c'"
            ).fetchall()
        )


def test_fields_added_removed_and_retyped_between_loads(org: Emulator, tmp_path: Path) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    first = load_window(org, db, work)
    assert first.success and schema_check(first).passed, "a first load reports no change"
    before = columns(db)
    assert before["amount__c"].startswith("DECIMAL") and "notes__c" in before

    change = {
        "object": OBJECT,
        "add": [{"name": "Region__c", "type": "string", "label": "Region"}],
        "remove": ["Notes__c"],
        "retype": {"Amount__c": {"type": "string", "length": 255}, "Status__c": {"type": "multipicklist"}},
    }
    httpx.post(f"{org.url}/__emulator__/schema", json=change).raise_for_status()
    second = load_window(org, db, work)
    assert second.success, "schema drift never fails the run"
    check = schema_check(second)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    changes = {kind: value.value for kind, value in check.metadata.items()}
    assert [c["field"] for c in changes["added"]] == ["Region__c"]
    assert [c["field"] for c in changes["removed"]] == ["Notes__c"]
    retyped = {c["field"]: c for c in changes["retyped"]}
    assert retyped["Amount__c"]["column"] == "amount__c_string" and retyped["Amount__c"]["old_column"] == "amount__c"
    assert retyped["Status__c"]["column"] == retyped["Status__c"]["old_column"] == "status__c"  # still text
    materialization = second.asset_materializations_for_node("salesforce__Invoice__c")[-1]  # the full record
    assert materialization.metadata["schema_changes"].value == changes

    after = columns(db)
    assert set(before) <= set(after), "no column is dropped"
    assert after["amount__c"] == before["amount__c"] and after["amount__c_string"] == "VARCHAR"
    assert "region__c" in after
    model = org.org.get(OBJECT)
    id_field = model.by_name["id"]
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = dict(con.execute("SELECT id, region__c FROM salesforce.invoice_c").fetchall())
        amounts = dict(con.execute("SELECT id, amount__c_string FROM salesforce.invoice_c").fetchall())
    region, amount = model.by_name["region__c"], model.by_name["amount__c"]
    for i in range(model.rows):
        key = model.raw_value(id_field, i)
        if key in loaded:
            assert loaded[key] == model.raw_value(region, i)
            assert amounts[key] == model.raw_value(amount, i)

    third = load_window(org, db, work)
    assert third.success and schema_check(third).passed, "a change is reported once"
    httpx.delete(f"{org.url}/__emulator__/schema").raise_for_status()


def test_the_emulator_cli_applies_schema_changes_and_api_usage_at_start(tmp_path: Path) -> None:
    changes = tmp_path / "changes.json"
    spec = {
        "object": OBJECT,
        "add": [{"name": "Region__c"}],
        "remove": ["Notes__c"],
        "retype": {"Amount__c": {"type": "string"}},
    }
    changes.write_text(json.dumps([spec]))
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "sf_pipeline.cli",
        "emulator",
        "--port",
        str(port),
        "--rows",
        f"{OBJECT}=100",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--schema-changes",
        str(changes),
        "--api-usage",
        "95000/100000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, "emulator")
        with SalesforceClient(SalesforceSettings(login_url=f"http://127.0.0.1:{port}")) as client:
            fields = {f["name"]: f["type"] for f in client.describe(OBJECT)["fields"]}
            assert str(client.api_usage) == "95001/100000", "the org's API usage is set at start too"
    finally:
        stop(proc)
    assert fields["Region__c"] == "string" and "Notes__c" not in fields and fields["Amount__c"] == "string"
