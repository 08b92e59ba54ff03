"""One partitioned Dagster asset per catalog object: extract, split and load through ``sync_object``.

Partitions are time windows on the object's cursor field; a backfill over a range runs as one run
(single-run backfill policy), so a full history of one object is one Bulk query and one load.
"""

from datetime import datetime, timedelta

import dagster as dg

from ..catalog import Catalog, CatalogObject
from ..load import table_name
from ..sync import SyncResult
from .automation import AutomationSettings
from .checks import check_specs, evaluate_checks
from .dlt_runs import DagsterDltChunks, ObjectTranslator
from .resources import PipelineSettings, SalesforceResource, WarehouseResource, destination_from_env, sync_with

GROUP_PREFIX = "salesforce_"  # one asset group per kind of object: salesforce_standard, salesforce_custom...
POOL = "salesforce_object_load"
ID_SWEEP_CHECK = "ids_match_salesforce"  # the Id sweep (defs/sweep.py): a check the load jobs leave out


class ObjectLoadConfig(dg.Config):
    full_refresh: bool = False  # replace the whole table from a query of every live row


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


PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}


def resync_condition(catalog: Catalog, settings: AutomationSettings) -> dg.AutomationCondition:
    """The weekly re-sync as a declarative condition: at each cron tick, the trailing partitions. The
    automation sensor that evaluates it (``salesforce_weekly_resync``) emits them as a Dagster backfill."""
    lookback = timedelta(days=settings.resync_partitions * PERIOD_DAYS[catalog.partition_granularity])
    return dg.AutomationCondition.cron_tick_passed(settings.resync_cron) & dg.AutomationCondition.in_latest_time_window(
        lookback
    )


def latest_complete_partition(parts: dg.TimeWindowPartitionsDefinition, now: datetime) -> str | None:
    """The last partition whose period has ended at ``now`` (the last key is the open period's)."""
    keys = parts.get_partition_keys(current_time=now)
    return keys[-2] if len(keys) >= 2 else None


def _metadata(result: SyncResult, description: str) -> dict[str, object]:
    return {
        "rows": dg.MetadataValue.int(result.rows_loaded),
        "rows_deleted": dg.MetadataValue.int(result.rows_deleted),
        "salesforce_records": dg.MetadataValue.int(result.salesforce_records),
        "bytes": dg.MetadataValue.int(result.bytes),
        "chunks": dg.MetadataValue.int(result.chunks),
        "extract_seconds": dg.MetadataValue.float(round(result.extract_seconds, 3)),
        "split_seconds": dg.MetadataValue.float(round(result.split_seconds, 3)),
        "load_seconds": dg.MetadataValue.float(round(result.load_seconds, 3)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "peak_rss_mb": dg.MetadataValue.float(round(result.peak_rss_mb, 1)),
        "dlt_load_ids": dg.MetadataValue.json(result.load_ids),
        "destination_table": dg.MetadataValue.text(f"{result.dataset}.{result.table}"),
        "mode": dg.MetadataValue.text(result.mode),
        "window": dg.MetadataValue.text(description),
        "bulk_job_id": dg.MetadataValue.text(result.job_id),
        "fields_left_out": dg.MetadataValue.json(result.skipped_fields),
        "resumed_pages": dg.MetadataValue.int(result.resumed_pages),
        "columns": dg.MetadataValue.json(result.columns),
        "schema_changes": dg.MetadataValue.json(result.schema_changes),
        "formula_fields": dg.MetadataValue.json(result.formula_fields),
        "formula_fields_loaded": dg.MetadataValue.bool(result.formula_fields_loaded),
        "salesforce_api_calls": dg.MetadataValue.int(result.api_calls),
        "org_api_usage": dg.MetadataValue.text(result.api_usage or "unknown"),
        "route": dg.MetadataValue.text(result.route + (f" (demoted: {result.demoted})" if result.demoted else "")),
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=column, type=result.field_info[api][0], description=f"{result.field_info[api][1]} ({api})"
                )
                for api, column in result.columns.items()
            ]
        ),
    }


def build_object_asset(
    entry: CatalogObject, catalog: Catalog, settings: AutomationSettings | None = None
) -> dg.AssetsDefinition:
    key = asset_key(entry.name)
    partitioned = entry.cursor_field is not None
    translator = ObjectTranslator(
        key,
        entry,
        GROUP_PREFIX + entry.kind,
        (
            f"Salesforce {entry.name}, extracted with Bulk API 2.0 and loaded with dlt into "
            f"salesforce.{table_name(entry.name)}. Partitioned on {entry.cursor_field}."
            if partitioned
            else f"Salesforce {entry.name}, fully refreshed on every run."
        ),
        {"salesforce", "dlt", destination_from_env()},
    )
    spec = translator.spec()

    @dg.asset(
        key=spec.key,
        group_name=spec.group_name,
        kinds=spec.kinds,
        description=spec.description,
        owners=list(spec.owners),
        tags=dict(spec.tags),
        partitions_def=partitions_def(catalog) if partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
        automation_condition=resync_condition(catalog, settings or AutomationSettings()) if partitioned else None,
        pool=POOL,
        check_specs=check_specs(key),
        metadata={"salesforce/weight": entry.weight},
    )
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
            window = context.partition_time_window
            since, until = window.start, window.end
        description = "full refresh" if full_refresh else f"{since.isoformat()} .. {until.isoformat()}"
        context.log.info(f"[{entry.name}] {description}")
        target = warehouse.warehouse()
        before = target.count_rows(table_name(entry.name), entry.cursor_field, since, until)
        chunks = DagsterDltChunks(context, translator)
        result = sync_with(
            salesforce,
            warehouse,
            pipeline_settings,
            entry,
            target,
            since=since,
            until=until,
            full_refresh=full_refresh,
            run_chunk=chunks,
        )
        checks = evaluate_checks(salesforce, target, entry, result, since, until, rows_before=before)
        metadata = _metadata(result, description)
        descriptions = {
            column: f"{result.field_info[api][1]} ({api}, {result.field_info[api][0]})"
            for api, column in result.columns.items()
        }
        metadata.update(chunks.merged(descriptions))
        # dagster-dlt names the table after dlt's schema, not the dataset: name it as the warehouse does
        metadata["dagster/table_name"] = dg.MetadataValue.text(f"{result.dataset}.{result.table}")
        metadata["dagster/row_count"] = dg.MetadataValue.int(target.count_rows(result.table))
        if partitioned and not full_refresh and len(context.partition_keys) == 1:
            metadata["dagster/partition_row_count"] = dg.MetadataValue.int(
                target.count_rows(result.table, entry.cursor_field, since, until)
            )
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _object_asset


def build_assets(catalog: Catalog, settings: AutomationSettings | None = None) -> list[dg.AssetsDefinition]:
    return [build_object_asset(entry, catalog, settings) for entry in catalog.objects]
