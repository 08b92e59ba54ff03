"""The Id sweep: finds the rows Salesforce no longer has (hard-deleted, or purged from its recycle bin,
which ``queryAll`` never shows again) and deletes or flags them. Plain Python, no Dagster.

A Bulk query of ``Id`` alone streams to disk; dlt loads those Ids into a scratch table next to the object's
(through the same staging as any load, so Snowflake COPYs them); the comparison then runs inside the
warehouse, so memory stays O(one chunk) whatever the object's size. The object's lock is held from before
the Id query until the comparison: every row in the table was loaded before the query started, so a row
whose Id the query did not return is gone from Salesforce.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..catalog import DELETED_AT_COLUMN, DELETED_COLUMN, HARD_DELETED_COLUMN, VALID_TO_COLUMN, CatalogObject
from ..common.memory import PeakRss
from ..salesforce import ExtractOptions, SalesforceClient
from ..salesforce.bulk import extract_object
from ..warehouse import IdComparison, Warehouse
from .dlt_settings import DltSettings
from .load import table_name
from .split import SplitOptions, plan_chunks
from .sync import sized_load
from .workspace import object_workspace, work_root

log = logging.getLogger(__name__)

IDS_SUFFIX = "__sf_ids"


@dataclass
class SweepResult:
    sobject: str
    table: str
    mode: str  # delete or flag
    comparison: IdComparison
    seconds: float
    peak_rss_mb: float
    api_calls: int
    api_usage: str

    @property
    def ids_match(self) -> bool:
        """After the sweep, the table holds exactly Salesforce's live Ids (flagged rows set apart)."""
        return self.comparison.missing_in_table == 0


def sweep_ids(
    client: SalesforceClient,
    entry: CatalogObject,
    warehouse: Warehouse,
    *,
    work_dir: Path | None = None,
    extract_options: ExtractOptions | None = None,
    split_options: SplitOptions | None = None,
    dlt_settings: DltSettings | None = None,
    memory_limit_mb: int | None = None,
) -> SweepResult:
    """Compare ``entry``'s table with the Ids Salesforce holds now; delete or flag (``entry.hard_deletes``)
    the rows it no longer has."""
    table = table_name(entry.name)
    calls_before = client.api_calls
    started = time.monotonic()
    sized = sized_load(entry.name, warehouse, extract_options, split_options, memory_limit_mb)
    warehouse = sized.warehouse
    with (
        object_workspace(work_root(work_dir), entry.name, "ids") as work,
        PeakRss() as rss,
        warehouse.load_destination() as destination,
    ):
        result, describe = extract_object(
            client,
            entry.name,
            work / "extract",
            fields=["Id"],
            cursor_field=None,
            options=sized.extract,
            route=entry.route,
            where=entry.filter,
        )
        id_field = next(f for f in describe["fields"] if f["name"] == "Id")
        chunks = plan_chunks(result.files, work / "chunks", sized.split, rows=result.page_records)
        loader = sized.loader(
            entry.name,
            destination,
            work,
            settings=dlt_settings,
            pipeline_name=f"sf_{table}{IDS_SUFFIX}",
            table=table + IDS_SUFFIX,
        )
        loader.load(chunks, [id_field], mode="replace", column_names={"Id": "id"})
        comparison = warehouse.reconcile_ids(table, loader.table, "id", entry.hard_deletes, _flag_columns(entry))
        warehouse.forget_pipeline(loader.schema_name)
    _log_sweep(entry.name, entry.hard_deletes, comparison)
    return SweepResult(
        sobject=entry.name,
        table=table,
        mode=entry.hard_deletes,
        comparison=comparison,
        seconds=time.monotonic() - started,
        peak_rss_mb=rss.peak_mb,
        api_calls=client.api_calls - calls_before,
        api_usage=str(client.api_usage or ""),
    )


def _log_sweep(sobject: str, hard_deletes: str, comparison: IdComparison) -> None:
    verb = "deleted" if hard_deletes == "delete" else "flagged"
    log.info(
        "[%s] Id sweep: %d Salesforce Ids, %d rows before, %d gone from Salesforce (%s), %d not loaded yet",
        sobject,
        comparison.salesforce_ids,
        comparison.table_rows,
        comparison.gone_from_salesforce,
        verb,
        comparison.missing_in_table,
    )


def _flag_columns(entry: CatalogObject) -> tuple[str, ...]:
    """What a flag sets: history's version end, ``deletes: flag``'s pair of columns, else ``hard_deletes: flag``'s
    timestamp."""
    if entry.history:
        return (VALID_TO_COLUMN,)  # closes the current version of a record Salesforce no longer has
    if entry.deletes == "flag":
        return (DELETED_AT_COLUMN, DELETED_COLUMN)
    return (HARD_DELETED_COLUMN,)
