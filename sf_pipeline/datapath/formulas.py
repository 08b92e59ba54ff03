"""The formula refresh: an object's formula fields read again (with ``Id``) and only those columns of the rows
the table already has updated. Formula values change without SystemModstamp moving, so no window sees them;
reloading the whole object for them costs every column of every record. Plain Python, no Dagster.

The same shape as the Id sweep (``reconcile``): the extract (REST or Bulk by the object's size, its pages on
disk) is loaded by dlt into a scratch table next to the object's, and one UPDATE inside the warehouse sets the
values that differ; memory stays O(one chunk). The object's lock is held throughout, so no load of the object
runs meanwhile. History (``history: true``): the current versions are updated in place, a formula value being
no new version of the record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog import VALID_TO_COLUMN, CatalogObject
from ..common.memory import PeakRss
from ..errors import CatalogError
from ..salesforce import ExtractOptions, SalesforceClient
from ..salesforce.bulk import extract_object
from ..warehouse import Warehouse
from .dlt_settings import DltSettings
from .load import table_name
from .row_policy import RowPolicy, as_hashed
from .split import SplitOptions, plan_chunks
from .sync import sized_load
from .workspace import object_workspace, work_root

log = logging.getLogger(__name__)

FORMULAS_SUFFIX = "__sf_formulas"


@dataclass
class FormulaResult:
    sobject: str
    table: str
    fields: list[str]  # the formula fields refreshed (those the table has a column for)
    records_read: int
    rows_updated: int  # rows whose formula values changed
    seconds: float
    peak_rss_mb: float
    api_calls: int
    route: str = ""
    skipped: list[str] = field(default_factory=list)  # formula fields with no column yet: the next load adds them


def formula_fields(describe: dict, entry: CatalogObject) -> list[dict]:
    """The object's formula fields a load keeps (describe's ``calculated``, less ``exclude_fields``)."""
    excluded = {f.lower() for f in entry.exclude_fields}
    return [f for f in describe["fields"] if f.get("calculated") and f["name"].lower() not in excluded]


def refresh_formulas(
    client: SalesforceClient,
    entry: CatalogObject,
    warehouse: Warehouse,
    *,
    work_dir: Path | None = None,
    extract_options: ExtractOptions | None = None,
    split_options: SplitOptions | None = None,
    dlt_settings: DltSettings | None = None,
    memory_limit_mb: int | None = None,
    hash_key: str | None = None,
) -> FormulaResult:
    """Read ``Id`` and ``entry``'s formula fields and update those columns where the values changed."""
    if entry.formula_fields != "include":
        raise CatalogError(
            f"[{entry.name}] formula_fields is {entry.formula_fields!r}: the table holds no formula field to "
            "refresh (set formula_fields: include)"
        )
    table = table_name(entry.name)
    calls_before, started = client.api_calls, time.monotonic()
    sized = sized_load(entry.name, warehouse, extract_options, split_options, memory_limit_mb)
    warehouse = sized.warehouse
    with (
        object_workspace(work_root(work_dir), entry.name, "formulas") as work,
        PeakRss() as rss,
        warehouse.load_destination() as destination,
    ):
        describe = client.describe(entry.name)
        columns = warehouse.column_map(entry.name)
        hashed = {f.lower() for f in entry.hash_fields}
        fields, skipped = [], []
        for f in formula_fields(describe, entry):
            if f["name"] in columns and columns[f["name"]].present:
                fields.append(as_hashed(f) if f["name"].lower() in hashed else f)
            else:
                skipped.append(f["name"])
        if not fields:
            log.info("[%s] no formula field with a column to refresh (%s)", entry.name, skipped or "none")
            return FormulaResult(entry.name, table, [], 0, 0, time.monotonic() - started, rss.peak_mb, 0, "", skipped)
        names = [f["name"] for f in fields]
        result, _ = extract_object(
            client,
            entry.name,
            work / "extract",
            fields=["Id", *names],
            cursor_field=None,
            options=sized.extract,
            describe=describe,
            route=entry.route,
            where=entry.filter,
        )
        id_field = next(f for f in describe["fields"] if f["name"] == "Id")
        chunks = plan_chunks(result.files, work / "chunks", sized.split, rows=result.page_records)
        policy = RowPolicy(
            hash_fields=tuple(n for n in names if n.lower() in hashed), hash_key=(hash_key or "").encode()
        )
        loader = sized.loader(
            entry.name,
            destination,
            work,
            settings=dlt_settings,
            pipeline_name=f"sf_{table}{FORMULAS_SUFFIX}",
            table=table + FORMULAS_SUFFIX,
            policy=policy,
        )
        renames = {"Id": "id", **{n: columns[n].column for n in names}}
        loader.load(chunks, [id_field, *fields], mode="replace", column_names=renames)
        current_only = VALID_TO_COLUMN if entry.history else None
        updated = warehouse.update_columns(table, loader.table, "id", [columns[n].column for n in names], current_only)
        warehouse.forget_pipeline(loader.schema_name)
    log.info(
        "[%s] formula refresh: %d record(s) read, %d row(s) changed in %s", entry.name, result.records, updated, names
    )
    return FormulaResult(
        entry.name,
        table,
        names,
        result.records,
        updated,
        time.monotonic() - started,
        rss.peak_mb,
        client.api_calls - calls_before,
        result.route,
        skipped,
    )
