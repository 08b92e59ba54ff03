"""What the sensor and the schedules share: their settings (one home, read from the environment when the
code location loads), the org's API budget gate, and which objects already have a run pending.

Every decision is a line in the tick's log, so the UI's tick history explains each skipped object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import dagster as dg

from ..errors import SettingsError
from ..salesforce import ApiUsage, SalesforceClient

PENDING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class AutomationSettings:
    """How often the change sensor looks, how far back it looks the first time, how many trailing days the
    weekly re-sync reloads, the share of the org's daily API budget automation never spends, and how many
    objects one run loads."""

    sensor_interval_seconds: int = field(default=300, metadata={"doc": "seconds between the change sensor's ticks"})
    first_lookback_hours: int = field(default=24, metadata={"doc": "how far back the sensor's first tick looks"})
    resync_days: int = field(
        default=7, metadata={"doc": "the weekly re-sync reloads the partitions holding the last N days"}
    )
    resync_cron: str = field(
        default="0 4 * * 0",
        metadata={"doc": "when the weekly re-sync and the formula reload run (cron, UTC; default Sundays 04:00)"},
    )
    api_budget_floor: float = field(
        default=0.10,
        metadata={"doc": "the sensor and schedules skip objects while less of the org's daily API budget remains"},
    )
    batch_objects: int = field(
        default=100, metadata={"doc": "objects one sensor, schedule or initial-load run loads, one after another"}
    )

    ENV = {
        "sensor_interval_seconds": "SF_PIPELINE_SENSOR_INTERVAL_SECONDS",
        "first_lookback_hours": "SF_PIPELINE_SENSOR_LOOKBACK_HOURS",
        "resync_days": "SF_PIPELINE_RESYNC_DAYS",
        "resync_cron": "SF_PIPELINE_RESYNC_CRON",
        "api_budget_floor": "SF_PIPELINE_API_BUDGET_FLOOR",
        "batch_objects": "SF_PIPELINE_BATCH_OBJECTS",
    }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AutomationSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            var = cls.ENV[f.name]
            if not env.get(var):
                continue
            kind = {"api_budget_floor": float, "resync_cron": str}.get(f.name, int)
            try:
                values[f.name] = kind(env[var])
            except ValueError:
                raise SettingsError(f"{var} must be a {kind.__name__}, got {env[var]!r}") from None
        settings = cls(**values)  # type: ignore[arg-type]
        if not 0 <= settings.api_budget_floor < 1:
            raise SettingsError(
                f"{cls.ENV['api_budget_floor']} must be a fraction in [0, 1), got {settings.api_budget_floor}"
            )
        if not _is_cron(settings.resync_cron):
            raise SettingsError(f"{cls.ENV['resync_cron']} is not a cron schedule: {settings.resync_cron!r}")
        for name in ("sensor_interval_seconds", "first_lookback_hours", "resync_days", "batch_objects"):
            if getattr(settings, name) < 1:
                raise SettingsError(f"{cls.ENV[name]} must be at least 1, got {getattr(settings, name)}")
        return settings


def budget_reason(client: SalesforceClient, floor: float) -> tuple[ApiUsage, str | None]:
    """The org's API usage, and why automation must wait (None when the budget allows a run)."""
    usage = client.org_api_usage()
    if usage.below(floor):
        return usage, (
            f"org API budget: {usage} requests used today, {usage.remaining_fraction:.1%} left, "
            f"under the floor of {floor:.0%} ({AutomationSettings.ENV['api_budget_floor']})"
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
        f"the floor of {floor:.0%} ({AutomationSettings.ENV['api_budget_floor']}); small changes go by REST"
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
