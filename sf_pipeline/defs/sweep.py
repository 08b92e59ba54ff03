"""The Id sweep in Dagster: an asset check ``ids_match_salesforce`` on every object, executed on its own
(a check-only run of the ``salesforce_id_sweep`` job, from the UI or the weekly schedule). Executing it runs
``sweep_ids``: rows Salesforce no longer has are deleted or flagged, and the check reports the counts."""

from collections.abc import Iterator

import dagster as dg

from ..catalog import Catalog
from ..datapath.configured import sweep_with
from ..datapath.reconcile import SweepResult
from .assets import ID_SWEEP_CHECK, POOL, asset_key
from .resources import PipelineSettings, SalesforceResource, WarehouseResource

SWEEP_JOB = "salesforce_id_sweep"


def _metadata(result: SweepResult) -> dict[str, dg.MetadataValue]:
    c = result.comparison
    return {
        "salesforce_ids": dg.MetadataValue.int(c.salesforce_ids),
        "table_rows_before": dg.MetadataValue.int(c.table_rows),
        "gone_from_salesforce": dg.MetadataValue.int(c.gone_from_salesforce),
        "action": dg.MetadataValue.text("deleted" if result.mode == "delete" else "flagged (_sf_hard_deleted_at)"),
        "already_flagged": dg.MetadataValue.int(c.already_flagged),
        "missing_in_table": dg.MetadataValue.int(c.missing_in_table),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "peak_rss_mb": dg.MetadataValue.float(round(result.peak_rss_mb, 1)),
        "salesforce_api_calls": dg.MetadataValue.int(result.api_calls),
        "org_api_usage": dg.MetadataValue.text(result.api_usage or "unknown"),
    }


def sweep_requested(context: dg.AssetCheckExecutionContext) -> bool:
    """The sweep runs in a run of checks alone: its own job and schedule, or its check executed on its own.
    Dagster selects every check of a materialized asset (the UI's Materialize sends them all, and a launch with
    no check selection means all), so being selected beside the asset is no request for a full Id extract."""
    return not context.op_execution_context.job_def.asset_layer.selected_asset_keys


def build_id_sweep(catalog: Catalog) -> tuple[dg.AssetChecksDefinition, "dg.UnresolvedAssetJobDefinition"]:
    by_key = {asset_key(e.name): e for e in catalog.objects}
    specs = [
        dg.AssetCheckSpec(
            ID_SWEEP_CHECK,
            asset=key,
            description=(
                "The table's Ids = the Ids Salesforce holds now. Executing it deletes (or flags, per the catalog's "
                "hard_deletes) rows Salesforce no longer has; a warning when Salesforce has Ids not loaded yet"
            ),
        )
        for key in by_key
    ]

    @dg.multi_asset_check(name="salesforce_ids_sweep_check", specs=specs, can_subset=True, pool=POOL)
    def id_sweep(
        context: dg.AssetCheckExecutionContext,
        salesforce: SalesforceResource,
        warehouse: WarehouseResource,
        pipeline_settings: PipelineSettings,
    ) -> Iterator[dg.AssetCheckResult]:
        if not sweep_requested(context):
            context.log.info(
                "Id sweep left out: a materialization runs its objects' cheap checks; the sweep (a full Id extract) "
                f"runs from the {SWEEP_JOB} job and its schedule, or when its check is executed alone"
            )
            return
        target = warehouse.warehouse()
        for check_key in context.selected_asset_check_keys:
            entry = by_key[check_key.asset_key]
            context.log.info(f"[{entry.name}] Id sweep ({entry.hard_deletes} rows Salesforce no longer has)")
            result = sweep_with(salesforce, pipeline_settings, entry, target, warehouse.staging_file_format)
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=ID_SWEEP_CHECK,
                passed=result.ids_match,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=_metadata(result),
            )

    job = dg.define_asset_job(
        SWEEP_JOB,
        selection=dg.AssetSelection.checks(id_sweep),
        description="The Id sweep: launch with one object's ids_match_salesforce check selected per run",
    )
    return id_sweep, job
