"""An org of many objects: discovery, then the whole initial load through a real Dagster instance and daemon.

Usage: python bench/org_bench.py [--objects 300] [--scale 1.0] [--granularity daily|weekly|monthly] [--sample K]

Prints discovery's time and API requests (first, unchanged, one object changed), then the initial load of
every object discovery keeps (or a sample of K, every n-th in the discovered order), as `sf-pipeline demo`
runs it: wall time split into the objects' own work (extract and load, from each run's metadata) and
Dagster's overhead (the rest), runs, events by type, and the org's API calls. Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg
from common import table
from dagster._core.instance.ref import InstanceRef

from sf_pipeline.catalog import DEFAULT_CATALOG
from sf_pipeline.demo import print_summary, run_org
from sf_pipeline.discovery import refresh
from sf_pipeline.emulator import EmulatorConfig, make_server
from sf_pipeline.salesforce import SalesforceClient, SalesforceSettings


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
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    counts: collections.Counter = collections.Counter()
    for run_id in run_ids:
        counts.update(e.dagster_event.event_type_value for e in instance.all_logs(run_id) if e.is_dagster_event)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=300)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--granularity", default="daily", choices=["daily", "weekly", "monthly"])
    ap.add_argument("--sample", type=int, help="load only K of the objects (every n-th in discovered order)")
    ap.add_argument("--out", default=None, help="where the run's Dagster home and DuckDB file go")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="org-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"## Discovery of a {args.objects}-object org")
    rows, loadable = discovery_phase(args.objects, work)
    print(table(["discovery", "seconds", "API requests", "describes read", "unchanged (304)"], rows))
    include = loadable[:: max(1, len(loadable) // args.sample)][: args.sample] if args.sample else None
    os.environ["SF_PIPELINE_CATALOG"] = str(overrides(work, args.granularity, include))
    label = f"{len(include)} of {len(loadable)} objects" if include else f"all {len(loadable)} objects"
    print(f"\n## Initial load through the daemon: {label}, {args.granularity} partitions, scale {args.scale}")
    started = time.monotonic()
    result = run_org(work / "run", args.scale, args.objects)
    total = time.monotonic() - started
    print_summary(result, work / "run")
    n = len(result.outcomes)
    overhead = result.wall_seconds - result.data_seconds
    events = events_by_type(work / "run" / "dagster_home", result.run_ids)
    print(
        "\n"
        + table(
            [
                "phase",
                "objects",
                "wall s",
                "object work s",
                "overhead s",
                "overhead s/object",
                "queueing s",
                "runs",
                "events",
                "API calls",
                "all ok",
            ],
            [
                [
                    "initial load",
                    n,
                    result.wall_seconds,
                    result.data_seconds,
                    overhead,
                    overhead / max(n, 1),
                    result.queue_seconds,
                    len(result.run_ids),
                    sum(events.values()),
                    result.api_calls,
                    result.ok,
                ]
            ],
        )  # fmt: skip
    )
    print("\nevents by type: " + ", ".join(f"{k} {v}" for k, v in events.most_common(8)))
    print(f"whole command {total:.1f}s (emulator start, discovery, webserver, queueing, runs, row checks)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
