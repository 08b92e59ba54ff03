"""``sf-pipeline demo``: every catalog object materialized through a real Dagster instance (queue, tag
limit and priorities from dagster.yaml) from the emulator's org into a DuckDB file, then a summary."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from .catalog import load_catalog
from .defs.assets import asset_key, partitions_def
from .defs.jobs import PRIORITY_TAG, job_name, run_tags
from .emulator import EmulatorConfig
from .local_dagster import LocalDagster


def run_demo(out: Path, scale: float = 1.0) -> int:
    out = out.resolve()
    home = out / "dagster_home"
    duckdb_path = out / "sf_pipeline.duckdb"
    shutil.rmtree(home, ignore_errors=True)
    duckdb_path.unlink(missing_ok=True)
    catalog = load_catalog()
    keys = partitions_def(catalog).get_partition_keys()
    print(f"Starting the emulator org, dagster-webserver and dagster-daemon (DAGSTER_HOME={home}) ...", flush=True)
    with LocalDagster(home, duckdb_path, EmulatorConfig(port=0, scale=scale)) as stack:
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        runs = {}
        for entry in sorted(catalog.objects, key=lambda e: -int(run_tags(instance, e)[PRIORITY_TAG])):
            tags = run_tags(instance, entry, keys[0], keys[-1]) if entry.cursor_field else run_tags(instance, entry)
            runs[entry.name] = stack.submit(job_name(entry), asset_key(entry.name).path, tags)
        print(f"Queued {len(runs)} object runs (one at a time, heaviest first); web UI at {stack.url}", flush=True)
        stack.start_daemon()
        statuses = stack.wait(list(runs.values()))
        rows = []
        for name, run_id in runs.items():
            event = instance.get_latest_materialization_event(asset_key(name))
            meta = event.asset_materialization.metadata if event and event.asset_materialization else {}

            def value(key: str, default: object = "-", meta: dict = meta) -> object:
                return meta[key].value if key in meta else default

            seconds = float(value("seconds", 0))
            rows.append((name, statuses[run_id], value("rows"), value("chunks"), seconds, value("peak_rss_mb")))
    print(f"\n{'object':<14}{'status':<9}{'rows':>10}{'chunks':>8}{'seconds':>9}{'peak RSS MB':>13}")
    for name, status, n, chunks, seconds, peak in rows:
        print(f"{name:<14}{status:<9}{n!s:>10}{chunks!s:>8}{seconds:>9.1f}{peak!s:>13}")
    print(f"\nDuckDB file: {duckdb_path}  (tables in schema 'salesforce')")
    print(f"Dagster home: {home}  (browse it with: DAGSTER_HOME={home} .venv/bin/dagster dev)")
    return 0 if all(s == "SUCCESS" for s in statuses.values()) else 1
