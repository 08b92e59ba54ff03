"""An org of many objects: discovery, then the whole initial load through a real Dagster instance and daemon.

Usage: python bench/org_bench.py [--objects 300] [--scale 1.0] [--granularity monthly|weekly|daily] [--sample K]
                                 [--batch 100] [--interval 30] [--edits 100] [--idle-minutes 5] [--initial-only]
                                 [--latency production] [--warehouse snowflake] [--no-resync] [--edit-at-minute-start]
                                 [--storage postgres]

Prints discovery's time and API requests (first, unchanged, one object changed), then, per phase, wall time,
the objects' own work (extract and load, from their metadata), Dagster's overhead (the rest) per object, runs,
events and the org's API calls:
- initial load: every object discovery keeps (or a sample of K) through the initial-load sensor's batches,
  as `sf-pipeline demo` runs it; then the run process's RSS after each object of the largest batch;
- sensor catch-up: one record edited in each of --edits objects at once, the change sensor every --interval
  seconds: time from the edits to each object's load landing, twice (each object's first merge, then the
  steady state); then the sensor's API calls a tick (from each
  tick's log line), idle for --idle-minutes;
- weekly re-sync: the schedule's batched requests, launched into the queue.
With ``--warehouse snowflake`` the objects load into fakesnow's server (the tests' shims, staging in Azurite;
under ``--latency production`` with Snowflake's latency profile too: login 0.4 s, statement 0.12 s,
INFORMATION_SCHEMA 0.6 s) instead of DuckDB.
Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dagster as dg
from common import table

from sf_pipeline.catalog import DEFAULT_CATALOG, Catalog
from sf_pipeline.cli.demo import OrgRun, follow_objects, print_summary, run_org
from sf_pipeline.defs.automation import AutomationSettings
from sf_pipeline.defs.jobs import build_jobs
from sf_pipeline.defs.resources import SalesforceResource
from sf_pipeline.defs.schedules import build_schedules
from sf_pipeline.defs.sensors import INITIAL_LOAD_SENSOR, SENSOR_NAME
from sf_pipeline.defs.sweep import build_id_sweep
from sf_pipeline.salesforce import SalesforceClient, SalesforceSettings
from sf_pipeline.salesforce.discovery import refresh
from sf_testbed.emulator import PRODUCTION_LATENCY, EmulatorConfig, make_server
from sf_testbed.local_dagster import LocalDagster, instigator_ticks, tick_log


def discovery_phase(objects: int, work: Path) -> tuple[list[list[object]], list[str]]:
    """Three discoveries of one org: full, unchanged (If-Modified-Since), after one object's schema changed."""
    server = make_server(EmulatorConfig(port=0, objects=objects))
    server.start_background()
    for model in server.state.org.objects.values():
        model.metadata_changed -= 3600  # an org's metadata predates the run
    path, rows = work / "discovered.yaml", []
    try:
        with SalesforceClient(SalesforceSettings(login_url=server.url)) as client:
            for label, full in (("first (full)", True), ("again, nothing changed", False)):
                found, stats = refresh(client, path, full=full)
                rows.append([label, stats.seconds, stats.requests, stats.described, stats.unchanged])
            change = {"object": "Lead", "add": [{"name": "Bench_Score__c", "type": "double"}]}
            httpx.post(f"{server.url}/__emulator__/schema", json=change).raise_for_status()
            _, stats = refresh(client, path)
            rows.append(["after one object changed", stats.seconds, stats.requests, stats.described, stats.unchanged])
    finally:
        server.shutdown()
        server.server_close()
    print(
        f"{len(found.objects)} objects: {len(found.loadable)} load "
        f"({sum(o.route == 'rest' for o in found.loadable)} by REST, "
        f"{sum(o.cursor_field is None for o in found.loadable)} with no cursor), {len(found.skipped)} skipped"
    )
    return rows, [o.name for o in found.loadable]


def overrides(work: Path, granularity: str, include: list[str] | None) -> Path:
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    raw["defaults"]["partition_granularity"] = granularity
    if include:
        raw["include"] = include
        raw["objects"] = [o for o in raw["objects"] if o["name"] in include]
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def events_by_type(home: Path, run_ids: list[str]) -> collections.Counter:
    instance = dg.DagsterInstance.from_config(str(home))
    counts: collections.Counter = collections.Counter()
    for run_id in run_ids:
        counts.update(e.dagster_event.event_type_value for e in instance.all_logs(run_id) if e.is_dagster_event)
    return counts


