"""A full-history run of one small object, as a new user launches it from the command line.

Usage: python bench/history_bench.py [--object User] [--scale 0.02] [--granularity monthly daily]

Runs `dagster asset materialize -m sf_pipeline.definitions --select salesforce/<object> --partition-range
<first>...<last>` against the emulator (process start included, a fresh DAGSTER_HOME with the project's
dagster.yaml each time), once per partition granularity, and prints the wall time, the object's own work
(its materialization's `seconds`) and the run's events by type. Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg
from common import materialize_range_command, table

from sf_pipeline.catalog import DEFAULT_CATALOG, load_catalog
from sf_pipeline.defs.assets import partitions_def
from sf_testbed.emulator import EmulatorConfig, make_server

ROOT = Path(__file__).resolve().parent.parent


def run_once(work: Path, url: str, name: str, granularity: str) -> list[object]:
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    raw["defaults"]["partition_granularity"] = granularity
    catalog_path = work / f"catalog-{granularity}.yaml"
    catalog_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    keys = partitions_def(load_catalog(catalog_path)).get_partition_keys()
    home = work / f"home-{granularity}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SF_LOGIN_URL": url,
        "SF_PIPELINE_CATALOG": str(catalog_path),
        "SF_PIPELINE_DUCKDB": str(work / f"{granularity}.duckdb"),
        "SF_PIPELINE_WORK_DIR": str(work / "work"),
    }
    command = materialize_range_command(name, keys[0], keys[-1])
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    instance = dg.DagsterInstance.from_config(str(home))
    (run,) = instance.get_runs()
    events = collections.Counter(
        e.dagster_event.event_type_value for e in instance.all_logs(run.run_id) if e.is_dagster_event
    )
    last = instance.get_latest_materialization_event(dg.AssetKey(["salesforce", name]))
    work_s = last.asset_materialization.metadata["seconds"].value if last else float("nan")
    if done.returncode:
        print(done.stderr[-2000:])
    return [
        granularity,
        len(keys),
        run.status.value,
        wall,
        work_s,
        events["ASSET_MATERIALIZATION_PLANNED"],
        events["ASSET_MATERIALIZATION"],
        sum(events.values()),
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--object", default="User")
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--granularity", nargs="+", default=["monthly", "daily"])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="history-bench-"))
    server = make_server(EmulatorConfig(port=0, scale=args.scale))
    server.start_background()
    try:
        rows = [run_once(work, server.url, args.object, g) for g in args.granularity]
    finally:
        server.shutdown()
        server.server_close()
    header = ["partitions", "keys", "status", "wall s", "object work s", "planned events", "materializations", "events"]
    print(f"`dagster asset materialize --select salesforce/{args.object} --partition-range <first>...<last>`")
    print(table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
