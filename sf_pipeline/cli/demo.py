"""``sf-pipeline demo``: the emulator's org discovered, then every object it keeps loaded through a real Dagster
instance (the initial-load sensor's batched runs, queue, tag limit and priorities from dagster.yaml) into a
DuckDB file, with progress as it goes, each object's rows checked against Salesforce's own count, a summary."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from sf_testbed.emulator import EmulatorConfig
from sf_testbed.local_dagster import LocalDagster

from ..catalog import DISCOVERED_ENV, Catalog, load_catalog
from ..datapath.load import table_name
from ..defs.assets import asset_key
from ..defs.automation import PENDING_STATUSES, AutomationSettings
from ..defs.checks import salesforce_count
from ..defs.resources import destination_from_env, resource_from_env
from ..defs.sensors import INITIAL_LOAD_SENSOR
from ..salesforce import SalesforceClient, SalesforceError, SalesforceSettings
from ..salesforce.discovery import DiscoveryStats, refresh
from ..warehouse import Warehouse
from .progress import Ended, RunProgress


@dataclass
class Outcome:
    name: str
    status: str
    rows: int | None = None  # rows in the warehouse table after the run
    salesforce_rows: int | None = None  # Salesforce's COUNT() of live records
    seconds: float = 0.0  # the object's own load work (extract and load, as the run's metadata says)
    meta: dict = field(default_factory=dict)  # its last materialization's metadata (run_id, at, rss_after_mb...)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS" and self.rows == self.salesforce_rows


@dataclass
class OrgRun:
    """What a whole-org load did: each object's outcome, what was skipped and why, and where time went."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    discovery: DiscoveryStats | None = None
    wall_seconds: float = 0.0  # from the initial-load sensor's start to the last object loaded
    api_calls: int = 0  # API requests the org counted while the runs were queued and ran
    run_ids: list[str] = field(default_factory=list)

    @property
    def data_seconds(self) -> float:
        return sum(o.seconds for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def _materialized_since(instance: dg.DagsterInstance, keys: dict[dg.AssetKey, str], since: float) -> dict:
    """Objects whose latest materialization is newer than ``since`` -> that materialization's metadata."""
    out = {}
    for record in instance.get_asset_records(list(keys)):
        event = record.asset_entry.last_materialization
        materialization = event.asset_materialization if event is not None else None
        # a range run writes its partitions' events one by one: the load has landed with the last, full one
        if materialization is not None and event.timestamp > since and "columns" in materialization.metadata:
            meta = {k: v.value for k, v in materialization.metadata.items()}
            out[keys[record.asset_entry.asset_key]] = {**meta, "run_id": event.run_id, "at": event.timestamp}
    return out


def follow_objects(
    stack: LocalDagster,
    instance: dg.DagsterInstance,
    names: list[str],
    since: float,
    timeout_s: float,
    idle_s: float = 30,
) -> list[Outcome]:
    """Poll until every object is loaded after ``since``, or no run was queued or running for ``idle_s`` (the
    rest failed, retries done); report each object as its step starts and as its load lands."""
    keys = {asset_key(n): n for n in names}
    ops = {asset_key(n).to_python_identifier(): n for n in names}
    outcomes: dict[str, Outcome] = {}
    started: set[str] = set()
    idle_since: float | None = None
    deadline = time.monotonic() + timeout_s
    with RunProgress.live(len(names)) as progress:
        while len(outcomes) < len(names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(names) - len(outcomes)} object(s) not loaded after {timeout_s:.0f}s")
            if stack.procs["daemon"].poll() is not None:
                raise RuntimeError(f"dagster-daemon exited; see {stack.home / 'daemon.log'}")
            for name, meta in _materialized_since(instance, keys, since).items():
                if name not in outcomes:
                    outcomes[name] = Outcome(name, "SUCCESS", seconds=float(meta.get("seconds", 0.0)), meta=meta)
                    # the table's rows after the load: the number the summary checks against Salesforce's count
                    rows = meta.get("dagster/row_count", "-")
                    progress.ended(Ended(name, "SUCCESS", rows, outcomes[name].seconds))
            pending = instance.get_runs(filters=dg.RunsFilter(statuses=PENDING_STATUSES))
            for run in pending:
                if run.status == dg.DagsterRunStatus.STARTED:
                    for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
                        name = ops.get(event.step_key or "")
                        if name and name not in started and name not in outcomes:
                            started.add(name)
                            progress.started(name)
            # nothing queued or running for a while (a failed run's retry is created within seconds): done
            idle_since = (idle_since or time.monotonic()) if not pending else None
            if idle_since and time.monotonic() - idle_since > idle_s:
                break
            time.sleep(1.0)
    for name in names:
        if name not in outcomes:
            outcomes[name] = Outcome(name, "FAILURE")
            print(f"{name}: not loaded (its run failed; see the Runs page)", flush=True)
    return sorted(outcomes.values(), key=lambda o: o.meta.get("at", float("inf")))


def _check_rows(outcomes: list[Outcome], catalog: Catalog, settings: SalesforceSettings, duckdb_path: Path) -> None:
    """Each object's table rows against Salesforce's COUNT() of its live records (one REST call each), the
    whole-object check's count."""
    warehouse = Warehouse(duckdb_path=duckdb_path)
    if destination_from_env() != "duckdb":  # the run's warehouse, as its resources read it
        with dg.build_resources({"warehouse": resource_from_env("warehouse")}) as resources:
            warehouse = resources.warehouse.warehouse()
    with SalesforceClient(settings) as client:
        for outcome in outcomes:
            entry = catalog.get(outcome.name)
            try:
                deletable = "IsDeleted" in outcome.meta.get("columns", {})  # the fields its load read
                outcome.salesforce_rows = salesforce_count(client, entry, deletable=deletable)
            except SalesforceError as exc:
                outcome.status = f"COUNT failed: {exc}"
            if outcome.status == "SUCCESS":
                outcome.rows = warehouse.count_rows(table_name(entry.name))


def run_org(
    out: Path,
    scale: float = 1.0,
    objects: int = 8,
    timeout_s: float = 4 * 3600,
    then: Callable[[LocalDagster, dg.DagsterInstance, Catalog, OrgRun], None] | None = None,
    latency: dict[str, float] | None = None,
    instance_overrides: dict | None = None,
) -> OrgRun:
    """Discover the emulator's org, then load every object it keeps through the daemon and queue: the
    initial-load sensor requests them in batches. ``then`` runs on the live stack afterwards (benchmarks);
    ``latency``: the emulator's latency profile (``PRODUCTION_LATENCY``), none by default;
    ``instance_overrides``: merged into the instance's dagster.yaml (Postgres storage, for one)."""
    out = Path(out).resolve()
    home, duckdb_path, discovered = out / "dagster_home", out / "sf_pipeline.duckdb", out / "discovered_catalog.yaml"
    shutil.rmtree(home, ignore_errors=True)
    duckdb_path.unlink(missing_ok=True)
    result = OrgRun()
    emulator = EmulatorConfig(port=0, scale=scale, objects=objects, **(latency or {}))
    stack = LocalDagster(home, duckdb_path, emulator, instance_overrides=instance_overrides or {})
    print(f"Starting the emulator org ({objects} objects) ...", flush=True)
    stack.start_org()
    try:
        settings = SalesforceSettings(login_url=stack.emulator.url)
        with SalesforceClient(settings) as client:
            discovery, result.discovery = refresh(client, discovered, full=True)
        catalog = load_catalog(discovered=discovered)
        result.skipped = list(catalog.skipped)
        print(
            f"Discovered {len(discovery.objects)} objects in {result.discovery.seconds:.1f}s "
            f"({result.discovery.requests} API requests): {len(catalog.objects)} load, {len(catalog.skipped)} skipped "
            f"-> {discovered}",
            flush=True,
        )
        print(f"Starting dagster-webserver and dagster-daemon (DAGSTER_HOME={home}) ...", flush=True)
        stack.extra_env[DISCOVERED_ENV] = str(discovered)
        stack.with_daemon = True
        stack.start()
        instance = dg.DagsterInstance.from_config(str(home))
        api_before, started = stack.emulator.state.api_used, time.monotonic()
        stack.start_sensor(INITIAL_LOAD_SENSOR)
        print(
            f"Turned on {INITIAL_LOAD_SENSOR}: {len(catalog.objects)} objects in batches of up to "
            f"{AutomationSettings.from_env().batch_objects}, heaviest first, one object at a time; "
            f"web UI at {stack.url}",
            flush=True,
        )
        result.outcomes = follow_objects(stack, instance, list(catalog.names), time.time(), timeout_s)
        result.wall_seconds = time.monotonic() - started
        result.api_calls = stack.emulator.state.api_used - api_before
        result.run_ids = [r.run_id for r in instance.get_runs()]
        _check_rows(result.outcomes, catalog, settings, duckdb_path)
        if then is not None:
            then(stack, instance, catalog, result)
    finally:
        stack.stop()
    return result


def print_summary(result: OrgRun, out: Path) -> None:
    print(f"\n{'object':<34}{'status':<9}{'table rows':>11}{'in Salesforce':>15}{'seconds':>9}")
    for o in result.outcomes:
        flag = "" if o.ok else "   <- not loaded as Salesforce counts"
        print(f"{o.name:<34}{o.status:<9}{o.rows!s:>11}{o.salesforce_rows!s:>15}{o.seconds:>9.1f}{flag}")
    if result.skipped:
        print(f"\nSkipped ({len(result.skipped)}):")
        for name, reason in result.skipped:
            print(f"  {name}: {reason}")
    loaded = sum(o.ok for o in result.outcomes)
    n = max(len(result.outcomes), 1)
    overhead = result.wall_seconds - result.data_seconds
    print(
        f"\n{loaded}/{len(result.outcomes)} objects loaded with Salesforce's row count, {len(result.skipped)} skipped. "
        f"Wall {result.wall_seconds:.1f}s: object work {result.data_seconds:.1f}s, Dagster overhead "
        f"{overhead:.1f}s ({overhead / n:.1f}s an object), {len(result.run_ids)} run(s)."
    )
    print(f"DuckDB file: {out / 'sf_pipeline.duckdb'}  (tables in schema 'salesforce')")
    print(
        f"Dagster home: {out / 'dagster_home'}  (browse it with: DAGSTER_HOME={out / 'dagster_home'} "
        f"{DISCOVERED_ENV}={out / 'discovered_catalog.yaml'} .venv/bin/dagster dev)"
    )


def run_demo(out: Path, scale: float = 1.0, objects: int = 8) -> int:
    result = run_org(out, scale, objects)
    print_summary(result, Path(out).resolve())
    return 0 if result.ok else 1
