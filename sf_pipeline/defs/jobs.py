"""The object-load jobs (one for partitioned objects, one for objects without a cursor) and the queue
priority that makes heavier objects go first. A run selects one object (a UI launch) or a batch of them
(batches.py); dagster.yaml's queue runs one run of the code location at a time, however it was launched."""

from __future__ import annotations

import dagster as dg

# the tags a run of a partition range carries ("dagster/asset_partition_range_start"/"_end"): documented for
# backfills, exported from no public module
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ..catalog import Catalog, CatalogObject
from .assets import ID_SWEEP_CHECK, PRIORITY_TAG, asset_key, weight_hint

PARTITIONED_JOB = "salesforce_objects"
FULL_REFRESH_JOB = "salesforce_unpartitioned_objects"


def job_name(entry: CatalogObject) -> str:
    return PARTITIONED_JOB if entry.cursor_field else FULL_REFRESH_JOB


def build_jobs(catalog: Catalog) -> list[dg.UnresolvedAssetJobDefinition]:
    jobs = []
    for name, members in (
        (PARTITIONED_JOB, [e for e in catalog.objects if e.cursor_field]),
        (FULL_REFRESH_JOB, [e for e in catalog.objects if not e.cursor_field]),
    ):
        if members:
            jobs.append(
                dg.define_asset_job(
                    name,
                    # the objects with their checks, but not the Id sweep: a full Id extract belongs to its
                    # own job and weekly schedule, not to every sensor or schedule run
                    selection=dg.AssetSelection.assets(*(asset_key(e.name) for e in members))
                    - dg.AssetSelection.checks(*(dg.AssetCheckKey(asset_key(e.name), ID_SWEEP_CHECK) for e in members)),
                    description="Salesforce object loads: one object or a batch a run, one at a time, heaviest first",
                )
            )
    return jobs


def latest_materializations(
    instance: dg.DagsterInstance, entries: list[CatalogObject]
) -> dict[str, dg.AssetMaterialization]:
    """Each object's latest materialization, from one asset-records query (a tick weighs hundreds of objects)."""
    out: dict[str, dg.AssetMaterialization] = {}
    for record in instance.get_asset_records([asset_key(e.name) for e in entries]):
        event = record.asset_entry.last_materialization
        if event is not None and event.asset_materialization is not None:
            out[record.asset_entry.asset_key.path[-1]] = event.asset_materialization
    return out


def object_weights(instance: dg.DagsterInstance | None, entries: list[CatalogObject]) -> dict[str, int]:
    """MB of each object's last materialization, else the catalog's weight hint: heavier first."""
    latest = latest_materializations(instance, entries) if instance is not None and entries else {}
    weights = {}
    for entry in entries:
        materialization = latest.get(entry.name)
        if materialization is not None and "bytes" in materialization.metadata:
            weights[entry.name] = max(1, int(materialization.metadata["bytes"].value // 1_000_000))
        else:
            weights[entry.name] = weight_hint(entry)
    return weights


def object_weight(instance: dg.DagsterInstance | None, entry: CatalogObject) -> int:
    return object_weights(instance, [entry])[entry.name]


def run_tags(
    instance: dg.DagsterInstance | None, entry: CatalogObject, start: str | None = None, end: str | None = None
) -> dict[str, str]:
    tags = {PRIORITY_TAG: str(object_weight(instance, entry))}
    if start and end:
        tags[ASSET_PARTITION_RANGE_START_TAG] = start
        tags[ASSET_PARTITION_RANGE_END_TAG] = end
    return tags
