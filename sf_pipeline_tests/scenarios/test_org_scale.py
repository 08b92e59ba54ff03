"""An org of many objects, over HTTP: the emulator's long tail (every kind and how Salesforce treats it),
discovery (classification, If-Modified-Since, a failed describe), the catalog's override layer, and the
REST route (queryAll pages through the same loader; Bulk refusals demoted at run time)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from sf_pipeline.catalog import load_catalog
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.errors import CatalogError
from sf_pipeline.salesforce import ExtractOptions, QueryError, SalesforceClient
from sf_pipeline.salesforce.discovery import FILTER_REASON, discover, read_discovery, refresh, write_discovery
from sf_pipeline.salesforce.soql import count_query
from sf_pipeline.warehouse import Warehouse
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.emulator.org import Org

from ..helpers import Emulator, running_emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

OBJECTS = 30


@pytest.fixture(scope="module")
def big_org(tmp_path_factory: pytest.TempPathFactory) -> Emulator:
    # more than a REST batch; a History with rows; an object with none
    rows = {"Opportunity": 150_000, "ContractHistory": 20_000, "CaseStatus": 0}
    config = EmulatorConfig(port=0, objects=OBJECTS, scale=0.02, rows=rows, cache_dir=tmp_path_factory.mktemp("cache"))
    with running_emulator(config) as org:
        # a real org's metadata predates the run: a fresh emulator's would fall within discovery's 1 s margin
        for model in org.org.objects.values():
            model.metadata_changed -= 3600
        yield org


@pytest.fixture
def sf(big_org: Emulator) -> SalesforceClient:
    big_org.clear_faults()
    with SalesforceClient(big_org.settings()) as client:
        yield client


def _kind_of(org: Emulator, predicate) -> str:
    return next(m.name for m in org.org.objects.values() if predicate(m))


def _error(client: SalesforceClient, soql: str, bulk: bool) -> QueryError:
    send = (lambda: client.create_query_job(soql, sobject="x")) if bulk else (lambda: client.query(soql))
    with pytest.raises(QueryError) as info:
        send()
    return info.value


# -- the emulator's org -------------------------------------------------------------------------------------
def test_org_of_300_objects_has_every_kind_and_a_long_tail_of_sizes() -> None:
    org = Org(objects_total=300)
    models = list(org.objects.values())
    assert len(models) == 300 and len({m.prefix for m in models}) == 300, "one Id prefix an object"
    kinds = Counter(m.kind for m in models)
    for kind in ("custom", "history", "share", "feed", "change_event", "external", "platform_event", "tag"):
        assert kinds[kind] >= 3, kinds
    sizes = sorted(m.rows for m in models)
    assert sum(s < 1_000 for s in sizes) > len(sizes) / 2, "most objects are small"
    assert sum(s >= 100_000 for s in sizes) >= 3, "a few are large"
    assert list(Org(objects_total=300).objects) == list(org.objects), "the same seed gives the same org"
    small = Org(objects_total=20)
    assert {"custom", "history", "share", "feed", "external", "tag"} <= {m.kind for m in small.objects.values()}


def test_describe_global_lists_every_object_with_its_flags(big_org: Emulator, sf: SalesforceClient) -> None:
    entries = {e["name"]: e for e in sf.sobjects()}
    assert len(entries) == OBJECTS
    event = _kind_of(big_org, lambda m: m.kind == "platform_event")
    assert entries[event]["queryable"] is False
    history = _kind_of(big_org, lambda m: m.kind == "history")
    fields = {f["name"] for f in sf.describe(history)["fields"]}
    assert "CreatedDate" in fields and not {"SystemModstamp", "LastModifiedDate"} & fields
    share = _kind_of(big_org, lambda m: m.kind == "share")
    assert {"SystemModstamp", "CreatedDate"}.isdisjoint(f["name"] for f in sf.describe(share)["fields"])
    external = _kind_of(big_org, lambda m: m.kind == "external")
    assert not [f for f in sf.describe(external)["fields"] if f["type"] in ("date", "datetime")]


def test_bulk_refuses_what_salesforce_refuses_with_its_own_errors(big_org: Emulator, sf: SalesforceClient) -> None:
    assert "INVALIDENTITY: Entity 'CaseStatus' is not supported by the Bulk API." in str(
        _error(sf, "SELECT Id FROM CaseStatus", bulk=True)
    )
    assert sf.query("SELECT Id FROM CaseStatus")["totalSize"] == big_org.org.get("CaseStatus").rows, "REST answers"
    assert "Selecting compound data not supported in Bulk Query" in str(
        _error(sf, "SELECT Id, BillingAddress FROM ServiceTerritory", bulk=True)
    )
    assert "base64" in str(_error(sf, "SELECT Id, Body FROM Document", bulk=True))
    change_event = _kind_of(big_org, lambda m: m.kind == "change_event")
    for bulk in (True, False):
        assert f"INVALID_TYPE: entity type {change_event} does not support query" in str(
            _error(sf, f"SELECT Id FROM {change_event}", bulk)
        )


def test_an_object_that_needs_a_filter_answers_only_a_filtered_query(sf: SalesforceClient) -> None:
    for bulk in (True, False):
        error = _error(sf, "SELECT Id FROM Vote", bulk)
        assert error.error_code == "MALFORMED_QUERY" and "Implementation restriction: Vote requires a filter" in str(
            error
        )
    assert sf.query("SELECT COUNT() FROM Vote WHERE (ParentId = 'nothing')")["totalSize"] == 0
    job = sf.create_query_job(
        "SELECT Id FROM Vote WHERE ParentId = 'x' AND SystemModstamp >= 2020-01-01T00:00:00Z", sobject="Vote"
    )
    assert job["state"] == "UploadComplete"


def test_a_history_window_on_created_date_selects_exactly_its_rows(big_org: Emulator, sf: SalesforceClient) -> None:
    history = big_org.org.get(_kind_of(big_org, lambda m: m.kind == "history" and m.rows > 50))
    since, until = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    truth = [
        i
        for i in range(history.rows)
        if since.timestamp() * 1000 <= history.modstamp_ms(i) < until.timestamp() * 1000 and not history.is_deleted(i)
    ]
    answer = sf.query(count_query(history.name, "CreatedDate", since, until))
    assert answer["totalSize"] == len(truth) > 0


def test_describe_global_and_describe_honour_if_modified_since(big_org: Emulator, sf: SalesforceClient) -> None:
    url = f"{sf.instance_url}{sf.data_path('sobjects')}"
    auth = {"Authorization": f"Bearer {sf._token}"}  # noqa: SLF001 - the raw HTTP answer is what is tested
    first = httpx.get(url, headers=auth)
    assert first.status_code == 200 and first.headers["Last-Modified"]
    again = httpx.get(url, headers={**auth, "If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304 and again.content == b""
    describe = httpx.get(f"{url}/Account/describe", headers={**auth, "If-Modified-Since": first.headers["Date"]})
    assert describe.status_code == 304
    old = "Mon, 01 Jan 2024 00:00:00 GMT"
    assert httpx.get(f"{url}/Account/describe", headers={**auth, "If-Modified-Since": old}).status_code == 200


# -- discovery ----------------------------------------------------------------------------------------------
def test_discovery_classifies_routes_cursors_and_skips(big_org: Emulator, sf: SalesforceClient, tmp_path) -> None:
    found, stats = discover(sf)
    by_name = {o.name: o for o in found.objects}
    assert len(by_name) == OBJECTS
    assert by_name["Account"].route == "bulk" and by_name["Account"].cursor_field == "SystemModstamp"
    assert any("BillingAddress left out" in n for n in by_name["Account"].notes)
    assert by_name["CaseStatus"].route == "rest", "on the not-Bulk list"
    assert by_name["AccountFeed"].route == "rest"
    assert by_name["ContactTag"].route == "bulk", "on no list: demoted at run time"
    assert any("Body left out: a base64 field" in n for n in by_name["Document"].notes)
    history = by_name[_kind_of(big_org, lambda m: m.kind == "history")]
    assert history.cursor_field == "CreatedDate" and history.kind == "history"
    share = by_name[_kind_of(big_org, lambda m: m.kind == "share")]
    assert share.cursor_field == "LastModifiedDate" and share.kind == "share"
    external = by_name[_kind_of(big_org, lambda m: m.kind == "external")]
    assert external.cursor_field is None and external.reason is None, "no date field: loaded in full"
    assert by_name["Vote"].reason == FILTER_REASON
    for model in big_org.org.objects.values():
        if model.kind == "change_event":
            assert "change events" in by_name[model.name].reason
        if model.kind == "platform_event":
            assert by_name[model.name].reason.startswith("not queryable")
    assert stats.requests == 1 + stats.described, "one describeGlobal, one describe an object that may load"
    write_discovery(found, tmp_path / "d.yaml")
    again = read_discovery(tmp_path / "d.yaml")
    assert sorted((o.name, o.route, o.cursor_field, o.reason, o.notes) for o in again.objects) == sorted(
        (o.name, o.route, o.cursor_field, o.reason, o.notes) for o in found.objects
    )


def test_a_second_discovery_costs_one_request_and_redescribes_only_what_changed(
    big_org: Emulator, sf: SalesforceClient, tmp_path: Path
) -> None:
    path = tmp_path / "discovered.yaml"
    refresh(sf, path)
    written = path.read_text()
    same, stats = refresh(sf, path)
    assert stats.requests == 1 and stats.described == 0
    assert path.read_text() == written, "nothing changed: the file is left alone"
    httpx.post(
        f"{big_org.url}/__emulator__/schema", json={"object": "Lead", "add": [{"name": "Score__c", "type": "double"}]}
    ).raise_for_status()
    try:
        changed, stats = refresh(sf, path)
    finally:
        httpx.delete(f"{big_org.url}/__emulator__/schema").raise_for_status()
    # Lead's describe is read again; every other described object (Vote, skipped, too) answers 304
    assert stats.described == 1 and stats.unchanged == len(same.loadable) - 1 + 1
    assert stats.requests == 2 + stats.unchanged, "describeGlobal, Lead's describe, a 304 for each other"
    assert sorted(o.name for o in changed.objects) == sorted(o.name for o in same.objects)


def test_a_failed_describe_skips_that_object_only(big_org: Emulator, sf: SalesforceClient) -> None:
    big_org.fault(kind="html_login", stage="describe", object="Opportunity")
    found, _ = discover(sf)
    opportunity = found.get("Opportunity")
    assert opportunity.reason.startswith("describe failed:") and "HTML page" in opportunity.reason
    assert found.get("Account").reason is None and len(found.loadable) > 10


# -- the override layer -------------------------------------------------------------------------------------
def _overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


def test_overrides_include_exclude_tune_and_unskip_with_a_filter(sf: SalesforceClient, tmp_path: Path) -> None:
    discovered = tmp_path / "discovered.yaml"
    refresh(sf, discovered)
    everything = load_catalog(_overrides(tmp_path, "objects: []\n"), discovered)
    assert "Vote" not in everything.names and ("Vote", FILTER_REASON) in everything.skipped
    assert {o.kind for o in everything.objects} >= {"standard", "custom", "history", "share", "external"}
    catalog = load_catalog(
        _overrides(
            tmp_path,
            """
