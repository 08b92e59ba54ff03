"""The ``sf-pipeline`` command line: emulator, discover, extract, split, load, sync, sweep, demo, check-connections,
free-slots, settings."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..common.sizing import LoadSizes
    from ..datapath.split import SplitOptions

log = logging.getLogger("sf_pipeline")
LOG_LEVEL_ENV, DEFAULT_LOG_LEVEL = "SF_PIPELINE_LOG_LEVEL", "INFO"  # the command's own log level


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 datetime: {text!r}") from exc


def _rows(text: str) -> dict[str, int]:
    out = {}
    for part in text.split(","):
        name, _, count = part.partition("=")
        out[name.strip()] = int(count)
    return out


def _usage(text: str) -> tuple[int, int]:
    used, _, limit = text.partition("/")
    try:
        return int(used), int(limit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected USED/LIMIT, e.g. 95000/100000, got {text!r}") from None


def cmd_emulator(args: argparse.Namespace) -> int:
    from sf_testbed.emulator import PRODUCTION_LATENCY, EmulatorConfig, Fault, make_server

    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        scale=args.scale,
        rows=args.rows or {},
        quoted_blanks=args.quoted_blanks,
        objects=args.objects,
    )
    if args.api_usage:
        config.api_used, config.api_limit = args.api_usage
    if args.latency == "production":
        config = dataclasses.replace(config, **PRODUCTION_LATENCY)
    if args.bulk_floor_s is not None:
        config.bulk_floor_s = args.bulk_floor_s
    if args.request_latency_ms is not None:
        config.request_latency_s = args.request_latency_ms / 1000
    if args.bulk_jobs:
        config.bulk_jobs_used, config.bulk_jobs_limit = args.bulk_jobs
    if args.page_records:
        config.default_page_records = args.page_records
    if args.cache_dir:
        config.cache_dir = Path(args.cache_dir)
    if args.faults:
        config.faults = [Fault(**spec) for spec in json.loads(Path(args.faults).read_text())]
    server = make_server(config)
    for change in json.loads(Path(args.schema_changes).read_text()) if args.schema_changes else []:
        server.state.obj(change["object"]).change_schema(
            change.get("add", []), change.get("remove", []), change.get("retype", {})
        )
    print(
        f"Salesforce emulator listening on {server.url} (seed {config.seed}, {len(server.state.org.objects)} objects); "
        f"client id {config.client_id!r}, user {config.username!r}; point the pipeline at it with "
        f"SF_LOGIN_URL={server.url}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from ..common.memory import PeakRss
    from ..salesforce import ExtractOptions, SalesforceClient, SalesforceSettings
    from ..salesforce.bulk import extract_object

    settings = SalesforceSettings.from_env()
    sizes = _sized(args.object, download_concurrency=args.concurrency)
    pages = {"max_records": args.max_records} if args.max_records is not None else {}
    options = ExtractOptions(gzip=not args.no_gzip, concurrency=sizes.pages_in_flight, **pages)
    with PeakRss() as rss, SalesforceClient(settings, max_connections=options.pages_in_flight + 2) as client:
        result, _ = extract_object(
            client,
            args.object,
            Path(args.out),
            since=args.since,
            until=args.until,
            include_deleted=args.include_deleted,
            options=options,
        )
    for f in result.files:
        print(f)
    print(
        f"{result.sobject}: {result.records} records, {len(result.files)} file(s), {result.bytes / 1e6:.1f} MB, "
        f"{result.seconds:.1f}s ({result.bytes / 1e6 / max(result.seconds, 1e-9):.1f} MB/s), "
        f"peak RSS {rss.peak_mb:.0f} MB"
    )
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    import time

    from ..common.memory import PeakRss
    from ..datapath.split import split_csv

    options = _split_options(args)
    sizes = _sized(Path(args.csv).stem, chunk_bytes=options.target_bytes)
    options = dataclasses.replace(options, target_bytes=sizes.chunk_bytes)
    started = time.monotonic()
    with PeakRss() as rss:
        chunks = split_csv(Path(args.csv), Path(args.out), options)
    for c in chunks:
        print(c.files[0])
    print(
        f"rows {sum(c.rows for c in chunks)}, chunks {len(chunks)}, seconds {time.monotonic() - started:.1f}, "
        f"peak RSS {rss.peak_mb:.0f} MB"
    )
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """CSV files into DuckDB, sized like a sync by the memory the process has (and the same settings)."""
    from ..datapath.load import ObjectLoader
    from ..salesforce.soql import UNQUERYABLE_TYPES
    from ..warehouse import Warehouse

    source = Path(args.csv_or_dir)
    files = sorted(source.glob("*.csv")) if source.is_dir() else [source]
    if not files:
        print(f"error: no CSV files in {source}", file=sys.stderr)
        return 2
    fields = None
    if args.describe:
        describe = json.loads(Path(args.describe).read_text())
        fields = [f for f in describe["fields"] if f.get("type") not in UNQUERYABLE_TYPES]
    split = _split_options(args)
    sizes = _sized(args.object, chunk_bytes=split.target_bytes)
    warehouse = Warehouse(duckdb_path=Path(args.duckdb)).sized(sizes)
    with warehouse.load_destination() as destination:
        loader = ObjectLoader(args.object, destination, read_block=sizes.read_block, read_ahead=sizes.read_ahead)
        # as a sync does: a merge into an empty table appends
        into_empty = args.mode == "merge" and warehouse.count_rows(loader.table) == 0
        split = dataclasses.replace(split, target_bytes=sizes.chunk_bytes)
        result = loader.load_files(files, fields, args.mode, options=split, into_empty=into_empty)
    print(
        f"{result.sobject} -> {Path(args.duckdb)}:{result.dataset}.{result.table}: rows {result.rows}, "
        f"chunks {result.chunks}, seconds {result.seconds:.1f}, peak RSS {result.peak_rss_mb:.0f} MB"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on embedded defaults: emulator org, Dagster queue and daemon, DuckDB warehouse."""
    from .demo import run_demo

    return run_demo(Path(args.out), scale=args.scale, objects=args.objects)


