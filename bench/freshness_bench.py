"""Freshness through the change sensor: seconds from a change in the org to its row in DuckDB.

Usage: python bench/freshness_bench.py [--interval 30] [--rounds 3] [--rows 100000]

A real webserver and daemon with this repo's dagster.yaml, the sensor on with
SF_PIPELINE_SENSOR_INTERVAL_SECONDS=--interval. Lead is loaded first (setup); then each round inserts,
edits and soft-deletes a Lead *now* through the emulator's admin endpoint, waits for the run the sensor
requests, and checks DuckDB. Prints per round: seconds until the tick that saw the change, the run's own
seconds, and change-to-warehouse seconds; the promise is one interval plus one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, table  # noqa: E402

from sf_pipeline.catalog import load_catalog  # noqa: E402
from sf_pipeline.datapath.sync import sync_object  # noqa: E402
from sf_pipeline.defs.assets import asset_key  # noqa: E402
from sf_pipeline.defs.sensors import SENSOR_NAME  # noqa: E402
from sf_pipeline.salesforce import RetryPolicy, SalesforceClient, SalesforceSettings  # noqa: E402
from sf_pipeline.warehouse import Warehouse  # noqa: E402
from sf_testbed.emulator import EmulatorConfig  # noqa: E402
from sf_testbed.local_dagster import LocalDagster  # noqa: E402


def lead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if asset_key("Lead") in (r.asset_selection or ())]


def one_round(stack: LocalDagster, instance: dg.DagsterInstance, k: int, interval: int) -> list:
    """A Lead inserted, one edited and one deleted in the org now; the sensor's run awaited: when it was
    requested, how long it ran, when the change was in DuckDB, and whether exactly."""
    assert stack.emulator is not None
    model = stack.emulator.state.org.get("Lead")
    assert model is not None
    existing = [model.raw_value(model.by_name["id"], i) for i in (10 * k + 1, 10 * k + 2)]
    before = len(lead_runs(instance))
    changed_at = time.time()
    new_id = httpx.post(
        f"{stack.emulator.url}/__emulator__/records",
        json={
            "object": "Lead",
            "insert": [{"LastName": f"Round {k}", "Company": "Bench", "Status": "Open"}],
            "update": [{"Id": existing[0], "Company": f"Edited {k}"}],
            "delete": [existing[1]],
        },
    ).json()["inserted"][0]
    deadline = time.monotonic() + 10 * interval + 300
    while len(lead_runs(instance)) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    run = lead_runs(instance)[0]
    stack.wait([run.run_id], timeout_s=600)
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.start_time and record.end_time
    with duckdb.connect(str(stack.duckdb_path), read_only=True) as con:
        company = dict(con.execute("SELECT id, company FROM salesforce.lead").fetchall())
    exact = company.get(new_id) == "Bench" and company.get(existing[0]) == f"Edited {k}" and existing[1] not in company
    return [
        record.create_timestamp.timestamp() - changed_at,
        record.end_time - record.start_time,
        record.end_time - changed_at,
        "yes" if exact else "NO",
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100_000, help="Lead records in the org")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="freshness-bench-"))
    env = {"SF_PIPELINE_SENSOR_INTERVAL_SECONDS": str(args.interval), "SF_PIPELINE_WORK_DIR": str(tmp / "work")}
    small = {name: 1_000 for name in ("Account", "Contact", "Opportunity", "Case", "Task", "User", "Invoice__c")}
    config = EmulatorConfig(port=0, rows={**small, "Lead": args.rows}, cache_dir=tmp / "cache")
    with LocalDagster(tmp / "home", tmp / "sf.duckdb", config, extra_env=env) as stack:
        assert stack.emulator is not None
        url = stack.emulator.url
        settings = SalesforceSettings(login_url=url, retry=RetryPolicy(max_attempts=3))
        with SalesforceClient(settings) as client:
            sync_object(
                client,
                load_catalog().get("Lead"),
                Warehouse(duckdb_path=stack.duckdb_path),
                full_refresh=True,
                work_dir=tmp / "seed",
            )
        instance = dg.DagsterInstance.from_config(str(stack.home))
        stack.start_daemon()
        stack.start_sensor(SENSOR_NAME)
        time.sleep(args.interval + 5)  # the first tick (nothing changed) has passed
        rows = []
        for k in range(args.rounds):
            rows.append([k + 1, *one_round(stack, instance, k, args.interval)])
            print(f"round {k + 1}: {rows[-1][3]:.1f}s change -> DuckDB", flush=True)
    print(f"sensor interval {args.interval}s, Lead {args.rows:,} records")
    print(table(["round", "run requested after s", "run s", "change -> DuckDB s", "exact"], rows))
    print(f"median change -> DuckDB: {median([r[3] for r in rows]):.1f}s (promise: {args.interval}s + one run)")
    return 0 if all(r[4] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
