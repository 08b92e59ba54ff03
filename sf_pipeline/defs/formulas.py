"""The formula refresh in Dagster: the ``salesforce_formula_refresh`` job re-reads ``Id`` and the formula fields of
the objects whose catalog keeps them (``formula_fields: include``) and updates only those columns
(``datapath.formulas``), and its daily schedule (off until turned on, like the others) requests it in batches,
within the org's API budget. Each object's refresh is an observation of its asset (the rows changed, the fields,
the route), not a materialization: no partition was reloaded."""

from datetime import date

import dagster as dg

from ..catalog import Catalog, CatalogObject
from ..datapath.configured import refresh_formulas_with
from ..datapath.formulas import FormulaResult
from .assets import POOL, asset_key
from .automation import AutomationSettings
from .jobs import PRIORITY_TAG, object_weights
from .resources import PipelineSettings, SalesforceResource, WarehouseResource
from .schedules import budget_allows

FORMULA_JOB = "salesforce_formula_refresh"
FORMULA_OP = "refresh_formula_fields"


class FormulaRefreshConfig(dg.Config):
    objects: list[str]  # the catalog objects whose formula fields to refresh, one after another


def formula_objects(catalog: Catalog) -> list[CatalogObject]:
    return [e for e in catalog.objects if e.formula_fields == "include"]


def _observation(result: FormulaResult) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=asset_key(result.sobject),
        metadata={
            "formula_fields_refreshed": dg.MetadataValue.json(result.fields),
            "formula_fields_not_loaded_yet": dg.MetadataValue.json(result.skipped),
            "records_read": dg.MetadataValue.int(result.records_read),
            "rows_updated": dg.MetadataValue.int(result.rows_updated),
            "route": dg.MetadataValue.text(result.route or "none"),
            "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
            "salesforce_api_calls": dg.MetadataValue.int(result.api_calls),
        },
    )


def _refresh_job(catalog: Catalog) -> dg.JobDefinition:
    @dg.op(name=FORMULA_OP, pool=POOL, description="Id and formula fields read again; those columns updated")
    def refresh_formula_fields(
        context: dg.OpExecutionContext,
        config: FormulaRefreshConfig,
        salesforce: SalesforceResource,
        warehouse: WarehouseResource,
        pipeline_settings: PipelineSettings,
    ) -> None:
        target = warehouse.warehouse()
        for name in config.objects:
            entry = catalog.get(name)
            result = refresh_formulas_with(salesforce, pipeline_settings, entry, target, warehouse.staging_file_format)
            context.log_event(_observation(result))

    @dg.job(
        name=FORMULA_JOB, description="Formula fields refreshed alone: Id and the formulas read, those columns updated"
    )
    def salesforce_formula_refresh() -> None:
        refresh_formula_fields()

    return salesforce_formula_refresh


def _requests(
    entries: list[CatalogObject], weights: dict[str, int], day: date, batch_objects: int
) -> list[dg.RunRequest]:
    """A run request a batch of objects, heaviest first."""
    ordered = sorted(entries, key=lambda e: (-weights[e.name], e.name))
    requests = []
    for start in range(0, len(ordered), batch_objects):
        batch = [e.name for e in ordered[start : start + batch_objects]]
        requests.append(
            dg.RunRequest(
                run_key=f"formula-refresh:{day}:{start}",
                run_config={"ops": {FORMULA_OP: {"config": {"objects": batch}}}},
                tags={PRIORITY_TAG: str(weights[batch[0]])},
            )
        )
    return requests


def build_formula_refresh(
    catalog: Catalog, settings: AutomationSettings
) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The job and its daily schedule (off until turned on)."""
    job = _refresh_job(catalog)
    entries = formula_objects(catalog)

    @dg.schedule(
        name="salesforce_daily_formula_refresh",
        cron_schedule=settings.formula_cron,
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Re-reads Id and the formula fields of each object whose catalog keeps them and updates only those "
            "columns (formula values change without SystemModstamp moving, so no window sees them)"
        ),
    )
    def salesforce_daily_formula_refresh(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> list[dg.RunRequest]:
        if not entries:
            context.log.info("no catalog object keeps formula fields (formula_fields: include)")
            return []
        if not budget_allows(context, salesforce, settings.api_budget_floor, entries):
            return []
        weights = object_weights(context.instance, entries)
        return _requests(entries, weights, context.scheduled_execution_time.date(), settings.batch_objects)

    return job, salesforce_daily_formula_refresh