def cmd_sync(args: argparse.Namespace) -> int:
    """One object and one window end to end, with the settings the code location reads (no Dagster run)."""
    from ..catalog import load_catalog
    from ..datapath.configured import PlainOrg, sync_with
    from ..datapath.settings import LoadSettings
    from ..warehouse.settings import WarehouseSettings

    entry = load_catalog().get(args.object)
    if not args.full_refresh and not args.until:
        print(
            "error: give --until (and --since; without it every record before --until), or --full-refresh",
            file=sys.stderr,
        )
        return 2
    split = {"min_rows": args.chunk_min_rows}
    if args.chunk_target_mb is not None:
        split["target_bytes"] = int(args.chunk_target_mb * 2**20)
    warehouse = WarehouseSettings.from_env()
    result = sync_with(
        PlainOrg.from_env(),
        LoadSettings.from_env(),
        entry,
        warehouse.warehouse(),
        file_format=warehouse.staging_file_format,
        since=args.since,
        until=args.until,
        full_refresh=args.full_refresh,
        extract_overrides={"max_records": args.max_records} if args.max_records else None,
        split_overrides={k: v for k, v in split.items() if v is not None},
    )
    print(
        json.dumps(
            {
                "object": result.sobject,
                "table": f"{result.dataset}.{result.table}",
                "mode": result.mode,
                "records_read": result.salesforce_records,
                "records_deleted": result.rows_deleted,
                "rows_written": result.rows_written,
                "read_from": result.read_since.isoformat() if result.read_since else None,
                "chunks": result.chunks,
                "resumed_pages": result.resumed_pages,
                "reconciled": result.reconciled,
                "peak_rss_mb": round(result.peak_rss_mb, 1),
            }
        )
    )
    return 0 if result.reconciled else 1


