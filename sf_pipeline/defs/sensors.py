"""A change sensor: asks each object cheaply (REST COUNT()) whether rows changed after its cursor and
requests one run over the affected partitions. Its cursor (per object, the last window end it covered)
is kept in Dagster."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from ..catalog import Catalog
from ..salesforce.soql import count_query
from .assets import asset_key, partitions_def
from .jobs import job_name, run_tags
from .resources import SalesforceResource

DEFAULT_LOOKBACK = timedelta(days=1)


def build_change_sensor(catalog: Catalog, jobs: list) -> dg.SensorDefinition:
    parts = partitions_def(catalog)
    objects = [e for e in catalog.objects if e.cursor_field]

    @dg.sensor(
        name="salesforce_change_sensor",
        minimum_interval_seconds=300,
        jobs=jobs,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Requests runs for objects whose rows changed after the sensor's cursor",
    )
    def salesforce_change_sensor(context: dg.SensorEvaluationContext, salesforce: SalesforceResource):
        now = datetime.now(UTC)
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests = []
        with salesforce.client() as client:
            for entry in objects:
                since = datetime.fromisoformat(cursor[entry.name]) if entry.name in cursor else now - DEFAULT_LOOKBACK
                soql = count_query(entry.name, entry.cursor_field, since, now)
                changed = client.query(soql, sobject=entry.name, include_deleted=entry.include_deleted)["totalSize"]
                cursor[entry.name] = now.isoformat()
                if not changed:
                    continue
                keys = parts.get_partition_keys_in_time_window(dg.TimeWindow(since, now))
                # changes in the current, still open, period belong to the latest complete partition's
                # successor; until that exists the latest partition is re-synced
                keys = keys or parts.get_partition_keys(current_time=now)[-1:]
                requests.append(
                    dg.RunRequest(
                        run_key=f"{entry.name}:{since.isoformat()}:{now.isoformat()}",
                        job_name=job_name(entry),
                        asset_selection=[asset_key(entry.name)],
                        tags=run_tags(context.instance, entry, keys[0], keys[-1]),
                    )
                )
                context.log.info(
                    f"{entry.name}: {changed} row(s) changed since {since.isoformat()}; "
                    f"partitions {keys[0]}..{keys[-1]}"
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return salesforce_change_sensor
