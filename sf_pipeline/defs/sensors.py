"""The change sensor: asks every object cheaply whether rows were created, edited or deleted after its cursor
(``salesforce/changes.py``: a bounded number of API calls a tick), and requests runs for the changed ones,
batched (``batches.py``): each object loads just the span it changed in, inside the partitions that hold it,
the open (current) partition included. Per object, its cursor is the end of the last window it asked about:
``latestDateCovered`` for the objects asked by the replication API, now less the window overlap for those
asked by ``COUNT()`` (a record committed late is counted by a later tick, not passed over). The replication
API sees whole minutes: a tick shortly before a minute's end waits for it (``changes.minute_close_wait``).

An object is skipped, with the reason in the tick's log, while a run of it is queued or in progress (the
cursor stays, so the next tick counts the same changes again) or while the org's daily API budget is
under the floor."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from ..catalog import Catalog, CatalogObject
from ..salesforce.changes import ChangeAsk, Changed, count_changes, minute_close_wait, replicable
from .assets import asset_key, partitions_def, weight_hint
from .automation import AutomationSettings, budget_reason, bulk_jobs_reason, pending_objects
from .batches import ObjectLoad, batched_requests, group_by_range
from .jobs import object_weights
from .resources import PipelineSettings, SalesforceResource

SENSOR_NAME = "salesforce_change_sensor"


def _changed_loads(
    context: dg.SensorEvaluationContext,
    changes: dict[ChangeAsk, Changed],
    by_name: dict[str, CatalogObject],
    parts: dg.TimeWindowPartitionsDefinition,
    cursor: dict[str, str],
    bulk_wait: str | None,
    rest_max: int,
) -> list[tuple[tuple[str, str], ObjectLoad]]:
    """Each changed object's load over the span asked about, keyed by the partitions holding it (from the
    cursor's to the one holding the answer's end: the open one); every cursor moves to its answer's end. While
    the org's Bulk jobs are low (``bulk_wait`` says why), a change too big for REST waits: cursor kept."""
    loads = []
    weights = object_weights(
        context.instance, [by_name[ask.sobject] for ask, changed in changes.items() if changed.rows]
    )
    for ask, changed in changes.items():
        entry, since, covered = by_name[ask.sobject], ask.since, changed.covered
        if bulk_wait and changed.rows > rest_max and entry.route == "bulk":
            context.log.info(f"{entry.name}: waits: {changed.rows} row(s) changed need a Bulk job; {bulk_wait}")
            continue
        cursor[entry.name] = covered.isoformat()
        if not changed.rows:
            context.log.info(f"{entry.name}: skipped: nothing changed in {since.isoformat()} .. {covered.isoformat()}")
            continue
        since = max(since, parts.start)
        keys = tuple(parts.get_partition_key_for_timestamp(t.timestamp()) for t in (since, covered))
        loads.append((keys, ObjectLoad(entry, weights[entry.name], since, covered)))
        context.log.info(
            f"{entry.name}: {changed.rows} row(s) created, edited or deleted in {since.isoformat()} .. "
            f"{covered.isoformat()}: requested (partitions {keys[0]}..{keys[1]})"
        )
    return loads


def _asks(
    context: dg.SensorEvaluationContext,
    objects: list[CatalogObject],
    pending: dict[str, str],
    cursor: dict[str, str],
    now: datetime,
    lookback: timedelta,
) -> list[ChangeAsk]:
    """What the tick asks of each object without a run pending: its changes since its cursor (the first time,
    since ``lookback`` ago) up to ``now``."""
    asks = []
    for entry in objects:
        if entry.name in pending:
            context.log.info(f"{entry.name}: skipped: run {pending[entry.name]} is already queued or running")
            continue
        since = datetime.fromisoformat(cursor[entry.name]) if entry.name in cursor else now - lookback
        asks.append(ChangeAsk(entry.name, entry.cursor_field, since, now, entry.filter, entry.include_deleted))
    return asks


def _after_the_minute(
    context: dg.SensorEvaluationContext, asks: list[ChangeAsk], now: datetime, interval: timedelta
) -> datetime:
    """Where the tick's asks end: after the current minute when it ends before the next tick would come and an
    object is asked by the replication resources (they see whole minutes), so a change made this minute
    reaches a run at the minute's end, not an interval later; else ``now``."""
    wait = minute_close_wait(now, interval)
    if not wait or not any(replicable(ask, now) for ask in asks):
        return now
    context.log.info(
        f"waiting {wait.total_seconds():.1f} s for the minute to end: Salesforce's replication resources see "
        f"whole minutes, and the next tick is {interval.total_seconds():.0f} s away"
    )
    time.sleep(wait.total_seconds())
    return datetime.now(UTC)