def cmd_discover(args: argparse.Namespace) -> int:
    """Discover the org's objects into a catalog file (only what changed since the file's last discovery)."""
    from ..catalog import DISCOVERED_ENV
    from ..datapath.configured import PlainOrg
    from ..salesforce.discovery import refresh

    out = args.out or os.environ.get(DISCOVERED_ENV)
    if not out:
        print(f"error: give --out FILE (or set {DISCOVERED_ENV})", file=sys.stderr)
        return 2
    with PlainOrg.from_env().client() as client:
        discovery, stats = refresh(client, Path(out), full=args.full)
    rest = sum(o.route == "rest" for o in discovery.loadable)
    print(
        f"{len(discovery.objects)} objects: {len(discovery.loadable)} load ({rest} by REST), "
        f"{len(discovery.skipped)} skipped; {stats.requests} API request(s), {stats.described} describe(s) read, "
        f"{stats.unchanged} unchanged, {stats.seconds:.1f}s -> {out}"
    )
    if not os.environ.get(DISCOVERED_ENV):
        print(f"Load it: export {DISCOVERED_ENV}={Path(out).resolve()}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """The Id sweep of one catalog object (as its ``ids_match_salesforce`` check runs it), no Dagster run."""
    from ..catalog import load_catalog
    from ..datapath.configured import PlainOrg, sweep_with
    from ..datapath.settings import LoadSettings
    from ..warehouse.settings import WarehouseSettings

    entry = load_catalog().get(args.object)
    warehouse = WarehouseSettings.from_env()
    result = sweep_with(
        PlainOrg.from_env(), LoadSettings.from_env(), entry, warehouse.warehouse(), warehouse.staging_file_format
    )
    c = result.comparison
    print(
        json.dumps(
            {
                "object": result.sobject,
                "mode": result.mode,
                "salesforce_ids": c.salesforce_ids,
                "table_rows_before": c.table_rows,
                "gone_from_salesforce": c.gone_from_salesforce,
                "missing_in_table": c.missing_in_table,
                "seconds": round(result.seconds, 2),
                "peak_rss_mb": round(result.peak_rss_mb, 1),
                "api_calls": result.api_calls,
                "org_api_usage": result.api_usage,
            }
        )
    )
    return 0 if result.ids_match else 1


def cmd_check_connections(args: argparse.Namespace) -> int:
    """Reads the settings the code location reads (the same variables, the same models)."""
    from ..catalog import load_catalog
    from ..salesforce import SalesforceSettings
    from ..warehouse.settings import WarehouseSettings
    from .connections import check_all, format_checks

    checks = check_all(SalesforceSettings.from_env(), WarehouseSettings.from_env().warehouse(), load_catalog().names)
    print(format_checks(checks))
    return 0 if all(c.ok for c in checks) else 1


def cmd_free_slots(args: argparse.Namespace) -> int:
    """Frees the pool slots a finished run still claims, through the webserver's GraphQL API (what the UI's
    "Free concurrency slots" does; the daemon does it on its own after ``free_slots_after_run_end_seconds``:
    this is for an instance without run monitoring)."""
    import httpx

    from ..errors import SettingsError

    def graphql(query: str, variables: dict[str, str]) -> dict[str, Any]:
        try:
            response = httpx.post(f"{args.url.rstrip('/')}/graphql", json={"query": query, "variables": variables})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SettingsError(f"the Dagster webserver at {args.url} (--url) did not answer: {exc}") from None
        body = response.json()
        if body.get("errors"):
            raise SettingsError(f"the Dagster webserver at {args.url} refused: {body['errors'][0]['message']}")
        return body["data"]

    status_query = "query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"
    run = graphql(status_query, {"runId": args.run_id})["runOrError"]
    if run["__typename"] != "Run":
        raise SettingsError(f"no run {args.run_id} in the instance behind {args.url}")
    if run["status"] not in ("SUCCESS", "FAILURE", "CANCELED"):
        raise SettingsError(
            f"run {args.run_id} is {run['status']}: terminate it first (UI: Terminate, or "
            "let run monitoring fail it if its processes are gone)"
        )
    free = "mutation Free($runId: String!) { freeConcurrencySlotsForRun(runId: $runId) }"
    graphql(free, {"runId": args.run_id})
    print(f"freed the pool slots of run {args.run_id} ({run['status']})")
    return 0


def _split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-mb", type=float, help="chunk size to aim at (default: SplitOptions')")
    p.add_argument("--min-rows", type=int, help="chunk only above this many rows (default: SplitOptions')")


def cmd_settings(args: argparse.Namespace) -> int:
    from ..errors import SettingsError
    from .settings import BEGIN, END, markdown

    if not args.update:
        print(markdown())
        return 0
    path = Path(args.update)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SettingsError(f"{path} has no generated section (a line {BEGIN!r} and a line {END!r})")
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + markdown() + rest.split(END, 1)[1])
    print(f"updated {path}")
    return 0


def _sized(name: str, **given: int | None) -> LoadSizes:
    """The sizes a command's work starts with (``sizing.size_load``, as a sync's): the environment's size
    settings, then what the command line gave (``SizeSettings``' fields; None: not given)."""
    from ..common.sizing import size_load
    from ..datapath.settings import LoadSettings
    from ..salesforce.settings import ExtractSettings
    from ..warehouse.settings import WarehouseSettings

    settings = LoadSettings.from_env().size_settings(WarehouseSettings.from_env(), ExtractSettings.from_env())
    return size_load(name, dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None}))


