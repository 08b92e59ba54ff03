"""One partitioned Dagster asset per catalog object: extract, split and load through ``sync_object``.

Partitions are time windows on the object's cursor field; a backfill over a range runs as one run
(single-run backfill policy), so a full history of one object is one Bulk query and one load. A range run
records one materialization per partition (Dagster's rule), light ones but the last.

The first partition is open at its start: it holds every record whose cursor is older than the catalog's
``partition_start`` too, however old (orgs hold records from 2008), so a run of every partition loads the
whole object whatever start the user picked. Its metadata says so (``window``).
"""

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import dagster as dg

from ..catalog import (
    DELETED_AT_COLUMN,
    DELETED_COLUMN,
    HARD_DELETED_COLUMN,
    VALID_FROM_COLUMN,
    VALID_TO_COLUMN,
    Catalog,
    CatalogObject,
)
from ..common.memory import rss_mb
from ..datapath.configured import sync_with
from ..datapath.load import table_name
from ..datapath.sync import SyncResult
from ..warehouse import Warehouse
from ..warehouse.ddl import Span
from .checks import check_specs, evaluate_checks, salesforce_truth
from .dlt_runs import DagsterDltChunks, ObjectTranslator
from .resources import PipelineSettings, SalesforceResource, WarehouseResource, destination_from_env

GROUP_PREFIX = "salesforce_"  # one asset group per kind of object: salesforce_standard, salesforce_custom...
POOL = "salesforce_object_load"
# On a run: the QueuedRunCoordinator dequeues higher values first. On an op: the in-process executor runs a
# batch's steps highest first (static: the catalog's weight hint).
PRIORITY_TAG = "dagster/priority"
ID_SWEEP_CHECK = "ids_match_salesforce"  # the Id sweep (defs/sweep.py): a check the load jobs leave out


class ObjectLoadConfig(dg.Config):
    full_refresh: bool = False  # replace the whole table from a query of every live row
    # A narrower window inside the run's partitions (ISO timestamps): the change sensor loads only the span
    # it counted changes in, not the whole (monthly) partition that holds it.
    since: str | None = None
    until: str | None = None


# What every partition of a range run records; the rest (schemas, column maps, load ids) goes on the last
# partition only, so a full-history run writes a few small events and one full one (issue 22).
LIGHT_METADATA = (
    "rows_written",
    "records_deleted",
    "records_read",
    "bytes",
    "chunks",
    "seconds",
    "mode",
    "window",
    "route",
    "bulk_job_id",
    "destination_table",
    "dagster/table_name",
    "dagster/row_count",
)


def weight_hint(entry: CatalogObject) -> int:
    """The catalog's size hint as a priority (at least 1): what orders objects before their first load."""
    return max(1, int(entry.weight))


def asset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["salesforce", name])


def partitions_def(catalog: Catalog) -> dg.TimeWindowPartitionsDefinition:
    """Time windows on the cursor field, the current (still open) one included (``end_offset=1``), so that
    the change sensor can load today's edits; schedules load a period once it is complete."""
    start = catalog.partition_start.isoformat()
    if catalog.partition_granularity == "weekly":
        return dg.WeeklyPartitionsDefinition(start_date=start, end_offset=1)
    if catalog.partition_granularity == "monthly":
        return dg.MonthlyPartitionsDefinition(start_date=start, end_offset=1)
    return dg.DailyPartitionsDefinition(start_date=start, end_offset=1)


def first_partition_start(parts: dg.TimeWindowPartitionsDefinition) -> datetime:
    """Where the first partition starts; a window starting there is loaded open at its start."""
    window = parts.get_first_partition_window()
    assert window is not None, "a partitions definition with a start has a first partition"
    return window.start


