"""Schedules: a daily run per object for its latest partition, and a weekly re-sync of a trailing window
per object as one run over the partition range (single-run backfill)."""

import dagster as dg

from ..catalog import Catalog
from .assets import asset_key, partitions_def
from .jobs import FULL_REFRESH_JOB, PARTITIONED_JOB, PRIORITY_TAG, run_tags

RESYNC_PARTITIONS = 7


def build_schedules(catalog: Catalog, jobs: list) -> list[dg.ScheduleDefinition]:
    parts = partitions_def(catalog)
    partitioned = [e for e in catalog.objects if e.cursor_field]
    full = [e for e in catalog.objects if not e.cursor_field]
    by_name = {j.name: j for j in jobs}
    schedules = []
    if full:

        @dg.schedule(
            name="salesforce_daily_full_refresh",
            cron_schedule="0 2 * * *",
            job=by_name[FULL_REFRESH_JOB],
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Objects without a cursor field, fully refreshed daily",
        )
        def salesforce_daily_full_refresh(context: dg.ScheduleEvaluationContext):
            for entry in full:
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
        description="Every object's latest daily partition, heaviest first",
    )
    def salesforce_daily(context: dg.ScheduleEvaluationContext):
        latest = parts.get_partition_keys(current_time=context.scheduled_execution_time)[-1]
        for entry in sorted(partitioned, key=lambda e: -int(run_tags(context.instance, e)[PRIORITY_TAG])):
            yield dg.RunRequest(
                run_key=f"{entry.name}:{latest}",
                asset_selection=[asset_key(entry.name)],
                partition_key=latest,
                tags=run_tags(context.instance, entry),
            )

    @dg.schedule(
        name="salesforce_weekly_resync",
        cron_schedule="0 4 * * 0",
        job=by_name[PARTITIONED_JOB],
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Re-syncs the trailing {RESYNC_PARTITIONS} partitions of every object, one run each",
    )
    def salesforce_weekly_resync(context: dg.ScheduleEvaluationContext):
        keys = parts.get_partition_keys(current_time=context.scheduled_execution_time)[-RESYNC_PARTITIONS:]
        if not keys:
            return
        for entry in partitioned:
            yield dg.RunRequest(
                run_key=f"{entry.name}:{keys[0]}..{keys[-1]}",
                asset_selection=[asset_key(entry.name)],
                tags=run_tags(context.instance, entry, keys[0], keys[-1]),
            )

    return [*schedules, salesforce_daily, salesforce_weekly_resync]
