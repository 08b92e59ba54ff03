"""The fault matrix: every fault the emulator injects at every stage of the protocol, and failures at the
pipeline's own stages (split, each chunk's load, the staged files), each run end to end through the
object's Dagster asset. After the run, or after its retry when the fault is one no retry inside a run may
hide, the destination holds exactly the org's rows for the window: none lost, none twice.

A run that fails must fail with an error that names the object; the retry is a second materialization
of the same partition range, as Dagster's run retry would launch it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import Catalog, load_catalog
from sf_pipeline.common import faultpoints
from sf_pipeline.datapath.split import SplitOptions
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline.salesforce import SalesforceClient
from sf_pipeline.warehouse import Warehouse
from sf_testbed.emulator.soql import epoch_ms

from ..helpers import Emulator

# the first partition is open at its start, so two monthly partitions hold the org's whole history: a
# whole-history run (a single-run backfill of every partition) records two materializations, not one a month
FIRST, LAST = "2026-09-01", "2026-10-01"
TRANSIENT = ("expired_session", "rate_limit", "server_error")


@dataclass(frozen=True)
class Case:
    stage: str
    kind: str
    fails: bool  # no retry inside the run may hide it: the run fails clearly, its retry loads
    spec: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        extra = "".join(f"-{k}{v}" for k, v in self.spec.items() if k in ("skip", "status"))
        return f"{self.stage}-{self.kind}{extra}"


def salesforce_cases() -> list[Case]:
    cases = [
        Case("token", "rate_limit", False, {"retry_after": 0.1}),
        Case("token", "server_error", False),
        Case("token", "html_login", True),
        Case("token", "request_limit", True),
    ]
    for stage in ("describe", "create", "poll", "result_pages"):
        cases += [Case(stage, kind, False, {"retry_after": 0.1} if kind == "rate_limit" else {}) for kind in TRANSIENT]
        cases += [Case(stage, "html_login", True)]
    cases += [
        Case("describe", "server_error", False, {"status": 500}),
        Case("create", "request_limit", True),
        Case("create", "job_failed", True, {"message": "INVALID_FIELD: No such column"}),
        Case("poll", "slow_job", False, {"polls": 3}),
    ]
    for page in range(3):  # the first, second and third result page
        cases += [Case("results", kind, False, {"skip": page}) for kind in (*TRANSIENT, "cut_body")]
        cases += [Case("results", "html_login", True, {"skip": page})]
    cases += [
        Case("query", "rate_limit", False, {"retry_after": 0.1}),
        Case("query", "server_error", False),
        Case("query", "html_login", True),
    ]
    return cases


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(
        f"defaults: {{partition_start: '{FIRST}', partition_granularity: monthly}}\nobjects: [Account, Case]\n"
    )
    return load_catalog(path)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One Dagster instance for the module's runs, as one deployment runs them all (a fresh one costs ~0.6 s)."""
    with dg.instance_for_test() as instance:
        yield instance


