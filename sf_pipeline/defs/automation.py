"""What the sensor and the schedules share: their settings (one home, read from the environment when the
code location loads), the org's API budget gate, and which objects already have a run pending.

Every decision is a line in the tick's log, so the UI's tick history explains each skipped object."""

from __future__ import annotations

import dagster as dg
from pydantic import field_validator

from ..common.env_settings import EnvSettings, setting
from ..salesforce import ApiUsage, SalesforceClient

PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class AutomationSettings(EnvSettings):
    """How often the change sensor looks, how far back it looks the first time, how many trailing days the
    weekly re-sync reloads, the share of the org's daily API budget automation never spends, and how many
    objects one run loads. Read from the environment when the code location loads."""

    sensor_interval_seconds: int = setting(
        300, "SF_PIPELINE_SENSOR_INTERVAL_SECONDS", "seconds between the change sensor's ticks", ge=1
    )
    first_lookback_hours: int = setting(
        24, "SF_PIPELINE_SENSOR_LOOKBACK_HOURS", "how far back the sensor's first tick looks", ge=1
    )
    resync_days: int = setting(
        7, "SF_PIPELINE_RESYNC_DAYS", "the weekly re-sync reloads the partitions holding the last N days", ge=1
    )
    resync_cron: str = setting(
        "0 4 * * 0",
        "SF_PIPELINE_RESYNC_CRON",
        "when the weekly re-sync and the weekly whole-object formula reload run (cron, UTC; default Sundays 04:00)",
    )
    formula_cron: str = setting(
        "0 3 * * *",
        "SF_PIPELINE_FORMULA_CRON",
        "when the formula refresh (Id and formula fields only) runs (cron, UTC; default daily 03:00)",
    )
    api_budget_floor: float = setting(
        0.10,
        "SF_PIPELINE_API_BUDGET_FLOOR",
        "the sensor and schedules skip objects while less of the org's daily API budget remains",
        ge=0,
        lt=1,
    )
    batch_objects: int = setting(
        100,
        "SF_PIPELINE_BATCH_OBJECTS",
        "objects one sensor, schedule or initial-load run loads, one after another",
        ge=1,
    )

    @field_validator("resync_cron", "formula_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _is_cron(value):
            raise ValueError("not a cron schedule")
        return value


def budget_reason(client: SalesforceClient, floor: float) -> tuple[ApiUsage, str | None]:
    """The org's API usage, and why automation must wait (None when the budget allows a run)."""
    usage = client.org_api_usage()
    if usage.below(floor):
        return usage, (
            f"org API budget: {usage} requests used today, {usage.remaining_fraction:.1%} left, "
            f"under the floor of {floor:.0%} ({AutomationSettings.variable('api_budget_floor')})"
        )
    return usage, None


def bulk_jobs_reason(client: SalesforceClient, floor: float) -> str | None:
    """Why a change too big for REST must wait (None while the org's Bulk API 2.0 query jobs of the day are
    above the floor), from the limits ``budget_reason`` just read."""
    jobs = client.bulk_jobs
    if jobs is None or not jobs.below(floor):
        return None
    return (
        f"the org's Bulk API 2.0 query jobs of the day: {jobs} used, {jobs.remaining_fraction:.1%} left, under "
        f"the floor of {floor:.0%} ({AutomationSettings.variable('api_budget_floor')}); small changes go by REST"
    )


def pending_objects(instance: dg.DagsterInstance, keys: dict[dg.AssetKey, str]) -> dict[str, str]:
    """Objects (asset key -> object name) with a run queued or in progress, however it was launched (the
    object's asset or one of its checks selected), with that run's id."""
    out: dict[str, str] = {}
    for record in instance.get_run_records(dg.RunsFilter(statuses=PENDING_STATUSES)):
        run = record.dagster_run
        selected = [*(run.asset_selection or ()), *(c.asset_key for c in run.asset_check_selection or ())]
        for key in selected:
            if key in keys:
                out.setdefault(keys[key], run.run_id)
    return out


def _is_cron(schedule: str) -> bool:
    """Whether Dagster takes ``schedule`` as a schedule's cron string (its own check, through its public API)."""
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=schedule, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True