def phase_row(
    label: str, instance: dg.DagsterInstance, home: Path, run_ids: list[str], outcomes, wall: float, calls: int
):
    n = len(outcomes)
    data = sum(o.seconds for o in outcomes)
    events = events_by_type(home, run_ids)
    row = [label, n, wall, data, wall - data, (wall - data) / max(n, 1), len(run_ids), sum(events.values()), calls]
    return row, events


def sensor_ticks(instance: dg.DagsterInstance) -> list:
    return instigator_ticks(instance, SENSOR_NAME)


def tick_calls(instance: dg.DagsterInstance, tick) -> int | None:
    """The API calls a change-sensor tick spent, from the line it logs."""
    m = re.search(r"this tick spent (\d+) API call", tick_log(instance, tick))
    return int(m.group(1)) if m else None


def batch_memory(result: OrgRun) -> None:
    """RSS of the run process after each object of the largest batch, in the order the objects ran."""
    by_run = collections.defaultdict(list)
    for o in result.outcomes:
        if o.meta.get("run_id"):
            by_run[o.meta["run_id"]].append(o)
    rss = [o.meta["rss_after_mb"] for o in max(by_run.values(), key=len)]
    if len(rss) >= 2:
        k = min(100, len(rss))
        print(
            f"\nbatch memory: largest batch {len(rss)} objects; run RSS after object 1: {rss[0]:.0f} MB, after object "
            f"{k}: {rss[k - 1]:.0f} MB ({(rss[k - 1] / rss[0] - 1) * 100:+.1f}%), max {max(rss):.0f} MB"
        )


def sensor_catch_up(stack: LocalDagster, instance: dg.DagsterInstance, catalog: Catalog, args) -> list[list[object]]:
    """One record edited in each of many objects at once, the change sensor on: edit -> load landed, twice (the
    first change after an initial load is each object's first merge, which records dlt's merge schema once;
    the second is the steady state), then the sensor's API calls a tick, busy and idle."""
    stack.start_sensor(SENSOR_NAME)
    wait(lambda: [t for t in sensor_ticks(instance) if t.is_completed], 300)
    org = stack.emulator.state.org
    edit = [e.name for e in catalog.objects if e.cursor_field == "SystemModstamp" and not e.filter]
    edit = [name for name in edit if org.get(name).rows > 0][: args.edits]
    t_first = time.time()
    rows = [catch_up_round(label, stack, instance, edit, args) for label in ("(first merge)", "(steady)")]
    t_idle = time.time()
    time.sleep(args.idle_minutes * 60)
    ticks = [t for t in sensor_ticks(instance) if t.timestamp > t_first and t.is_completed]
    spent = [(t, c) for t in ticks if (c := tick_calls(instance, t)) is not None]
    calls_a_tick = [c for _, c in spent]
    idle = [c for t, c in spent if t.timestamp > t_idle]
    print(
        f"change sensor over {len(catalog.objects)} objects: {len(spent)} ticks since the edits, "
        f"{statistics.mean(calls_a_tick):.1f} API calls a tick on average (max {max(calls_a_tick)}); idle ticks "
        f"({len(idle)} in {args.idle_minutes} min): {statistics.mean(idle) if idle else float('nan'):.1f} a tick"
    )
    return rows