def materialize(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    org: Emulator,
    db: Path,
    work: Path,
    sobject: str = "Case",
    page_records: int = 300,
) -> dg.ExecuteInProcessResult:
    asset = next(a for a in build_assets(catalog) if asset_key(sobject) in a.keys)
    return dg.materialize(
        [asset],
        instance=instance,
        raise_on_error=False,
        tags={ASSET_PARTITION_RANGE_START_TAG: FIRST, ASSET_PARTITION_RANGE_END_TAG: LAST},
        resources={
            # the Bulk stages' faults: the route is never chosen by size here
            "salesforce": SalesforceResource(
                login_url=org.url, max_records_per_page=page_records, max_retries=4, rest_max_records=0
            ),
            "warehouse": WarehouseResource(duckdb_path=str(db)),
            "pipeline_settings": PipelineSettings(work_dir=str(work), chunk_min_rows=100, chunk_target_mb=1),
        },
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "a failed run has a step failure"
    return failures[0].step_failure_data.error.to_string()


def assert_exactly_the_truth(catalog: Catalog, org: Emulator, db: Path, sobject: str) -> None:
    window = partitions_def(catalog).time_window_for_partition_key(LAST)
    # the first partition is open at its start: every record before the last partition's end
    truth = sorted(org.truth_ids(sobject, None, epoch_ms(window.end.isoformat())))
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = sorted(r[0] for r in con.execute(f"SELECT id FROM salesforce.{sobject.lower()}").fetchall())
    assert loaded == truth, f"{len(loaded)} rows loaded, {len(truth)} expected"


@pytest.mark.e2e  # the whole pipeline through Dagster with the org's fault injected
@pytest.mark.parametrize("case", salesforce_cases(), ids=lambda c: c.id)
def test_salesforce_fault(
    catalog: Catalog, instance: dg.DagsterInstance, org: Emulator, tmp_path: Path, case: Case
) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    org.fault(
        kind=case.kind,
        stage=case.stage,
        object=None if case.stage == "token" else "Case",
        times=-1 if case.fails else 1,
        **case.spec,
    )
    result = materialize(catalog, instance, org, db, work)
    if case.fails:
        assert not result.success, "the fault must fail the run, not load nothing and succeed"
        assert "Case" in failure_message(result)
        org.clear_faults()
        result = materialize(catalog, instance, org, db, work)  # the run's retry
    else:
        assert org.faults()[0]["hits"] >= 1, "the fault was really hit"
    assert result.success
    assert_exactly_the_truth(catalog, org, db, "Case")


@pytest.mark.e2e  # the whole pipeline through Dagster, a run failed and run again
@pytest.mark.parametrize(
    "point",
    [
        "chunk_written:Account@2",
        "split_done:Account",
        "batch_read:Account@1",
        "batch_read:Account@3",
        "chunk_loaded:Account@2",
    ],
)
def test_pipeline_stage_failure_then_retry(
    catalog: Catalog,
    instance: dg.DagsterInstance,
    org: Emulator,
    tmp_path: Path,
    point: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure in the split, in the first or a later chunk's load, or right after a chunk was loaded."""
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    faultpoints.reset()
    monkeypatch.setenv(faultpoints.ENV, f"{point}=raise")
    # one big page, so that the splitter cuts it, when the split is what fails
    pages = 50_000 if point.startswith("chunk_written") else 300
    failed = materialize(catalog, instance, org, db, work, "Account", pages)
    assert not failed.success and "[Account] injected fault" in failure_message(failed)
    monkeypatch.delenv(faultpoints.ENV)
    retried = materialize(catalog, instance, org, db, work, "Account", pages)
    assert retried.success
    chunks = {m.metadata["chunks"].value for m in retried.asset_materializations_for_node("salesforce__Account")}
    assert len(chunks) == 1 and chunks.pop() >= 3, "one load of the object, in several chunks"
    assert_exactly_the_truth(catalog, org, db, "Account")
    assert [p.name for p in work.iterdir()] == ["Account.lock"]


@pytest.mark.e2e  # the whole pipeline through Dagster, a run failed and run again
def test_a_failed_full_refresh_leaves_the_table_as_it_was(
    org: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full refresh loads into a shadow table and swaps it in only when every chunk is loaded."""
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    warehouse = Warehouse(duckdb_path=db)
    entry = load_catalog().get("Account")
    split = SplitOptions(min_rows=1_000, target_bytes=400_000)
    with SalesforceClient(org.settings()) as client:
        sync_object(client, entry, warehouse, full_refresh=True, work_dir=work, split_options=split)
        with duckdb.connect(str(db)) as con:  # a row only the old table has: it must survive the failure
            con.execute("INSERT INTO salesforce.account (id) VALUES ('only-in-the-old-table')")
            before = con.execute("SELECT id FROM salesforce.account ORDER BY id").fetchall()
        faultpoints.reset()
        monkeypatch.setenv(faultpoints.ENV, "batch_read:Account@3=raise")
        with pytest.raises(Exception, match=r"\[Account\].*injected fault"):
            sync_object(client, entry, warehouse, full_refresh=True, work_dir=work, split_options=split)
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("SELECT id FROM salesforce.account ORDER BY id").fetchall() == before
        monkeypatch.delenv(faultpoints.ENV)
        sync_object(client, entry, warehouse, full_refresh=True, work_dir=work, split_options=split)
    with duckdb.connect(str(db), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute("SELECT id FROM salesforce.account").fetchall())
        shadows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%sf_refresh'")
        assert shadows.fetchone()[0] == 0
    assert ids == sorted(org.truth_ids("Account"))