exclude: ["*History", "*__x"]
objects:
  - {name: Account, weight: 50, tags: {domain: crm}}
  - {name: Vote, filter: "ParentId = 'a0X000000000001'"}
  - {name: Lead, route: rest, cursor_field: LastModifiedDate}
""",
        ),
        discovered,
    )
    assert not [n for n in catalog.names if n.endswith(("History", "__x"))]
    assert catalog.get("Account").weight == 50 and catalog.get("Account").tags == {"domain": "crm"}
    assert catalog.get("Vote").filter == "ParentId = 'a0X000000000001'"
    assert catalog.get("Lead").route == "rest" and catalog.get("Lead").cursor_field == "LastModifiedDate"
    pinned = load_catalog(_overrides(tmp_path, "include: [Account, contact, '*Share']\n"), discovered)
    shares = [m.name for m in everything.objects if m.name.endswith("Share")]
    assert pinned.names == ["Account", "Contact", *shares] and shares
    with pytest.raises(CatalogError, match="'Nope__c' is not in the discovered catalog"):
        load_catalog(_overrides(tmp_path, "objects: [{name: Nope__c}]\n"), discovered)
    with pytest.raises(CatalogError, match="route must be one of"):
        load_catalog(_overrides(tmp_path, "objects: [{name: Lead, route: soap}]\n"), discovered)
    with pytest.raises(CatalogError, match="discovery skipped it: needs a filter"):
        everything.get("Vote")


# -- the REST route -----------------------------------------------------------------------------------------
def _sync(org: Emulator, name: str, db: Path, work: Path, **entry) -> object:
    from dataclasses import replace

    from sf_pipeline.catalog import CatalogObject

    with SalesforceClient(org.settings()) as client:
        return sync_object(
            client,
            replace(CatalogObject(name), **entry),
            Warehouse(duckdb_path=db),
            until=datetime(2027, 1, 1, tzinfo=UTC),  # open at its start: every record
            work_dir=work,
            extract_options=ExtractOptions(rest_max_records=0),  # the catalog's route, whatever the size
        )


def test_rest_route_loads_the_same_table_as_bulk(big_org: Emulator, tmp_path: Path) -> None:
    bulk = _sync(big_org, "Opportunity", tmp_path / "bulk.duckdb", tmp_path / "w1")
    rest = _sync(big_org, "Opportunity", tmp_path / "rest.duckdb", tmp_path / "w2", route="rest")
    assert (bulk.route, rest.route) == ("bulk", "rest") and rest.job_id == "rest"
    assert rest.reconciled and rest.salesforce_records == bulk.salesforce_records > 2_000, "several REST batches"
    query = "SELECT * FROM salesforce.opportunity ORDER BY id"
    with duckdb.connect(str(tmp_path / "bulk.duckdb")) as a, duckdb.connect(str(tmp_path / "rest.duckdb")) as b:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_rest_pages_are_announced_as_they_complete_and_an_empty_object_gives_a_header(
    big_org: Emulator, sf: SalesforceClient, tmp_path: Path
) -> None:
    from sf_pipeline.salesforce.rest_extract import RestExtract

    announced = []
    fields = ["Id", "Name", "Amount", "IsClosed"]
    result = RestExtract(
        sf, "Opportunity", fields, tmp_path / "opp", page_records=1_000, on_page=lambda *a: announced.append(a)
    ).run()
    total = big_org.org.get("Opportunity").rows - sum(map(big_org.org.get("Opportunity").is_deleted, range(3000)))
    assert result.records == total == sum(result.page_records) and result.route == "rest"
    assert [a[1] for a in announced] == result.page_records and result.page_records[0] == 1_000
    assert [a[0] for a in announced] == result.files and all(a[2] == total for a in announced)
    assert not list((tmp_path / "opp").glob("*.part"))
    first = result.files[0].read_text().splitlines()
    assert first[0] == '"Id","Name","Amount","IsClosed"' and len(first) == 1_001
    assert first[1].endswith(('"true"', '"false"')), "booleans as Bulk writes them"
    empty = RestExtract(sf, "CaseStatus", ["Id"], tmp_path / "empty").run()
    assert empty.records == 0 and [f.read_text() for f in empty.files] == ['"Id"\n']


def test_a_bulk_refusal_at_run_time_demotes_the_object_to_rest(big_org: Emulator, tmp_path: Path) -> None:
    result = _sync(big_org, "ContactTag", tmp_path / "db.duckdb", tmp_path / "w")
    assert result.route == "rest" and "is not supported by the Bulk API" in result.demoted
    model = big_org.org.get("ContactTag")
    assert result.reconciled and result.salesforce_records == model.rows


def test_the_id_sweep_follows_the_route_and_takes_an_empty_object(big_org: Emulator, tmp_path: Path) -> None:
    from sf_pipeline.catalog import CatalogObject
    from sf_pipeline.datapath.reconcile import sweep_ids

    db, work = tmp_path / "db.duckdb", tmp_path / "w"
    for name, route in (("ContactTag", "bulk"), ("CaseStatus", "rest")):
        loaded = _sync(big_org, name, db, work, route=route)
        with SalesforceClient(big_org.settings()) as client:
            swept = sweep_ids(client, CatalogObject(name, route=route), Warehouse(duckdb_path=db), work_dir=work)
        assert swept.comparison.salesforce_ids == loaded.salesforce_records == big_org.org.get(name).rows
        assert swept.ids_match and swept.comparison.gone_from_salesforce == 0
    assert big_org.org.get("CaseStatus").rows == 0, "an object Salesforce holds no record of"


def test_an_object_needing_a_filter_loads_with_the_catalogs_filter(big_org: Emulator, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="Implementation restriction"):
        _sync(big_org, "Vote", tmp_path / "db.duckdb", tmp_path / "w")
    vote = big_org.org.get("Vote")
    parent = vote.raw_value(vote.by_name["parentid"], 0)
    result = _sync(big_org, "Vote", tmp_path / "db.duckdb", tmp_path / "w", filter=f"ParentId = '{parent}'")
    truth = sum(
        1 for i in range(vote.rows) if vote.raw_value(vote.by_name["parentid"], i) == parent and not vote.is_deleted(i)
    )
    assert result.reconciled and truth > 0
    with duckdb.connect(str(tmp_path / "db.duckdb")) as db:
        assert db.execute("SELECT count(*) FROM salesforce.vote WHERE NOT is_deleted").fetchone()[0] == truth


# -- Dagster ------------------------------------------------------------------------------------------------
def test_the_discovery_job_refreshes_the_catalog_file(
    big_org: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sf_pipeline.defs.discovery import salesforce_discovery
    from sf_pipeline.defs.resources import SalesforceResource

    resources = {"salesforce": SalesforceResource(login_url=big_org.url, max_retries=3)}
    unset = salesforce_discovery.execute_in_process(resources=resources, raise_on_error=False)
    assert not unset.success and "SF_PIPELINE_DISCOVERED_CATALOG" in str(unset.all_events)
    path = tmp_path / "discovered.yaml"
    monkeypatch.setenv("SF_PIPELINE_DISCOVERED_CATALOG", str(path))
    result = salesforce_discovery.execute_in_process(resources=resources)
    found = read_discovery(path)
    assert len(found.objects) == OBJECTS
    meta = next(e.event_specific_data.metadata for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    assert meta["loaded"].value == len(found.loadable) and "Vote" in meta["skipped"].value
    again = salesforce_discovery.execute_in_process(resources=resources)
    meta = next(e.event_specific_data.metadata for e in again.all_events if e.event_type_value == "STEP_OUTPUT")
    assert meta["api_requests"].value == 1, "nothing changed: one describeGlobal answered 304"


def test_the_code_location_has_an_asset_per_discovered_object_grouped_by_kind(
    sf: SalesforceClient, tmp_path: Path
) -> None:
    """Loaded in a fresh process, as a code-location reload loads it, with no Salesforce call."""
    import json
    import os
    import subprocess
    import sys

    path = tmp_path / "discovered.yaml"
    found, _ = refresh(sf, path)
    script = (
        "import json, warnings; warnings.simplefilter('ignore')\n"
        "from sf_pipeline.definitions import defs\n"
        "print(json.dumps({s.key.path[-1]: s.group_name for s in defs.resolve_all_asset_specs()}))"
    )
    env = {**os.environ, "SF_PIPELINE_DISCOVERED_CATALOG": str(path), "SF_LOGIN_URL": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    groups = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(groups) == {o.name for o in found.loadable}
    assert groups["Account"] == "salesforce_standard" and groups["Invoice__c"] == "salesforce_custom"
    assert groups["ContractHistory"] == "salesforce_history" and groups["ContractShare"] == "salesforce_share"
    assert set(groups.values()) >= {"salesforce_feed", "salesforce_external"}
