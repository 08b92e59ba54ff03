"""Values as real orgs hold them, end to end (emulator over HTTP, extract, split, load, DuckDB file):
blanks written as an empty field or as "" both load as null in every column type, and numbers printed
as Salesforce prints them (Java's Double.toString: scientific notation from 10^7; formula fields with more
fraction digits than describe's scale) land rounded half away from zero to the field's scale."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from sf_pipeline.catalog import CatalogObject
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.salesforce import SalesforceClient
from sf_pipeline.warehouse import Warehouse
from sf_pipeline.warehouse.naming import assign_columns, column_name, table_name
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.emulator.values import java_double

from ..helpers import ODD_TEXT, Emulator, assert_text_round_trips, running_emulator

OBJECT = "Invoice__c"
NUMBER_TYPES = {"double", "currency", "percent"}
ENTRY = CatalogObject(OBJECT, formula_fields="include")  # keeps Margin__c: a formula with extra fraction digits


@pytest.fixture(scope="module", params=[False, True], ids=["empty-blanks", "quoted-blanks"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    """An org writing blanks one way, and the object fully loaded from it into a DuckDB file."""
    tmp = tmp_path_factory.mktemp("real-values")
    config = EmulatorConfig(port=0, rows={OBJECT: 3_000}, cache_dir=tmp / "cache", quoted_blanks=request.param)
    with running_emulator(config) as org:
        db = tmp / "sf.duckdb"
        with SalesforceClient(org.settings()) as client:
            result = sync_object(
                client,
                ENTRY,
                Warehouse(duckdb_path=db),
                full_refresh=True,
                work_dir=tmp / "work",
            )
        assert result.reconciled
        yield org, db


def loaded_values(db: Path, field: str) -> dict[str, object]:
    """Id -> value of ``field``, read from the column the load recorded for it."""
    with duckdb.connect(str(db), read_only=True) as con:
        (column,) = con.execute(
            "SELECT column_name FROM salesforce._sf_columns WHERE sobject = ? AND field = ?", [OBJECT, field]
        ).fetchone()
        rows = con.execute(f'SELECT id, "{column}" FROM salesforce.{table_name(OBJECT)}').fetchall()
    return dict(rows)


def test_the_org_writes_blanks_the_way_it_was_told(loaded: tuple[Emulator, Path]) -> None:
    org, _ = loaded
    with SalesforceClient(org.settings()) as client:
        describe = client.describe(OBJECT)
    model = org.org.get(OBJECT)
    nillable = [f for f in model.fields if f.bulk_queryable and f.nillable and f.type not in ("id",)]
    row = model.quoted_row(nillable, next(i for i in range(model.rows) if model.raw_value(nillable[0], i) is None))
    assert row[0] == model.blank, "the fixture's org must write the blank style the test is about"
    assert describe["name"] == OBJECT


def test_blanks_are_null_in_every_column_type(loaded: tuple[Emulator, Path]) -> None:
    org, db = loaded
    model = org.org.get(OBJECT)
    live = [i for i in range(model.rows) if not model.is_deleted(i)]
    checked_types = set()
    for f in model.fields:
        if not f.bulk_queryable or f.name in ("Id",):
            continue
        values = loaded_values(db, f.name)
        truth_nulls = {model.raw_value(model.by_name["id"], i) for i in live if model.raw_value(f, i) is None}
        loaded_nulls = {k for k, v in values.items() if v is None}
        assert loaded_nulls == truth_nulls, f"{OBJECT}.{f.name} ({f.type}): nulls differ"
        assert "" not in values.values(), f"{OBJECT}.{f.name}: an empty string (Salesforce keeps none)"
        if truth_nulls:
            checked_types.add(f.type)
    assert {"string", "currency", "percent", "double", "date", "datetime", "boolean"} & checked_types, checked_types
    assert len(checked_types) >= 5, f"blanks seen in too few types to mean much: {checked_types}"


def test_numbers_land_rounded_to_the_fields_scale(loaded: tuple[Emulator, Path]) -> None:
    org, db = loaded
    model = org.org.get(OBJECT)
    id_field = model.by_name["id"]
    scientific = extra_digits = 0
    for f in (f for f in model.fields if f.type in NUMBER_TYPES and f.bulk_queryable):
        values = loaded_values(db, f.name)
        quantum = Decimal(1).scaleb(-f.scale)
        for i in range(model.rows):
            raw = model.raw_value(f, i)
            if raw is None or model.is_deleted(i):
                continue
            scientific += "E" in raw
            extra_digits += len(raw.split("E")[0].partition(".")[2]) > f.scale and "E" not in raw
            expected = Decimal(raw).quantize(quantum, rounding=ROUND_HALF_UP)  # half away from zero
            assert values[model.raw_value(id_field, i)] == expected, f"{OBJECT}.{f.name} row {i}: {raw}"
    assert scientific > 0, "the org printed no number in scientific notation: the test would prove nothing"
    assert extra_digits > 0, "no formula value with more fraction digits than the scale"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (99213206.0, "9.9213206E7"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (100.0, "100.0"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (-1234.5, "-1234.5"),
        (0.0, "0.0"),
        (1.5e20, "1.5E20"),
    ],
)
def test_the_emulator_prints_numbers_as_javas_double_tostring(value: float, printed: str) -> None:
    assert java_double(value) == printed


def test_two_fields_that_normalize_alike_get_a_column_each(loaded: tuple[Emulator, Path]) -> None:
    org, db = loaded
    model = org.org.get(OBJECT)
    assert column_name("ShipTo__c") == column_name("Ship_To__c"), "the pair must collide for the test to mean much"
    with duckdb.connect(str(db), read_only=True) as con:
        mapping = dict(
            con.execute(
                "SELECT field, column_name FROM salesforce._sf_columns WHERE sobject = ? AND field LIKE 'Ship%To__c'",
                [OBJECT],
            ).fetchall()
        )
    assert mapping == {"ShipTo__c": "ship_to__c", "Ship_To__c": "ship_to__c_2"}  # describe order decides, once
    with SalesforceClient(org.settings()) as client:  # a second load: same columns, nothing recorded twice
        again = sync_object(client, ENTRY, Warehouse(duckdb_path=db), full_refresh=True, work_dir=db.parent / "work2")
    assert {k: again.columns[k] for k in mapping} == mapping
    with duckdb.connect(str(db), read_only=True) as con:
        recorded = con.execute("SELECT count(*), count(DISTINCT field) FROM salesforce._sf_columns").fetchone()
    assert recorded[0] == recorded[1] == len(again.columns)
    id_field = model.by_name["id"]
    for api, col in mapping.items():
        f = model.by_name[api.lower()]
        with duckdb.connect(str(db), read_only=True) as con:
            values = dict(con.execute(f'SELECT id, "{col}" FROM salesforce.{table_name(OBJECT)}').fetchall())
        truth = {
            model.raw_value(id_field, i): model.raw_value(f, i) for i in range(model.rows) if not model.is_deleted(i)
        }
        assert values == truth, f"{api} -> {col}"


def test_column_assignments_are_stable_whichever_field_came_first() -> None:
    assert assign_columns(["ShipTo__c"], {}) == {"ShipTo__c": "ship_to__c"}
    # Ship_To__c added later: the field that had the column keeps it
    assert assign_columns(["Ship_To__c", "ShipTo__c"], {"ShipTo__c": "ship_to__c"}) == {
        "Ship_To__c": "ship_to__c_2",
        "ShipTo__c": "ship_to__c",
    }
    # the other way round
    assert assign_columns(["ShipTo__c", "Ship_To__c"], {"Ship_To__c": "ship_to__c"}) == {
        "ShipTo__c": "ship_to__c_2",
        "Ship_To__c": "ship_to__c",
    }
    # a removed field's column is never handed to another field
    assert assign_columns(["Ship_To__c"], {"ShipTo__c": "ship_to__c"}) == {"Ship_To__c": "ship_to__c_2"}


DUCKDB_TYPES = {
    "Amount__c": "DECIMAL(18,2)",
    "Tax_Rate__c": "DECIMAL(5,2)",
    "Line_Count__c": "DECIMAL(18,0)",
    "Due_Date__c": "DATE",
    "CreatedDate": "TIMESTAMP WITH TIME ZONE",
    "Reminder_Time__c": "TIME",
    "Paid__c": "BOOLEAN",
    "Name": "VARCHAR",
    "Notes__c": "VARCHAR",
}


def test_each_salesforce_type_gets_its_duckdb_type(loaded: tuple[Emulator, Path]) -> None:
    _, db = loaded
    with duckdb.connect(str(db), read_only=True) as con:
        found = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'salesforce' AND table_name = ?",
                [table_name(OBJECT)],
            ).fetchall()
        )
    assert {field: found[column_name(field)] for field in DUCKDB_TYPES} == DUCKDB_TYPES


TEXT_TYPES = {"string", "textarea", "picklist", "multipicklist", "email", "phone", "url"}


def test_long_and_odd_text_comes_back_as_salesforce_holds_it(loaded: tuple[Emulator, Path]) -> None:
    """131,072-character Long Text, CRLF, lone CR, tabs, NUL bytes (kept) and every Unicode plane."""
    org, db = loaded
    model = org.org.get(OBJECT)
    text = [f.name for f in model.fields if f.type in TEXT_TYPES and f.bulk_queryable]
    seen = assert_text_round_trips(model, {api: loaded_values(db, api) for api in text})
    assert seen == set(ODD_TEXT), f"the org's text lacked some cases, the test would prove less: {seen}"