def load_window(
    entry: CatalogObject, config: ObjectLoadConfig, window: dg.TimeWindow, first_start: datetime
) -> tuple[datetime | None, datetime]:
    """The span to load: the run's partitions, or the config's narrower window inside them; a span that starts
    where the first partition does is open at its start (None): every older record belongs to it."""
    since = datetime.fromisoformat(config.since) if config.since else window.start
    until = datetime.fromisoformat(config.until) if config.until else window.end
    if since.tzinfo is None or until.tzinfo is None:
        raise dg.Failure(
            f"[{entry.name}] config since/until must carry a time zone, got {config.since!r}, {config.until!r}"
        )
    if not window.start <= since < until <= window.end:
        raise dg.Failure(
            f"[{entry.name}] config window {since.isoformat()} .. {until.isoformat()} is not inside the run's "
            f"partitions {window.start.isoformat()} .. {window.end.isoformat()}"
        )
    return _open_at_first(since, first_start), until


def describe_window(since: datetime | None, until: datetime | None) -> str:
    """The span a run loaded, as its metadata and log say it."""
    if until is None:
        return "full refresh"
    if since is None:
        return f"every record before {until.isoformat()} (the first partition holds all older history)"
    return f"{since.isoformat()} .. {until.isoformat()}"


def _route(result: SyncResult) -> str:
    """How the records were read, and why when it is not the catalog's route."""
    if result.demoted:
        return f"{result.route} (demoted: {result.demoted})"
    if result.route == "rest" and result.expected_records is not None:
        return f"rest (by size: {result.expected_records} record(s) in the window)"
    return result.route


def _metadata(result: SyncResult, description: str, entry: CatalogObject) -> dict[str, object]:
    return {
        # one name, one meaning, everywhere (the UI, the demo, sf-pipeline sync): records as Salesforce sent
        # them, deleted ones included; live rows written; the whole table's rows (dagster/row_count)
        "records_read": dg.MetadataValue.int(result.salesforce_records),
        "records_deleted": dg.MetadataValue.int(result.rows_deleted),
        "rows_written": dg.MetadataValue.int(result.rows_written),
        "bytes": dg.MetadataValue.int(result.bytes),
        "chunks": dg.MetadataValue.int(result.chunks),
        "extract_seconds": dg.MetadataValue.float(round(result.extract_seconds, 3)),
        "split_seconds": dg.MetadataValue.float(round(result.split_seconds, 3)),
        "load_seconds": dg.MetadataValue.float(round(result.load_seconds, 3)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "peak_rss_mb": dg.MetadataValue.float(round(result.peak_rss_mb, 1)),
        # the run process's RSS once the object is done: flat across a batch when nothing is held over
        "rss_after_mb": dg.MetadataValue.float(round(rss_mb(), 1)),
        "dlt_load_ids": dg.MetadataValue.json(result.load_ids),
        "destination_table": dg.MetadataValue.text(f"{result.dataset}.{result.table}"),
        "mode": dg.MetadataValue.text(result.mode),
        "window": dg.MetadataValue.text(description),
        "read_from": dg.MetadataValue.text(result.read_since.isoformat() if result.read_since else "the first record"),
        "bulk_job_id": dg.MetadataValue.text(result.job_id),
        "fields_left_out": dg.MetadataValue.json(result.skipped_fields),
        "resumed_pages": dg.MetadataValue.int(result.resumed_pages),
        "columns": dg.MetadataValue.json(result.columns),
        "schema_changes": dg.MetadataValue.json(result.schema_changes),
        "formula_fields": dg.MetadataValue.json(result.formula_fields),
        "formula_fields_loaded": dg.MetadataValue.bool(result.formula_fields_loaded),
        "salesforce_api_calls": dg.MetadataValue.int(result.api_calls),
        "org_api_usage": dg.MetadataValue.text(result.api_usage or "unknown"),
        "route": dg.MetadataValue.text(_route(result)),
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=column, type=result.field_info[api][0], description=f"{result.field_info[api][1]} ({api})"
                )
                for api, column in result.columns.items()
            ]
            + [
                dg.TableColumn(name=name, type=kind, description=meaning)
                for name, kind, meaning in _policy_columns(entry)
            ]
        ),
    }


