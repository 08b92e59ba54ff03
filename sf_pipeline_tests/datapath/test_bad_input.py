"""Bad input, each with a clear error that names the object, the field, the file or the setting, and
nothing loaded: unknown objects and fields, names that are not Salesforce identifiers, malformed CSV,
an empty result, and a result much smaller than what the warehouse held (a warning check)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from sf_pipeline.catalog import CatalogObject, load_catalog
from sf_pipeline.datapath.load import LoadError, ObjectLoader
from sf_pipeline.datapath.split import Chunk, MalformedCsvError, plan_chunks
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import partitions_def
from sf_pipeline.defs.checks import EMPTY_GUARD_CHECK, SHRINK_CHECK
from sf_pipeline.defs.resources import SalesforceResource
from sf_pipeline.errors import CatalogError
from sf_pipeline.salesforce import SalesforceClient, SalesforceError
from sf_pipeline.salesforce.soql import InvalidIdentifierError, build_query, select_fields
from sf_pipeline.warehouse import Warehouse, duckdb_destination
from sf_testbed.emulator.soql import epoch_ms

from ..helpers import Emulator, materialize_object


def tables(db: Path) -> set[str]:
    if not db.exists():
        return set()
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'salesforce'"
            ).fetchall()
        }


def test_unknown_object_is_named_and_nothing_is_created(client: SalesforceClient, tmp_path: Path) -> None:
    db = tmp_path / "sf.duckdb"
    with pytest.raises(SalesforceError, match=r"\[Nonexistent__c\].*NOT_FOUND|\[Nonexistent__c\].*not"):
        sync_object(
            client,
            CatalogObject("Nonexistent__c"),
            Warehouse(duckdb_path=db),
            full_refresh=True,
            work_dir=tmp_path / "work",
        )
    assert tables(db) == set()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            CatalogObject("Lead", cursor_field="LastViewedDate"),
            r"cursor field LastViewedDate is not a queryable field of Lead",
        ),
        (CatalogObject("Lead", exclude_fields=("Secret_Field__c",)), r"\[Lead\] exclude_fields names Secret_Field__c"),
    ],
)
def test_fields_missing_from_describe_are_named(
    client: SalesforceClient, tmp_path: Path, entry: CatalogObject, message: str
) -> None:
    db = tmp_path / "sf.duckdb"
    window = {"since": datetime(2025, 1, 1, tzinfo=UTC), "until": datetime(2025, 2, 1, tzinfo=UTC)}
    with pytest.raises((SalesforceError, ValueError), match=message):
        sync_object(client, entry, Warehouse(duckdb_path=db), work_dir=tmp_path / "work", **window)
    assert tables(db) == set()


@pytest.mark.parametrize(
    "name", ["Account; DROP TABLE x", "Account' OR '1'='1", "Lead--", "1Lead", "Le ad", 'Lead"', "Lead\n"]
)
def test_names_that_are_not_identifiers_reach_neither_soql_nor_sql(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="not a valid Salesforce API name"):
        build_query(name, ["Id"])
    with pytest.raises(InvalidIdentifierError):
        build_query("Lead", ["Id", name])
    with pytest.raises(InvalidIdentifierError):
        ObjectLoader(name, duckdb_destination(tmp_path / "x.duckdb"))
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(f"objects:\n  - name: Lead\n    cursor_field: {name!r}\n")
    with pytest.raises(CatalogError, match=r"object 'Lead': cursor_field .* is not a valid Salesforce API name"):
        load_catalog(catalog)
    describe = {"name": "Lead", "fields": [{"name": "Id", "type": "id"}, {"name": name, "type": "string"}]}
    with pytest.raises(InvalidIdentifierError, match="field of Lead"):
        select_fields(describe)  # a describe that names such a field is refused too


BAD_CSV = {
    "ragged row": (b'"Id","Name"\n"00Q1","ok"\n"00Q2","ragged","extra"\n', r"Lead\.bad\.csv.*(Expected 2 columns|3)"),
    "unterminated quote": (b'"Id","Name"\n"00Q1","ok"\n"00Q2","never closed\n', r"Lead\.bad\.csv.*never closed"),
    "wrong encoding": ('"Id","Name"\n"00Q1","Müller"\n'.encode("latin-1"), r"Lead\.bad\.csv.*(UTF8|utf-8|UTF-8)"),
}


@pytest.mark.parametrize("case", list(BAD_CSV), ids=list(BAD_CSV))
def test_malformed_csv_fails_naming_the_file_and_leaves_the_table_as_it_was(tmp_path: Path, case: str) -> None:
    db = tmp_path / "sf.duckdb"
    good = tmp_path / "Lead.good.csv"
    good.write_bytes(b'"Id","Name"\n"00Q0","first"\n')
    fields = [{"name": "Id", "type": "id"}, {"name": "Name", "type": "string"}]
    ObjectLoader("Lead", duckdb_destination(db)).load([Chunk([good], 1, good.stat().st_size)], fields, "merge")
    bad = tmp_path / "Lead.bad.csv"
    content, message = BAD_CSV[case]
    bad.write_bytes(content)

    def plan_and_load() -> None:
        # as every path plans it (the extract verifies each page the same way): an open quote is refused here
        chunks = plan_chunks([bad], tmp_path / "chunks")
        ObjectLoader("Lead", duckdb_destination(db)).load(chunks, fields, "merge")

    with pytest.raises((LoadError, MalformedCsvError), match=message):
        plan_and_load()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT id, name FROM salesforce.lead").fetchall() == [("00Q0", "first")]


def materialize_lead(org: Emulator, db: Path, work: Path, **kwargs: object) -> dg.ExecuteInProcessResult:
    return materialize_object(org, "Lead", db, work, **kwargs)


def day_window(day: date) -> dict:
    """Run config that narrows a (monthly) partition's run to one day, as the change sensor narrows its runs."""
    since, until = datetime.combine(day, time(), UTC), datetime.combine(day + timedelta(days=1), time(), UTC)
    return {"ops": {"salesforce__Lead": {"config": {"since": since.isoformat(), "until": until.isoformat()}}}}


