"""The change sensor: asks each object cheaply (a REST ``COUNT()``) whether rows were created, edited or
deleted after its cursor, and requests one run over the partitions that hold those changes, the open
(current) partition included. Per object, its cursor is the end of the last window it counted.

An object is skipped, with the reason in the tick's log, while a run of it is queued or in progress (the
cursor stays, so the next tick counts the same changes again) or while the org's daily API budget is
under the floor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from ..catalog import Catalog
from ..salesforce.soql import count_query
from .assets import asset_key, partitions_def
from .automation import AutomationSettings, budget_reason, pending_objects
from .jobs import CONCURRENCY_TAG, job_name, run_tags
from .resources import SalesforceResource

SENSOR_NAME = "salesforce_change_sensor"


def build_change_sensor(catalog: Catalog, jobs: list, settings: AutomationSettings) -> dg.SensorDefinition:
    parts = partitions_def(catalog)
    objects = [e for e in catalog.objects if e.cursor_field]
    lookback = timedelta(hours=settings.first_lookback_hours)

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        jobs=jobs,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Requests a run for each object whose rows changed in Salesforce since the last tick, over the "
            f"partitions holding the changes (every {settings.sensor_interval_seconds} s)"
        ),
    )
    def salesforce_change_sensor(context: dg.SensorEvaluationContext, salesforce: SalesforceResource):
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        pending = pending_objects(context.instance, {asset_key(e.name): e.name for e in objects})
        requests = []
        with salesforce.client() as client:
            usage, reason = budget_reason(client, settings.api_budget_floor)
            if reason:
                for entry in objects:
                    context.log.info(f"{entry.name}: skipped: {reason}")
                return dg.SkipReason(reason)
            for entry in objects:
                if entry.name in pending:
                    context.log.info(f"{entry.name}: skipped: run {pending[entry.name]} is already queued or running")
                    continue
                until = datetime.now(UTC)
                since = datetime.fromisoformat(cursor[entry.name]) if entry.name in cursor else until - lookback
                soql = count_query(entry.name, entry.cursor_field, since, until, entry.filter)
                changed = client.query(soql, sobject=entry.name, include_deleted=entry.include_deleted)["totalSize"]
                cursor[entry.name] = until.isoformat()
                if not changed:
                    context.log.info(
                        f"{entry.name}: skipped: nothing changed in {since.isoformat()} .. {until.isoformat()}"
                    )
                    continue
                # the partitions holding [since, until]: from since's to the open one that holds now
                keys = [parts.get_partition_key_for_timestamp(t.timestamp()) for t in (max(since, parts.start), until)]
                requests.append(
                    dg.RunRequest(
                        run_key=f"{entry.name}:{since.isoformat()}:{until.isoformat()}",
                        job_name=job_name(entry),
                        asset_selection=[asset_key(entry.name)],
                        tags=run_tags(context.instance, entry, keys[0], keys[-1]),
                    )
                )
                context.log.info(
                    f"{entry.name}: {changed} row(s) created, edited or deleted in {since.isoformat()} .. "
                    f"{until.isoformat()}: run requested for partitions {keys[0]}..{keys[-1]}"
                )
            context.log.info(f"org API usage after this tick: {client.api_usage or usage} ({client.api_calls} call(s))")
        if not requests:
            return dg.SensorResult(
                skip_reason="no object changed, or each one has a run pending", cursor=json.dumps(cursor)
            )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return salesforce_change_sensor


RESYNC_SENSOR_NAME = "salesforce_weekly_resync"


def build_resync_sensor(catalog: Catalog) -> dg.AutomationConditionSensorDefinition:
    """The weekly re-sync of every object's trailing partitions as one Dagster backfill (on the Backfills
    page): Dagster's automation daemon evaluates each asset's ``resync_condition`` and, with
    ``emit_backfills``, launches what it requests as a backfill. Its runs carry the object-load tag, and the
    code location's queue limit keeps them one at a time."""
    return dg.AutomationConditionSensorDefinition(
        RESYNC_SENSOR_NAME,
        target=dg.AssetSelection.assets(*(asset_key(e.name) for e in catalog.objects if e.cursor_field)),
        emit_backfills=True,
        run_tags={CONCURRENCY_TAG: "object"},
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Every Sunday 04:00 UTC: a backfill of the trailing partitions of every object",
    )