def _split_options(args: argparse.Namespace) -> SplitOptions:
    """The pipeline's split defaults with what the command line gave."""
    from ..datapath.split import SplitOptions

    given = {
        "min_rows": args.min_rows,
        "max_chunks": getattr(args, "max_chunks", None),
        "target_bytes": int(args.target_mb * 2**20) if args.target_mb else None,
    }
    return SplitOptions(**{k: v for k, v in given.items() if v is not None})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sf-pipeline", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get(LOG_LEVEL_ENV, DEFAULT_LOG_LEVEL),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    sub = parser.add_subparsers(dest="command", required=True)

    _emulator_command(sub)
    _file_step_commands(sub)
    _pipeline_commands(sub)
    _operations_commands(sub)
    return parser


def _emulator_command(sub: Any) -> None:
    """``emulator``: the testbed's org, with its size, faults and latency profile."""
    p = sub.add_parser("emulator", help="serve the local Salesforce org (Bulk API 2.0 emulator)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every object's row count")
    p.add_argument("--rows", type=_rows, help="row counts, e.g. Account=1000000,Contact=5000")
    p.add_argument(
        "--objects",
        type=int,
        default=8,
        help="objects in the org: the 8 demo objects, then generated ones of the kinds real orgs hold (e.g. 300)",
    )
    p.add_argument("--page-records", type=int, help="records per page when a request gives no maxRecords")
    p.add_argument("--quoted-blanks", action="store_true", help='write nulls as "" instead of an empty field')
    p.add_argument(
        "--schema-changes",
        help='JSON file: a list of {"object", "add": [{"name", "type", ...}], "remove": [names], "retype": {name: '
        '{"type", ...}}}, applied at start (as POST /__emulator__/schema does at run time)',
    )
    p.add_argument("--cache-dir", help="where generated object data is cached")
    p.add_argument("--api-usage", type=_usage, help="the org's daily API usage at start, USED/LIMIT (default 0/100000)")
    p.add_argument("--faults", help="JSON file with a list of faults to inject")
    p.add_argument(
        "--latency",
        choices=["loopback", "production"],
        default="loopback",
        help="production: a real org's fixed costs (a 10 s Bulk job floor, 80 ms a request; docs/emulator.md)",
    )
    p.add_argument("--bulk-floor-s", type=float, help="seconds a query job stays InProgress at least")
    p.add_argument("--request-latency-ms", type=float, help="milliseconds every request waits before its answer")
    p.add_argument("--bulk-jobs", type=_usage, help="DailyBulkV2QueryJobs at start, USED/LIMIT (default 0/10000)")
    p.set_defaults(func=cmd_emulator)