def _policy_columns(entry: CatalogObject) -> list[tuple[str, str, str]]:
    """The columns the object's catalog policies add to its table (docs/data.md)."""
    if entry.history:
        return [
            (VALID_FROM_COLUMN, "datetime", "when this version was loaded (the load that saw the record so)"),
            (VALID_TO_COLUMN, "datetime", "when a later version, a delete or the Id sweep closed it; null: current"),
        ]
    if entry.deletes == "flag":
        return [
            (DELETED_COLUMN, "boolean", "true once Salesforce reports the record deleted (soft or hard)"),
            (
                DELETED_AT_COLUMN,
                "datetime",
                "its SystemModstamp at deletion; for a hard delete, when the Id sweep found it gone",
            ),
        ]
    if entry.hard_deletes == "flag":
        return [(HARD_DELETED_COLUMN, "datetime", "when the Id sweep found the record gone from Salesforce")]
    return []


def policy_metadata(entry: CatalogObject) -> dict[str, object]:
    """Which policies the object runs with, as its asset's definition metadata (the UI's asset page)."""
    return {
        "salesforce/history": entry.history,
        "salesforce/deletes": entry.deletes,
        "salesforce/hard_deletes": entry.hard_deletes,
        "salesforce/hash_fields": dg.MetadataValue.json(list(entry.hash_fields)),
        "salesforce/formula_fields": entry.formula_fields,
    }


def _open_at_first(start: datetime, first_start: datetime) -> datetime | None:
    """A span's start, or None (open) where it is the first partition's: all older history is in it."""
    return None if start <= first_start else start


def _partition_span(context: dg.AssetExecutionContext, first_start: datetime) -> tuple[datetime | None, datetime]:
    """The one partition a run materializes, open at its start when it is the first."""
    part = context.partition_time_window
    return _open_at_first(part.start, first_start), part.end


def _counts_after(
    target: Warehouse, entry: CatalogObject, table: str, window: Span, partition: Span | None
) -> dict[str, int]:
    """Every count the metadata and the checks need after a load, in one statement: the table's live rows
    (``all``), the window's and, for a one-partition run, the partition's."""
    spans = {"window": window, **({"partition": partition} if partition else {})}
    return target.count_spans(table, entry.cursor_field, spans, deleted_at=entry.inactive_column)


def _materialization_metadata(
    result: SyncResult, description: str, chunks: DagsterDltChunks, table_rows: int, entry: CatalogObject
) -> dict[str, object]:
    """The load's metadata with dagster-dlt's merged over its chunks, the table named as the warehouse names
    it (dagster-dlt names it after dlt's schema) and its live rows."""
    metadata = _metadata(result, description, entry)
    descriptions = {
        column: f"{result.field_info[api][1]} ({api}, {result.field_info[api][0]})"
        for api, column in result.columns.items()
    }
    metadata.update(chunks.merged(descriptions))
    metadata["dagster/table_name"] = dg.MetadataValue.text(f"{result.dataset}.{result.table}")
    metadata["dagster/row_count"] = dg.MetadataValue.int(table_rows)
    return metadata


def _per_partition(
    context: dg.AssetExecutionContext, metadata: dict[str, object], partition_rows: int | None
) -> dict[str, object]:
    """A one-partition window run records the partition's row count (``partition_rows``; the first
    partition's counts every older row too); a range run (one materialization per partition is Dagster's
    rule) puts the full record on its last partition and light metadata on every partition."""
    keys = context.partition_keys
    if len(keys) == 1:
        if partition_rows is None:
            return metadata
        return {**metadata, "dagster/partition_row_count": dg.MetadataValue.int(partition_rows)}
    context.add_asset_metadata(metadata, partition_key=keys[-1])
    return {k: v for k, v in metadata.items() if k in LIGHT_METADATA}