def catch_up_round(label: str, stack: LocalDagster, instance: dg.DagsterInstance, edit: list[str], args) -> list:
    """One record edited in each object of ``edit`` at once; the time until each object's load lands."""
    org = stack.emulator.state.org
    if args.edit_at_minute_start:  # the worst case: the replication API covers the edits' minute once it is over
        time.sleep(60 - time.time() % 60 + 1)
    api0, t_edit, runs0 = stack.emulator.state.api_used, time.time(), {r.run_id for r in instance.get_runs()}
    for name in edit:
        first_id = org.get(name).raw_value(org.get(name).by_name["id"], 0)
        change = {"object": name, "update": [{"Id": first_id}]}
        httpx.post(f"{stack.emulator.url}/__emulator__/records", json=change).raise_for_status()
    print(f"\n{label}: edited one record in each of {len(edit)} objects at once; change sensor every {args.interval}s")
    outcomes = follow_objects(stack, instance, edit, t_edit, 3600, idle_s=args.interval + 120)
    latency = [o.meta["at"] - t_edit for o in outcomes if o.status == "SUCCESS"]
    wall = max(latency) if latency else float("nan")
    runs = [r.run_id for r in instance.get_runs() if r.run_id not in runs0]
    calls = stack.emulator.state.api_used - api0
    row, _ = phase_row(f"sensor catch-up {label}", instance, stack.home, runs, outcomes, wall, calls)
    print(
        f"{label} edit -> in the warehouse: median {statistics.median(latency):.0f}s, max {wall:.0f}s for "
        f"{len(latency)}/{len(edit)} objects (target: interval {args.interval}s + 180s = {args.interval + 180}s)"
    )
    return row


def weekly_resync(stack: LocalDagster, instance: dg.DagsterInstance, catalog: Catalog) -> list[object]:
    """The weekly re-sync as its schedule requests it (evaluated here, launched over GraphQL into the queue)."""
    jobs = [*build_jobs(catalog), build_id_sweep(catalog)[1]]
    schedules = build_schedules(catalog, jobs, AutomationSettings.from_env())
    schedule = next(s for s in schedules if s.name == "salesforce_weekly_resync")
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime.now(UTC),
        resources={"salesforce": SalesforceResource(login_url=stack.emulator.url)},
    ) as context:
        requests = list(schedule(context))
    api0, t0 = stack.emulator.state.api_used, time.time()
    names = [k.path[1] for r in requests for k in r.asset_selection]
    runs = [stack.launch_request(r) for r in requests]
    outcomes = follow_objects(stack, instance, names, t0, 3600)
    wall = max(o.meta["at"] for o in outcomes if o.meta) - t0
    row, _ = phase_row(
        "weekly re-sync", instance, stack.home, runs, outcomes, wall, stack.emulator.state.api_used - api0
    )
    return row


def later_phases(stack: LocalDagster, instance: dg.DagsterInstance, catalog: Catalog, result: OrgRun, args) -> None:
    """On the live stack after the initial load: batch memory, the sensor's catch-up, the weekly re-sync."""
    batch_memory(result)
    later_phases.rows = [  # type: ignore[attr-defined]
        *sensor_catch_up(stack, instance, catalog, args),
        *([] if args.no_resync else [weekly_resync(stack, instance, catalog)]),
    ]


