"""Object runs in batches: the objects that share a window run together in one run, executed one object at a
time in process (heaviest first), at most ``batch_objects`` to a run.

A run's fixed cost (a fresh interpreter, the code location imported again, ~20 run events) is paid once per
batch instead of once per object. Each object stays its own step: a failed object fails only itself, and
Dagster's retry (``FROM_FAILURE``) re-runs only the objects that did not finish. The sensor, the schedules and
the initial load all request their runs through ``batched_requests``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

# the tags a run of a partition range carries ("dagster/asset_partition_range_start"/"_end"): documented for
# backfills, exported from no public module
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ..catalog import CatalogObject
from .assets import ID_SWEEP_CHECK, asset_key
from .checks import check_specs
from .jobs import PRIORITY_TAG, job_name

BATCH_TAG = "sf_pipeline/batch"  # "<first object> +N": what the runs list shows for a batched run


@dataclass(frozen=True)
class ObjectLoad:
    """One object in a batch: its weight (queue order) and, for a narrower window than the run's partitions
    (the change sensor's), the span to load."""

    entry: CatalogObject
    weight: int
    since: datetime | None = None
    until: datetime | None = None
    full_refresh: bool = False

    def op_config(self) -> dict[str, object]:
        config: dict[str, object] = {}
        if self.full_refresh:
            config["full_refresh"] = True
        if self.since and self.until:
            config.update(since=self.since.isoformat(), until=self.until.isoformat())
        return config


def op_name(entry: CatalogObject) -> str:
    return asset_key(entry.name).to_python_identifier()


def cheap_checks(entry: CatalogObject) -> list[dg.AssetCheckKey]:
    """The checks every load evaluates; the Id sweep is left out (a full Id extract has its own job)."""
    key = asset_key(entry.name)
    return [dg.AssetCheckKey(key, spec.name) for spec in check_specs(key)]


def batched_requests(
    loads: Iterable[ObjectLoad],
    *,
    run_key: str | None,
    batch_objects: int,
    partition_range: tuple[str, str] | None = None,
    partition_key: str | None = None,
    checks: str = "cheap",
    job: str | None = None,
) -> list[dg.RunRequest]:
    """RunRequests of at most ``batch_objects`` objects each, heaviest batch first, one job per request.

    ``checks``: "cheap" runs each object's load with its cheap checks; "sweep" runs each object's Id sweep
    check alone (no asset materialized), in ``job`` (the sweep's)."""
    by_job: dict[str, list[ObjectLoad]] = defaultdict(list)
    for load in loads:
        by_job[job or job_name(load.entry)].append(load)
    requests = []
    for name, members in sorted(by_job.items()):
        members.sort(key=lambda load: (-load.weight, load.entry.name))
        for start in range(0, len(members), batch_objects):
            batch = members[start : start + batch_objects]
            tags = {
                PRIORITY_TAG: str(batch[0].weight),
                BATCH_TAG: batch[0].entry.name + (f" +{len(batch) - 1}" if len(batch) > 1 else ""),
            }
            if partition_range:
                tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG] = partition_range
            ops = {op_name(load.entry): {"config": config} for load in batch if (config := load.op_config())}
            if checks == "sweep":
                selection: dict[str, object] = {
                    "asset_check_keys": [dg.AssetCheckKey(asset_key(load.entry.name), ID_SWEEP_CHECK) for load in batch]
                }
            else:
                selection = {
                    "asset_selection": [asset_key(load.entry.name) for load in batch],
                    "asset_check_keys": [key for load in batch for key in cheap_checks(load.entry)],
                }
            requests.append(
                dg.RunRequest(
                    run_key=f"{run_key}:{name}:{start // batch_objects}" if run_key else None,
                    job_name=name,
                    partition_key=partition_key,
                    run_config={"ops": ops} if ops else {},
                    tags=tags,
                    **selection,  # type: ignore[arg-type]
                )
            )
    requests.sort(key=lambda r: -int(r.tags[PRIORITY_TAG]))
    return requests


def group_by_range(
    items: Sequence[tuple[tuple[str, str], ObjectLoad]],
) -> dict[tuple[str, str], list[ObjectLoad]]:
    """Loads keyed by the partition range they need: one Dagster run covers one range for all its assets."""
    groups: dict[tuple[str, str], list[ObjectLoad]] = defaultdict(list)
    for key_range, load in items:
        groups[key_range].append(load)
    return dict(groups)