def test_an_empty_window_loads_nothing_and_says_so(org: Emulator, tmp_path: Path) -> None:
    parts = partitions_def(load_catalog())
    days = (date(2024, 1, 1) + timedelta(days=n) for n in range((date.today() - date(2024, 1, 1)).days))
    empty = next(
        day
        for day in days
        if not org.truth_ids(
            "Lead", epoch_ms(f"{day}T00:00:00+00:00"), epoch_ms(f"{day}T23:59:59.999+00:00"), include_deleted=True
        )
    )
    month = parts.get_partition_key_for_timestamp(datetime.combine(empty, time(), UTC).timestamp())
    result = materialize_lead(
        org, tmp_path / "sf.duckdb", tmp_path / "work", partition_key=month, run_config=day_window(empty)
    )
    assert result.success
    (meta,) = [m.metadata for m in result.asset_materializations_for_node("salesforce__Lead")]
    assert meta["rows_written"].value == 0 and meta["records_read"].value == 0
    assert meta["window"].value.startswith(f"{empty}T00:00:00"), "the narrower window, not the whole month"
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks[EMPTY_GUARD_CHECK].passed and checks[EMPTY_GUARD_CHECK].metadata["salesforce_count"].value == 0


def test_a_window_outside_the_runs_partitions_is_refused_naming_the_object(org: Emulator, tmp_path: Path) -> None:
    result = materialize_lead(
        org,
        tmp_path / "sf.duckdb",
        tmp_path / "work",
        partition_key="2025-01-01",
        run_config=day_window(date(2025, 2, 3)),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "[Lead] config window 2025-02-03" in message and "not inside the run's partitions 2025-01-01" in message
    assert not result.asset_materializations_for_node("salesforce__Lead"), "nothing recorded as loaded"


def test_a_result_much_smaller_than_before_fails_the_warning_check(org: Emulator, tmp_path: Path) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    full = {
        "run_config": {"ops": {"salesforce__Lead": {"config": {"full_refresh": True}}}},
        "partition_key": "2025-01-01",
    }
    first = materialize_lead(org, db, work, **full)
    checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
    assert checks[SHRINK_CHECK].passed
    with duckdb.connect(str(db)) as con:  # the table held three times as many rows before this load
        live = con.execute("SELECT count(*) FROM salesforce.lead").fetchone()[0]
        con.execute("INSERT INTO salesforce.lead (id) SELECT 'old-' || i FROM range(2 * ?) t(i)", [live])
    second = materialize_lead(org, db, work, **full)
    assert second.success, "a warning, not a failure of the run"
    check = {c.check_name: c for c in second.get_asset_check_evaluations()}[SHRINK_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["rows_before"].value == 3 * live and check.metadata["rows_after"].value == live


def test_a_missing_login_url_fails_naming_it_and_never_dials_localhost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """No production default points at the emulator: without SF_LOGIN_URL the client, the CLI and a Dagster run
    fail naming it."""
    from sf_pipeline.cli.main import main
    from sf_pipeline.errors import SettingsError

    monkeypatch.delenv("SF_LOGIN_URL", raising=False)
    with pytest.raises(SettingsError, match="SF_LOGIN_URL is not set"):
        SalesforceClient()
    assert main(["sync", "Account", "--full-refresh"]) == 1
    assert "SF_LOGIN_URL is not set" in capsys.readouterr().err

    @dg.asset
    def uses_the_org(salesforce: SalesforceResource) -> None: ...

    with pytest.raises(dg.DagsterResourceFunctionError) as failed:  # the run fails as its resources start
        dg.materialize([uses_the_org], resources={"salesforce": SalesforceResource()})
    assert "SF_LOGIN_URL is not set" in str(failed.value.__cause__)