def build_change_sensor(catalog: Catalog, jobs: list, settings: AutomationSettings) -> dg.SensorDefinition:
    parts = partitions_def(catalog)
    objects = [e for e in catalog.objects if e.cursor_field]
    lookback = timedelta(hours=settings.first_lookback_hours)
    by_name = {e.name: e for e in objects}

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        jobs=jobs,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Requests runs for the objects whose rows changed in Salesforce since the last tick, over the span "
            f"that changed, in batches of up to {settings.batch_objects} objects (every "
            f"{settings.sensor_interval_seconds} s)"
        ),
    )
    def salesforce_change_sensor(
        context: dg.SensorEvaluationContext, salesforce: SalesforceResource, pipeline_settings: PipelineSettings
    ):
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        pending = pending_objects(context.instance, {asset_key(e.name): e.name for e in objects})
        with salesforce.client() as client:
            usage, reason = budget_reason(client, settings.api_budget_floor)
            if reason:
                for entry in objects:
                    context.log.info(f"{entry.name}: skipped: {reason}")
                return dg.SkipReason(reason)
            now = datetime.now(UTC)
            asks = _asks(context, objects, pending, cursor, now, lookback)
            until = _after_the_minute(context, asks, now, timedelta(seconds=settings.sensor_interval_seconds))
            asks = [replace(ask, until=until) for ask in asks]
            changes = count_changes(client, asks, until, settle=pipeline_settings.window_overlap)
            bulk_wait = bulk_jobs_reason(client, settings.api_budget_floor)
            loads = _changed_loads(context, changes, by_name, parts, cursor, bulk_wait, salesforce.rest_max_records)
            # the tick's whole cost, the budget check included: what the org's daily allowance pays for sensing
            context.log.info(
                f"{len(asks)} object(s) asked; this tick spent {client.api_calls} API call(s); org API usage "
                f"after it: {client.api_usage or usage}"
            )
        requests = [
            request
            for key_range, group in group_by_range(loads).items()
            for request in batched_requests(
                group,
                run_key=f"changes:{until.isoformat()}:{key_range[0]}",
                batch_objects=settings.batch_objects,
                partition_range=key_range,
            )
        ]
        if not requests:
            return dg.SensorResult(
                skip_reason="no object changed, or each one has a run pending", cursor=json.dumps(cursor)
            )
        context.log.info(f"{len(loads)} changed object(s) in {len(requests)} run(s)")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return salesforce_change_sensor


INITIAL_LOAD_SENSOR = "salesforce_initial_load"


def build_initial_load_sensor(catalog: Catalog, jobs: list, settings: AutomationSettings) -> dg.SensorDefinition:
    """Turned on, it loads every object never loaded, full history, in batches heaviest first: a whole org's
    first load without launching hundreds of runs by hand. It asks Salesforce nothing; each object is
    requested once (its cursor lists them), so a failed object waits for a re-execution, not a new tick."""
    parts = partitions_def(catalog)

    @dg.sensor(
        name=INITIAL_LOAD_SENSOR,
        minimum_interval_seconds=30,
        jobs=jobs,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Loads the full history of every object not loaded yet, in batches of up to "
            f"{settings.batch_objects} objects, heaviest first"
        ),
    )
    def salesforce_initial_load(context: dg.SensorEvaluationContext):
        requested: set[str] = set(json.loads(context.cursor)) if context.cursor else set()
        keys = {asset_key(e.name): e for e in catalog.objects if e.name not in requested}
        loaded = {
            r.asset_entry.asset_key
            for r in context.instance.get_asset_records(list(keys))
            if r.asset_entry.last_materialization_record
        }
        pending = pending_objects(context.instance, {k: e.name for k, e in keys.items()})
        todo = [e for k, e in keys.items() if k not in loaded and e.name not in pending]
        if not todo:
            return dg.SkipReason("every object is loaded or was requested")
        latest = parts.get_last_partition_key()
        # never loaded: the catalog's hint is all there is to weigh them by
        requests = batched_requests(
            [ObjectLoad(e, weight_hint(e)) for e in todo if e.cursor_field],
            run_key=f"initial:{len(requested)}",
            batch_objects=settings.batch_objects,
            partition_range=(parts.get_first_partition_key(), latest),
        ) + batched_requests(
            [ObjectLoad(e, weight_hint(e)) for e in todo if not e.cursor_field],
            run_key=f"initial:{len(requested)}",
            batch_objects=settings.batch_objects,
        )
        context.log.info(f"{len(todo)} object(s) never loaded: {len(requests)} run(s) requested, heaviest first")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(requested | {e.name for e in todo})))

    return salesforce_initial_load
