"""Schedules: a daily run per object for its latest complete partition, a weekly full reload of the
objects that keep formula fields (formula values change without SystemModstamp moving), and the weekly Id
sweep that finds hard deletes. Every schedule skips objects while the org's API budget is under the floor,
saying so in the tick's log. (The weekly re-sync of trailing partitions is a Dagster backfill: sensors.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from ..catalog import Catalog, CatalogObject
from .assets import asset_key, latest_complete_partition, partitions_def
from .automation import AutomationSettings, budget_reason
from .jobs import FULL_REFRESH_JOB, PARTITIONED_JOB, PRIORITY_TAG, run_tags
from .resources import SalesforceResource
from .sweep import ID_SWEEP_CHECK, SWEEP_JOB


def _heaviest_first(instance: dg.DagsterInstance, entries: list[CatalogObject]) -> list[CatalogObject]:
    return sorted(entries, key=lambda e: -int(run_tags(instance, e)[PRIORITY_TAG]))


def _budget_allows(
    context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource, floor: float, entries
) -> bool:
    with salesforce.client() as client:
        usage, reason = budget_reason(client, floor)
    if reason:
        for entry in entries:
            context.log.info(f"{entry.name}: skipped: {reason}")
        return False
    context.log.info(f"org API usage: {usage} ({usage.remaining_fraction:.1%} of the daily budget left)")
    return True


def _keeps_formulas(instance: dg.DagsterInstance, entry: CatalogObject) -> bool:
    """The catalog keeps the object's formula fields and its last load saw some."""
    if entry.formula_fields != "include":
        return False
    event = instance.get_latest_materialization_event(asset_key(entry.name))
    materialization = event.asset_materialization if event else None
    return bool(
        materialization
        and materialization.metadata.get("formula_fields")
        and materialization.metadata["formula_fields"].value
    )


def build_schedules(catalog: Catalog, jobs: list, settings: AutomationSettings) -> list[dg.ScheduleDefinition]:
    parts = partitions_def(catalog)
    partitioned = [e for e in catalog.objects if e.cursor_field]
    full = [e for e in catalog.objects if not e.cursor_field]
    by_name = {j.name: j for j in jobs}
    floor = settings.api_budget_floor
    schedules = []
    if full:

        @dg.schedule(
            name="salesforce_daily_full_refresh",
            cron_schedule="0 2 * * *",
            job=by_name[FULL_REFRESH_JOB],
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Objects without a cursor field, fully refreshed daily",
        )
        def salesforce_daily_full_refresh(
            context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
        ) -> Iterator[dg.RunRequest]:
            if not _budget_allows(context, salesforce, floor, full):
                return
            for entry in _heaviest_first(context.instance, full):
                yield dg.RunRequest(
                    run_key=f"{entry.name}:{context.scheduled_execution_time.date()}",
                    asset_selection=[asset_key(entry.name)],
                    tags=run_tags(context.instance, entry),
                )

        schedules.append(salesforce_daily_full_refresh)
    if not partitioned:
        return schedules

    @dg.schedule(
        name="salesforce_daily",
        cron_schedule="0 2 * * *",
        job=by_name[PARTITIONED_JOB],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every object's latest complete daily partition, heaviest first",
    )
    def salesforce_daily(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> Iterator[dg.RunRequest]:
        latest = latest_complete_partition(parts, context.scheduled_execution_time)
        if latest is None or not _budget_allows(context, salesforce, floor, partitioned):
            return
        for entry in _heaviest_first(context.instance, partitioned):
            yield dg.RunRequest(
                run_key=f"{entry.name}:{latest}",
                asset_selection=[asset_key(entry.name)],
                partition_key=latest,
                tags=run_tags(context.instance, entry),
            )

    formula_objects = [e for e in partitioned if e.formula_fields == "include"]

    @dg.schedule(
        name="salesforce_weekly_formula_reload",
        cron_schedule=settings.resync_cron,
        job=by_name[PARTITIONED_JOB],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Reloads in full each object whose catalog entry keeps formula fields (formula values change "
            "without SystemModstamp moving, so no window sees them)"
        ),
    )
    def salesforce_weekly_formula_reload(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> Iterator[dg.RunRequest]:
        keys = parts.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys or not _budget_allows(context, salesforce, floor, formula_objects):
            return
        for entry in _heaviest_first(context.instance, formula_objects):
            if not _keeps_formulas(context.instance, entry):
                context.log.info(f"{entry.name}: skipped: its last load saw no formula field")
                continue
            context.log.info(f"{entry.name}: keeps formula fields: reloaded in full")
            yield dg.RunRequest(
                run_key=f"{entry.name}:full:{keys[-1]}",
                asset_selection=[asset_key(entry.name)],
                run_config={"ops": {asset_key(entry.name).to_python_identifier(): {"config": {"full_refresh": True}}}},
                tags=run_tags(context.instance, entry, keys[0], keys[-1]),
            )

    @dg.schedule(
        name="salesforce_weekly_id_sweep",
        cron_schedule="0 6 * * 0",
        job=by_name[SWEEP_JOB],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Finds rows Salesforce no longer has (hard deletes, purged recycle bin) and deletes or flags them",
    )
    def salesforce_weekly_id_sweep(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> Iterator[dg.RunRequest]:
        if not _budget_allows(context, salesforce, floor, list(catalog.objects)):
            return
        for entry in _heaviest_first(context.instance, list(catalog.objects)):
            yield dg.RunRequest(
                run_key=f"{entry.name}:sweep:{context.scheduled_execution_time.date()}",
                asset_check_keys=[dg.AssetCheckKey(asset_key(entry.name), ID_SWEEP_CHECK)],
                tags=run_tags(context.instance, entry),
            )

    return [*schedules, salesforce_daily, salesforce_weekly_formula_reload, salesforce_weekly_id_sweep]