def _file_step_commands(sub: Any) -> None:
    """``extract``, ``split``, ``load``: one step of the data path at a time, on files."""
    p = sub.add_parser("extract", help="extract one object to CSV files with Bulk API 2.0")
    p.add_argument("object")
    p.add_argument("--out", required=True)
    p.add_argument("--since", type=_datetime)
    p.add_argument("--until", type=_datetime)
    p.add_argument("--include-deleted", action="store_true", help="queryAll: include soft-deleted rows")
    p.add_argument("--max-records", type=int, help="records per result page (default: ExtractOptions')")
    p.add_argument("--concurrency", type=int, help="pages downloaded at once (default: ExtractOptions')")
    p.add_argument("--no-gzip", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("split", help="split a big CSV into chunk files (streaming, quote-aware)")
    p.add_argument("csv")
    p.add_argument("--out", required=True)
    _split_arguments(p)
    p.add_argument("--max-chunks", type=int, help="at most this many chunks (default: SplitOptions')")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("load", help="load CSV files of one object into DuckDB with a fresh dlt pipeline")
    p.add_argument("csv_or_dir")
    p.add_argument("--object", required=True, help="the sObject name; the table is named after it")
    p.add_argument("--describe", help="a describe JSON file; without it every column loads as text")
    p.add_argument("--duckdb", default="data/sf_pipeline.duckdb")
    p.add_argument("--mode", choices=["replace", "merge", "append"], default="replace")
    _split_arguments(p)
    p.set_defaults(func=cmd_load)


def _pipeline_commands(sub: Any) -> None:
    """``demo``, ``sync``, ``discover``, ``sweep``: what the code location runs, from the command line."""
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded defaults")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the demo org's row counts")
    p.add_argument("--objects", type=int, default=8, help="objects in the emulator's org (e.g. 300: a real org's size)")
    p.add_argument("--out", default="data/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sync", help="extract, split and load one catalog object for one window, as its asset does")
    p.add_argument("object")
    p.add_argument("--since", type=_datetime, help="window start (read from the overlap before it); unset: open")
    p.add_argument("--until", type=_datetime, help="window end (exclusive)")
    p.add_argument("--full-refresh", action="store_true", help="every live row, replacing the table")
    p.add_argument("--chunk-min-rows", type=int, help="chunk only above this many rows (default: the setting)")
    p.add_argument("--chunk-target-mb", type=float, help="chunk size to aim at (default: the setting)")
    p.add_argument("--max-records", type=int, help="records per result page asked of Salesforce")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("discover", help="write the org's objects (what loads, by which route; what is skipped, why)")
    p.add_argument("--out", help="the discovered catalog file (default: $SF_PIPELINE_DISCOVERED_CATALOG)")
    p.add_argument("--full", action="store_true", help="describe every object again (no If-Modified-Since)")
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("sweep", help="delete (or flag) the rows of one object that Salesforce no longer has")
    p.add_argument("object")
    p.set_defaults(func=cmd_sweep)


def _operations_commands(sub: Any) -> None:
    """``check-connections``, ``free-slots``, ``settings``: for whoever runs the deployment."""
    p = sub.add_parser(
        "check-connections",
        help="report whether the org, the staging area and the warehouse are reachable and authorised (loads nothing)",
    )
    p.set_defaults(func=cmd_check_connections)

    p = sub.add_parser(
        "free-slots",
        help="free the concurrency pool slots a finished run still claims (through the Dagster webserver's API)",
    )
    p.add_argument("run_id")
    p.add_argument(
        "--url",
        default=os.environ.get("DAGSTER_WEBSERVER_URL", "http://localhost:3000"),
        help="the Dagster webserver (default: $DAGSTER_WEBSERVER_URL, else http://localhost:3000)",
    )
    p.set_defaults(func=cmd_free_slots)

    p = sub.add_parser("settings", help="every environment variable with its default and meaning (markdown)")
    p.add_argument("--update", metavar="FILE", help="rewrite the generated tables in FILE (docs/configuration.md)")
    p.set_defaults(func=cmd_settings)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in (
        "httpx",
        "alembic",
        "azure",
        "snowflake.connector",
    ):  # a line per request / per migration drowns the useful ones
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from ..errors import SfPipelineError

    try:
        return args.func(args)
    except Exception as exc:
        # our own error, raised directly or by a resource as Dagster starts it (which wraps it)
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, SfPipelineError):
            cause = cause.__cause__
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        return 1