def wait(predicate, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(1)
    raise TimeoutError("waited too long")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--granularity", default="monthly", choices=["daily", "weekly", "monthly"])
    ap.add_argument("--batch", type=int, default=100, help="SF_PIPELINE_BATCH_OBJECTS: objects a run loads")
    ap.add_argument("--interval", type=int, default=30, help="the change sensor's interval, seconds")
    ap.add_argument("--edits", type=int, default=100, help="objects edited at once for the sensor catch-up")
    ap.add_argument("--idle-minutes", type=float, default=5, help="how long the idle sensor's cost is measured")
    ap.add_argument("--initial-only", action="store_true", help="only discovery and the initial load")
    ap.add_argument("--no-resync", action="store_true", help="leave out the weekly re-sync phase")
    ap.add_argument(
        "--edit-at-minute-start",
        action="store_true",
        help="make the catch-up's edits 1 s into a minute (the worst case for latestDateCovered)",
    )
    ap.add_argument("--sample", type=int, help="load only K of the objects (every n-th in discovered order)")
    ap.add_argument("--out", default=None, help="where the run's Dagster home and DuckDB file go")
    ap.add_argument(
        "--latency", choices=["loopback", "production"], default="loopback", help="the emulator's latency profile"
    )
    ap.add_argument("--warehouse", choices=["duckdb", "snowflake"], default="duckdb", help="fakesnow for snowflake")
    ap.add_argument(
        "--storage",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Dagster's storage: dagster.yaml's SQLite, or a Postgres server of its own (a deployment's)",
    )
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.warehouse == "snowflake":
            snowflake_env(stack, Path(tempfile.mkdtemp(prefix="org-bench-snow-")), args.latency == "production")
        if args.storage == "postgres":
            from sf_pipeline_tests.postgres import postgres_server

            url = stack.enter_context(postgres_server())
            args.instance_overrides = {"storage": {"postgres": {"postgres_url": url}}}
            print("Dagster storage: a Postgres server of its own", flush=True)
        return run(args)


def snowflake_env(stack: contextlib.ExitStack, work: Path, production: bool) -> None:
    """Azurite and fakesnow's server for the run, and the variables that point the warehouse resource at them
    (the daemon's runs inherit them)."""
    from fixed_cost_bench import SNOWFLAKE_PROFILE

    from sf_pipeline_tests.latency_proxy import blob_endpoint
    from sf_pipeline_tests.servers import AZURITE_ACCOUNT, AZURITE_KEY, run_azurite, run_fakesnow

    (work / "az").mkdir()
    (work / "snow").mkdir()
    azurite = stack.enter_context(run_azurite(work / "az"))
    fakesnow = stack.enter_context(
        run_fakesnow(work / "snow", azurite.connection_string(), SNOWFLAKE_PROFILE if production else None)
    )
    azurite.service().create_container("orgbench")
    os.environ.update(
        {
            "SF_PIPELINE_DESTINATION": "snowflake",
            "SF_PIPELINE_SNOWFLAKE_ACCOUNT": "sfpipeline-bench",
            "SF_PIPELINE_SNOWFLAKE_USER": "loader",
            "SF_PIPELINE_SNOWFLAKE_PASSWORD": "fake-password",
            "SF_PIPELINE_SNOWFLAKE_DATABASE": "ORGBENCH",
            "SF_PIPELINE_SNOWFLAKE_ENDPOINT": fakesnow.endpoint,
            "SF_PIPELINE_STAGING": "az://orgbench/sf",
            "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
            "AZURE_STORAGE_BLOB_ENDPOINT": blob_endpoint(stack, azurite, priced=production),
        }
    )
    priced = " behind a 50 ms-a-request proxy" if production else ""
    print(f"Snowflake: fakesnow at {fakesnow.endpoint}, staging in Azurite{priced}", flush=True)


def run(args: argparse.Namespace) -> int:
    work = Path(args.out or tempfile.mkdtemp(prefix="org-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"## Discovery of a {args.objects}-object org")
    rows, loadable = discovery_phase(args.objects, work)
    print(table(["discovery", "seconds", "API requests", "describes read", "unchanged (304)"], rows))
    include = loadable[:: max(1, len(loadable) // args.sample)][: args.sample] if args.sample else None
    os.environ["SF_PIPELINE_CATALOG"] = str(overrides(work, args.granularity, include))
    label = f"{len(include)} of {len(loadable)} objects" if include else f"all {len(loadable)} objects"
    print(
        f"\n## Initial load through the daemon: {label}, {args.granularity} partitions, scale {args.scale}, "
        f"batches of {args.batch}"
    )
    os.environ["SF_PIPELINE_SENSOR_INTERVAL_SECONDS"] = str(args.interval)
    os.environ["SF_PIPELINE_BATCH_OBJECTS"] = str(args.batch)
    started = time.monotonic()
    then = None if args.initial_only else (lambda *a: later_phases(*a, args))
    latency = PRODUCTION_LATENCY if args.latency == "production" else None
    storage = getattr(args, "instance_overrides", None)
    result = run_org(work / "run", args.scale, args.objects, then=then, latency=latency, instance_overrides=storage)
    total = time.monotonic() - started
    print_summary(result, work / "run")
    home = work / "run" / "dagster_home"
    instance = dg.DagsterInstance.from_config(str(home))
    initial = [r.run_id for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == INITIAL_LOAD_SENSOR]
    row, events = phase_row(
        "initial load", instance, home, initial, result.outcomes, result.wall_seconds, result.api_calls
    )
    header = [
        "phase",
        "objects",
        "wall s",
        "object work s",
        "overhead s",
        "overhead s/object",
        "runs",
        "events",
        "API calls",
    ]
    print("\n" + table(header, [row, *getattr(later_phases, "rows", [])]))
    print("\ninitial load events by type: " + ", ".join(f"{k} {v}" for k, v in events.most_common(8)))
    print(f"whole command {total:.1f}s (emulator start, discovery, webserver, phases, row checks)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
