"""Schedules, each requesting batched runs (batches.py), heaviest first: every object's previous day daily
(a window inside its partition), the weekly re-sync of the partitions holding the last days, a weekly full reload of the
objects that keep formula fields (formula values change without SystemModstamp moving), and the weekly Id
sweep that finds hard deletes. Every schedule skips objects while the org's API budget is under the floor,
saying so in the tick's log."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import dagster as dg

from ..catalog import Catalog, CatalogObject
from .assets import partitions_def
from .automation import AutomationSettings, budget_reason
from .batches import ObjectLoad, batched_requests
from .jobs import FULL_REFRESH_JOB, PARTITIONED_JOB, latest_materializations, object_weights
from .resources import SalesforceResource
from .sweep import SWEEP_JOB


def _loads(instance: dg.DagsterInstance, entries: list[CatalogObject], **kwargs: object) -> list[ObjectLoad]:
    weights = object_weights(instance, entries)
    return [ObjectLoad(e, weights[e.name], **kwargs) for e in entries]  # type: ignore[arg-type]


def budget_allows(context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource, floor: float, entries) -> bool:
    """Whether the org's API budget allows a schedule's runs; if not, each object's skip is in the tick's log."""
    with salesforce.client() as client:
        usage, reason = budget_reason(client, floor)
    if reason:
        for entry in entries:
            context.log.info(f"{entry.name}: skipped: {reason}")
        return False
    context.log.info(f"org API usage: {usage} ({usage.remaining_fraction:.1%} of the daily budget left)")
    return True


def _keeps_formulas(materialization: dg.AssetMaterialization | None, entry: CatalogObject) -> bool:
    """The catalog keeps the object's formula fields and its last load saw some."""
    if entry.formula_fields != "include":
        return False
    return bool(
        materialization
        and materialization.metadata.get("formula_fields")
        and materialization.metadata["formula_fields"].value
    )


def _daily_full_refresh(entries: list[CatalogObject], job, settings: AutomationSettings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="salesforce_daily_full_refresh",
        cron_schedule="0 2 * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Objects without a cursor field, fully refreshed daily, in batches",
    )
    def salesforce_daily_full_refresh(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> list[dg.RunRequest]:
        if not budget_allows(context, salesforce, settings.api_budget_floor, entries):
            return []
        day = context.scheduled_execution_time.date()
        return batched_requests(
            _loads(context.instance, entries), run_key=f"full:{day}", batch_objects=settings.batch_objects
        )

    return salesforce_daily_full_refresh


def _daily(
    parts: dg.TimeWindowPartitionsDefinition, entries: list[CatalogObject], job, settings: AutomationSettings
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="salesforce_daily",
        cron_schedule="0 2 * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every object's previous day (inside its partition), in batches, heaviest first",
    )
    def salesforce_daily(context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource) -> list[dg.RunRequest]:
        until = datetime.combine(context.scheduled_execution_time.date(), time(), UTC)
        since = until - timedelta(days=1)
        if since < parts.start or not budget_allows(context, salesforce, settings.api_budget_floor, entries):
            return []
        return batched_requests(
            _loads(context.instance, entries, since=since, until=until),
            run_key=f"day:{since.date()}",
            batch_objects=settings.batch_objects,
            partition_key=parts.get_partition_key_for_timestamp(since.timestamp()),
        )

    return salesforce_daily


def _weekly_resync(
    catalog: Catalog, entries: list[CatalogObject], job, settings: AutomationSettings
) -> dg.ScheduleDefinition:
    parts = partitions_def(catalog)
    first_day = datetime.combine(catalog.partition_start, time(), UTC)

    @dg.schedule(
        name="salesforce_weekly_resync",
        cron_schedule=settings.resync_cron,
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Reloads the partitions holding the last {settings.resync_days} days of every object, in batches, "
            "heaviest first: what a missed sensor tick left behind"
        ),
    )
    def salesforce_weekly_resync(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> list[dg.RunRequest]:
        now = context.scheduled_execution_time
        start = max(now - timedelta(days=settings.resync_days), first_day)
        keys = tuple(parts.get_partition_key_for_timestamp(t.timestamp()) for t in (start, now))
        if not budget_allows(context, salesforce, settings.api_budget_floor, entries):
            return []
        context.log.info(f"re-sync of partitions {keys[0]}..{keys[1]}")
        return batched_requests(
            _loads(context.instance, entries),
            run_key=f"resync:{now.date()}",
            batch_objects=settings.batch_objects,
            partition_range=keys,
        )

    return salesforce_weekly_resync


def _formula_reload(
    parts: dg.TimeWindowPartitionsDefinition, entries: list[CatalogObject], job, settings: AutomationSettings
) -> dg.ScheduleDefinition:
    formula_objects = [e for e in entries if e.formula_fields == "include"]

    @dg.schedule(
        name="salesforce_weekly_formula_reload",
        cron_schedule=settings.resync_cron,
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Reloads in full each object whose catalog entry keeps formula fields (formula values change "
            "without SystemModstamp moving, so no window sees them)"
        ),
    )
    def salesforce_weekly_formula_reload(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> list[dg.RunRequest]:
        keys = parts.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys or not budget_allows(context, salesforce, settings.api_budget_floor, formula_objects):
            return []
        reload = []
        latest = latest_materializations(context.instance, formula_objects)
        for entry in formula_objects:
            if not _keeps_formulas(latest.get(entry.name), entry):
                context.log.info(f"{entry.name}: skipped: its last load saw no formula field")
                continue
            context.log.info(f"{entry.name}: keeps formula fields: reloaded in full")
            reload.append(entry)
        return batched_requests(
            _loads(context.instance, reload, full_refresh=True),
            run_key=f"formulas:{keys[-1]}",
            batch_objects=settings.batch_objects,
            partition_range=(keys[0], keys[-1]),
        )

    return salesforce_weekly_formula_reload


def _weekly_id_sweep(entries: list[CatalogObject], job, settings: AutomationSettings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="salesforce_weekly_id_sweep",
        cron_schedule="0 6 * * 0",
        job=job,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Finds rows Salesforce no longer has (hard deletes, purged recycle bin) and deletes or flags them",
    )
    def salesforce_weekly_id_sweep(
        context: dg.ScheduleEvaluationContext, salesforce: SalesforceResource
    ) -> list[dg.RunRequest]:
        if not budget_allows(context, salesforce, settings.api_budget_floor, entries):
            return []
        return batched_requests(
            _loads(context.instance, entries),
            run_key=f"sweep:{context.scheduled_execution_time.date()}",
            batch_objects=settings.batch_objects,
            checks="sweep",
            job=SWEEP_JOB,
        )

    return salesforce_weekly_id_sweep


def build_schedules(catalog: Catalog, jobs: list, settings: AutomationSettings) -> list[dg.ScheduleDefinition]:
    parts = partitions_def(catalog)
    partitioned = [e for e in catalog.objects if e.cursor_field]
    full = [e for e in catalog.objects if not e.cursor_field]
    by_name = {j.name: j for j in jobs}
    schedules = [_daily_full_refresh(full, by_name[FULL_REFRESH_JOB], settings)] if full else []
    if partitioned:
        job = by_name[PARTITIONED_JOB]
        schedules += [
            _daily(parts, partitioned, job, settings),
            _weekly_resync(catalog, partitioned, job, settings),
            _formula_reload(parts, partitioned, job, settings),
        ]
    return [*schedules, _weekly_id_sweep(list(catalog.objects), by_name[SWEEP_JOB], settings)]
