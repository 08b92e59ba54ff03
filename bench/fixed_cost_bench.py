"""What one object costs where it will run: a real org's Bulk floor and round trips, Snowflake's logins and
statements, for the first load and for a one-row change window.

Usage: python bench/fixed_cost_bench.py [--profile production|loopback] [--objects 6] [--rows 300] [--bulk-only]
       [--windows 1]

Starts Azurite (under the production profile behind a proxy that makes each request wait Azure's 50 ms), fakesnow's
server (the tests' shims, with the latency profile and its statement log) and the
emulator (with the same profile), then runs, as one batched Dagster run each (in process, the way the
sensor's and the initial-load sensor's runs execute their objects one after another):
1. the initial load of N small objects (every partition: their whole history);
2. one record edited in each, then each object's change window (the sensor's narrower config) of that edit:
   the first merge, then ``--windows`` more (the steady state).
Prints, per phase and per object: wall seconds, the median of the steps' own seconds (Dagster's step
durations: steadier than a run's wall time over a few objects), Snowflake logins, statements and INFORMATION_SCHEMA
statements (the server's log), Salesforce API requests and OAuth logins (the emulator's counts), Bulk jobs.
Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import dagster as dg
import httpx
from common import table
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource
from sf_pipeline_tests.latency_proxy import AZURE_REQUEST_S, blob_endpoint
from sf_pipeline_tests.servers import AZURITE_ACCOUNT, AZURITE_KEY, run_azurite, run_fakesnow
from sf_testbed.emulator import PRODUCTION_LATENCY, EmulatorConfig, make_server

SNOWFLAKE_PROFILE = "login=0.4,statement=0.12,information_schema=0.6"
OBJECTS = ["Lead", "Case", "Opportunity", "Contact", "Task", "Invoice__c", "User", "Account"]


def costs(fakesnow, url: str, since_statement: int) -> dict[str, int]:
    kinds = collections.Counter(s["kind"] for s in fakesnow.statements()[since_statement:])
    stats = httpx.get(f"{url}/__emulator__/stats").json()
    requests = stats["requests"]
    return {
        "sf_logins": requests.get("POST /services/oauth2/token", 0),
        "api_requests": sum(
            n
            for path, n in requests.items()
            if path.startswith(("GET /services/data", "POST /services/data", "PATCH", "DELETE /services"))
        ),
        "bulk_jobs": requests.get("POST /services/data/v62.0/jobs/query", 0),
        "snowflake_logins": kinds["login"],
        "statements": kinds["statement"] + kinds["information_schema"],
        "information_schema": kinds["information_schema"],
    }


def bench_resources(url: str, fakesnow, endpoint: str, container: str, work: Path, bulk_only: bool) -> dict:
    """The run's resources: the emulator, fakesnow staging in Azurite's container (reached at ``endpoint``:
    Azurite's own, or the latency proxy's in front of it), a work folder."""
    warehouse = WarehouseResource(
        destination="snowflake",
        snowflake_account="sfpipeline-bench",
        snowflake_user="loader",
        snowflake_password="fake-password",
        snowflake_database="BENCH",
        snowflake_endpoint=fakesnow.endpoint,
        staging=f"az://{container}/sf",
        azure_account_name=AZURITE_ACCOUNT,
        azure_account_key=AZURITE_KEY,
        azure_blob_endpoint=endpoint,
    )
    return {
        "salesforce": SalesforceResource(login_url=url, rest_max_records=0 if bulk_only else 10_000),
        "warehouse": warehouse,
        "pipeline_settings": PipelineSettings(work_dir=str(work / "w")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["production", "loopback"], default="production")
    ap.add_argument("--objects", type=int, default=6)
    ap.add_argument("--rows", type=int, default=300, help="records of each object")
    ap.add_argument("--bulk-only", action="store_true", help="every load by Bulk (SF_PIPELINE_REST_MAX_RECORDS=0)")
    ap.add_argument("--show-statements", action="store_true", help="print the last phase's Snowflake statements")
    ap.add_argument("--windows", type=int, default=1, help="one-row windows after the first merge (the steady state)")
    args = ap.parse_args()
    production = args.profile == "production"
    names = OBJECTS[: args.objects]
    work = Path(tempfile.mkdtemp(prefix="fixed-cost-"))
    catalog_path = work / "catalog.yaml"
    catalog_path.write_text(
        f"defaults: {{partition_start: '2024-01-01', partition_granularity: monthly}}\nobjects: [{', '.join(names)}]\n"
    )
    catalog = load_catalog(catalog_path)
    config = EmulatorConfig(port=0, rows=dict.fromkeys(names, args.rows), cache_dir=work / "cache")
    if production:
        config = EmulatorConfig(**{**config.__dict__, **PRODUCTION_LATENCY})
    server = make_server(config)
    server.start_background()
    (work / "az").mkdir()
    (work / "snow").mkdir()
    container = f"b{uuid.uuid4().hex[:10]}"
    with (
        run_azurite(work / "az") as azurite,
        run_fakesnow(work / "snow", azurite.connection_string(), SNOWFLAKE_PROFILE if production else None) as fakesnow,
        contextlib.ExitStack() as proxies,
    ):
        azurite.service().create_container(container)
        resources = bench_resources(
            server.url, fakesnow, blob_endpoint(proxies, azurite, priced=production), container, work, args.bulk_only
        )
        assets = build_assets(catalog)
        parts = partitions_def(catalog)
        rows = []
        with dg.instance_for_test() as instance:
            whole_history = {
                ASSET_PARTITION_RANGE_START_TAG: parts.get_first_partition_key(),
                ASSET_PARTITION_RANGE_END_TAG: parts.get_last_partition_key(),
            }
            n = len(names)
            rows.append(
                run_phase("initial load", assets, resources, instance, fakesnow, server.url, n, {"tags": whole_history})
            )
            for phase in ("one-row window (first merge)", *["one-row window"] * args.windows):
                before = len(fakesnow.statements())
                rows.append(edit_and_load(phase, names, server, assets, resources, instance, fakesnow, parts))
            if args.show_statements:
                for s in fakesnow.statements()[before:]:
                    print(f"{s['kind']:>18} {' '.join(s.get('statement', '').split())[:150]}")
    server.shutdown()
    print_report(args, rows)
    return 0


def print_report(args: argparse.Namespace, rows: list[list[object]]) -> None:
    """The profile the phases ran under, then a row a phase."""
    production = args.profile == "production"
    headers = [
        "phase",
        "objects",
        "wall s",
        "s/object",
        "median step s",
        "SF logins",
        "API req/object",
        "Bulk jobs",
        "Snowflake logins",
        "statements/object",
        "INFORMATION_SCHEMA/object",
    ]
    profile = (
        f" (emulator {PRODUCTION_LATENCY}, Snowflake {SNOWFLAKE_PROFILE}, Azure Blob {AZURE_REQUEST_S} s a request)"
        if production
        else ""
    )
    print(f"profile: {args.profile}{profile}" + (", every load by Bulk" if args.bulk_only else ""))
    print(table(headers, rows))


def edit_and_load(phase, names, server, assets, resources, instance, fakesnow, parts) -> list[object]:
    """One record edited in each object, then each object's window of that edit in one run, as the sensor
    asks it: the first such window is the object's first merge (dlt records the merge's schema once), the
    second the steady state."""
    now = datetime.now(UTC)
    for name in names:
        obj = server.state.org.get(name)
        record_id = obj.raw_value(obj.by_name["id"], 0)
        field = next(f.name for f in obj.fields if f.type in ("string", "textarea") and f.name != "Username")
        httpx.post(
            f"{server.url}/__emulator__/records", json={"object": name, "update": [{"Id": record_id, field: "edited"}]}
        ).raise_for_status()
    since, until = now - timedelta(minutes=1), datetime.now(UTC) + timedelta(seconds=1)
    config = {"config": {"since": since.isoformat(), "until": until.isoformat()}}
    ops = {asset_key(n).to_python_identifier(): config for n in names}
    key = parts.get_partition_key_for_timestamp(now.timestamp())
    return run_phase(
        phase,
        assets,
        resources,
        instance,
        fakesnow,
        server.url,
        len(names),
        {"partition_key": key, "run_config": {"ops": ops}},
    )


def run_phase(phase, assets, resources, instance, fakesnow, url, n, kwargs) -> list[object]:
    httpx.delete(f"{url}/__emulator__/stats").raise_for_status()
    before = len(fakesnow.statements())
    started = time.monotonic()
    # the objects selected as the sensor and the UI select them: the run knows them (run.asset_selection)
    job = dg.Definitions(
        assets=assets, resources=resources, jobs=[dg.define_asset_job("bench", selection=assets)]
    ).resolve_job_def("bench")
    keys = [key for a in assets for key in a.keys]
    result = job.execute_in_process(instance=instance, asset_selection=keys, **kwargs)
    seconds = time.monotonic() - started
    if not result.success:
        raise SystemExit(f"{phase}: the run failed")
    c = costs(fakesnow, url, before)
    steps = [e.event_specific_data.duration_ms / 1000 for e in result.all_events if e.is_step_success]
    return [
        phase,
        n,
        round(seconds, 1),
        round(seconds / n, 2),
        round(statistics.median(steps), 2),
        c["sf_logins"],
        round(c["api_requests"] / n, 1),
        c["bulk_jobs"],
        c["snowflake_logins"],
        round(c["statements"] / n, 1),
        round(c["information_schema"] / n, 1),
    ]


if __name__ == "__main__":
    sys.exit(main())