def build_object_asset(entry: CatalogObject, catalog: Catalog, budget_floor: float) -> dg.AssetsDefinition:
    partitioned = entry.cursor_field is not None
    parts = partitions_def(catalog)
    first_start = first_partition_start(parts)
    translator = _translator(entry)

    def _object_asset(
        context: dg.AssetExecutionContext,
        config: ObjectLoadConfig,
        salesforce: SalesforceResource,
        warehouse: WarehouseResource,
        pipeline_settings: PipelineSettings,
    ) -> dg.MaterializeResult:
        since = until = None
        full_refresh = config.full_refresh or not partitioned
        if partitioned and not full_refresh:
            since, until = load_window(entry, config, context.partition_time_window, first_start)
        description = describe_window(since, until)
        context.log.info(f"[{entry.name}] {description}")
        target = warehouse.warehouse()
        chunks = DagsterDltChunks(context, translator)
        result = sync_with(
            salesforce,
            pipeline_settings,
            entry,
            target,
            file_format=warehouse.staging_file_format,
            since=since,
            until=until,
            full_refresh=full_refresh,
            run_chunk=chunks,
        )
        one_partition = partitioned and not full_refresh and len(context.partition_keys) == 1
        partition = _partition_span(context, first_start) if one_partition else None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"checks-{entry.name}") as pool:
            # Salesforce counts (one API call) while the warehouse counts: two round trips at once
            truth = pool.submit(salesforce_truth, salesforce, entry, result, since, until, budget_floor)
            after = _counts_after(target.sized(result.sizes), entry, result.table, (since, until), partition)
        checks = evaluate_checks(
            entry,
            result,
            truth.result(),
            rows_before=result.window_rows_before,
            rows_in_window=after["window"],
            rows_in_table=after["all"],
            budget_floor=budget_floor,
        )
        metadata = _materialization_metadata(result, description, chunks, after["all"], entry)
        if partitioned:
            metadata = _per_partition(context, metadata, after.get("partition"))
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _as_asset(_object_asset, entry, translator.spec(), parts if partitioned else None)


def _translator(entry: CatalogObject) -> ObjectTranslator:
    """The object's asset spec (key, group, kinds, description), shared with dagster-dlt's events."""
    description = (
        f"Salesforce {entry.name}, extracted with Bulk API 2.0 and loaded with dlt into "
        f"salesforce.{table_name(entry.name)}. Partitioned on {entry.cursor_field}."
        if entry.cursor_field is not None
        else f"Salesforce {entry.name}, fully refreshed on every run."
    )
    kinds = {"salesforce", "dlt", destination_from_env()}
    return ObjectTranslator(asset_key(entry.name), entry, GROUP_PREFIX + entry.kind, description, kinds)


def _as_asset(
    fn: Callable[..., dg.MaterializeResult],
    entry: CatalogObject,
    spec: dg.AssetSpec,
    parts: dg.TimeWindowPartitionsDefinition | None,
) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # BackfillPolicy.single_run is what makes a range of partitions one run and one query (docs/dagster.md);
        # Dagster marks the parameter beta and would print that once per object when the code location loads
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(
            key=spec.key,
            group_name=spec.group_name,
            kinds=spec.kinds,
            description=spec.description,
            owners=list(spec.owners),
            tags=dict(spec.tags),
            partitions_def=parts,
            backfill_policy=dg.BackfillPolicy.single_run() if parts else None,
            pool=POOL,
            op_tags={PRIORITY_TAG: str(weight_hint(entry))},
            check_specs=check_specs(spec.key),
            metadata={"salesforce/weight": entry.weight, **policy_metadata(entry)},
        )(fn)


def build_assets(catalog: Catalog, budget_floor: float = 0.0) -> list[dg.AssetsDefinition]:
    """One asset per catalog object; ``budget_floor``: the share of the org's daily API budget under which the
    whole-object check (one more API call) is left out (``AutomationSettings.api_budget_floor``)."""
    return [build_object_asset(entry, catalog, budget_floor) for entry in catalog.objects]
