"""``sf-pipeline demo``: the emulator's org discovered, then every object it loads materialized through a real
Dagster instance (queue, tag limit and priorities from dagster.yaml) into a DuckDB file, with progress as it
goes, each object's rows checked against Salesforce's own count, and a summary."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from .catalog import DISCOVERED_ENV, Catalog, load_catalog
from .defs.assets import asset_key, partitions_def
from .defs.checks import check_specs
from .defs.jobs import PRIORITY_TAG, job_name, run_tags
from .discovery import DiscoveryStats, refresh
from .emulator import EmulatorConfig
from .load import table_name
from .local_dagster import TERMINAL, LocalDagster
from .progress import Ended, RunProgress
from .salesforce import SalesforceClient, SalesforceError, SalesforceSettings
from .salesforce.soql import count_query
from .warehouse import Warehouse


@dataclass
class Outcome:
    name: str
    status: str
    rows: int | None = None  # rows in the warehouse table after the run
    salesforce_rows: int | None = None  # Salesforce's COUNT() of live records
    seconds: float = 0.0  # the object's own load work (extract and load, as the run's metadata says)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCESS" and self.rows == self.salesforce_rows


@dataclass
class OrgRun:
    """What a whole-org load did: each object's outcome, what was skipped and why, and where time went."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    discovery: DiscoveryStats | None = None
    queue_seconds: float = 0.0  # launching every run over GraphQL, before the daemon starts
    wall_seconds: float = 0.0  # from the daemon's start to the last run's end
    api_calls: int = 0  # API requests the org counted while the runs were queued and ran
    run_ids: list[str] = field(default_factory=list)

    @property
    def data_seconds(self) -> float:
        return sum(o.seconds for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def _queue(stack: LocalDagster, instance: dg.DagsterInstance, catalog: Catalog) -> dict[str, str]:
    """One run per object, heaviest first, as the schedules and sensor launch them; run id -> object."""
    keys = partitions_def(catalog).get_partition_keys()
    runs = {}
    for entry in sorted(catalog.objects, key=lambda e: -int(run_tags(instance, e)[PRIORITY_TAG])):
        tags = run_tags(instance, entry, keys[0], keys[-1]) if entry.cursor_field else run_tags(instance, entry)
        path = asset_key(entry.name).path
        # the load and its cheap checks: the Id sweep (a full Id extract) belongs to its own job
        checks = [(path, spec.name) for spec in check_specs(asset_key(entry.name))]
        runs[stack.launch(job_name(entry), assets=[path], checks=checks, tags=tags)] = entry.name
    return runs


def _metadata(instance: dg.DagsterInstance, name: str) -> dict:
    event = instance.get_latest_materialization_event(asset_key(name))
    materialization = event.asset_materialization if event else None
    return {k: v.value for k, v in materialization.metadata.items()} if materialization else {}


def _follow(stack: LocalDagster, instance: dg.DagsterInstance, runs: dict[str, str], timeout_s: float) -> list:
    """Poll the runs (one storage query a poll) and report each start and end until all have ended."""
    outcomes: dict[str, Outcome] = {}
    seen_started: set[str] = set()
    deadline = time.monotonic() + timeout_s
    with RunProgress.live(len(runs)) as progress:
        while len(outcomes) < len(runs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(runs) - len(outcomes)} object run(s) still going after {timeout_s:.0f}s")
            if stack.procs["daemon"].poll() is not None:
                raise RuntimeError(f"dagster-daemon exited; see {stack.home / 'daemon.log'}")
            # ends before starts: the run that ended made room for the one that started in the same poll
            polled = sorted(
                instance.get_runs(filters=dg.RunsFilter(run_ids=list(runs))),
                key=lambda r: r.status.value not in TERMINAL,
            )
            for run in polled:
                name, status = runs[run.run_id], run.status.value
                if status in TERMINAL and run.run_id not in outcomes:
                    meta = _metadata(instance, name) if status == "SUCCESS" else {}
                    outcomes[run.run_id] = Outcome(name, status, seconds=float(meta.get("seconds", 0.0)))
                    progress.ended(Ended(name, status, meta.get("rows", "-"), outcomes[run.run_id].seconds))
                elif status in ("STARTING", "STARTED") and run.run_id not in seen_started:
                    seen_started.add(run.run_id)
                    progress.started(name)
            time.sleep(0.5)
    return list(outcomes.values())


def _check_rows(outcomes: list[Outcome], catalog: Catalog, settings: SalesforceSettings, duckdb_path: Path) -> None:
    """Each object's table rows against Salesforce's COUNT() of its live records (one REST call each)."""
    warehouse = Warehouse(duckdb_path=duckdb_path)
    with SalesforceClient(settings) as client:
        for outcome in outcomes:
            entry = catalog.get(outcome.name)
            try:
                answer = client.query(count_query(entry.name, where=entry.filter), sobject=entry.name)
                outcome.salesforce_rows = int(answer["totalSize"])
            except SalesforceError as exc:
                outcome.status = f"COUNT failed: {exc}"
            if outcome.status == "SUCCESS":
                outcome.rows = warehouse.count_rows(table_name(entry.name))


def run_org(out: Path, scale: float = 1.0, objects: int = 8, timeout_s: float = 4 * 3600) -> OrgRun:
    """Discover the emulator's org, then load every object it loads through the daemon and queue."""
    out = Path(out).resolve()
    home, duckdb_path, discovered = out / "dagster_home", out / "sf_pipeline.duckdb", out / "discovered_catalog.yaml"
    shutil.rmtree(home, ignore_errors=True)
    duckdb_path.unlink(missing_ok=True)
    result = OrgRun()
    stack = LocalDagster(home, duckdb_path, EmulatorConfig(port=0, scale=scale, objects=objects))
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
        stack.start()
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        api_before, started = stack.emulator.state.api_used, time.monotonic()
        runs = _queue(stack, instance, catalog)
        result.run_ids = list(runs)
        result.queue_seconds = time.monotonic() - started
        print(
            f"Queued {len(runs)} object runs in {result.queue_seconds:.1f}s (one at a time, heaviest first); "
            f"web UI at {stack.url}",
            flush=True,
        )
        started = time.monotonic()
        stack.start_daemon()
        result.outcomes = _follow(stack, instance, runs, timeout_s)
        result.wall_seconds = time.monotonic() - started
        result.api_calls = stack.emulator.state.api_used - api_before
        _check_rows(result.outcomes, catalog, settings, duckdb_path)
    finally:
        stack.stop()
    return result


def print_summary(result: OrgRun, out: Path) -> None:
    print(f"\n{'object':<34}{'status':<9}{'rows':>10}{'in Salesforce':>15}{'seconds':>9}")
    for o in result.outcomes:
        flag = "" if o.ok else "   <- not loaded as Salesforce counts"
        print(f"{o.name:<34}{o.status:<9}{o.rows!s:>10}{o.salesforce_rows!s:>15}{o.seconds:>9.1f}{flag}")
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
        f"{overhead:.1f}s ({overhead / n:.1f}s an object); queueing the runs took {result.queue_seconds:.1f}s more."
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
