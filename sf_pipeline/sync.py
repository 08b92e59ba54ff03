"""One object, one window, end to end: extract, split, load. Plain Python, no Dagster.

A full refresh extracts everything live (``query``), drops the object's table (only once the extract
and split have succeeded) and loads it anew; a window extracts the rows whose cursor falls in it,
deleted ones included (``queryAll``), and merges them on the key.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .catalog import CatalogObject
from .load import DltSettings, ObjectLoader
from .memory import PeakRss
from .salesforce import ExtractOptions, SalesforceClient
from .salesforce.bulk import extract_object
from .split import SplitOptions, plan_chunks
from .warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    sobject: str
    table: str
    dataset: str
    mode: str
    since: datetime | None
    until: datetime | None
    salesforce_records: int  # what the query job reported
    csv_records: int  # records in the files on disk
    rows_loaded: int  # rows dlt normalized and loaded (deleted ones included for merges)
    rows_deleted: int
    bytes: int
    chunks: int
    extract_seconds: float
    split_seconds: float
    load_seconds: float
    peak_rss_mb: float
    job_id: str
    load_ids: list[str] = field(default_factory=list)
    skipped_fields: dict[str, str] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.salesforce_records == self.csv_records == self.rows_loaded


def sync_object(client: SalesforceClient, entry: CatalogObject, warehouse: Warehouse, *,
                since: datetime | None = None, until: datetime | None = None, full_refresh: bool = False,
                work_dir: Path | None = None, extract_options: ExtractOptions | None = None, split_options: SplitOptions | None = None,
                dlt_settings: DltSettings | None = None) -> SyncResult:
    """Extract, split and load one object for one window (or all of it, replacing, on full refresh)."""
    work = Path(tempfile.mkdtemp(prefix=f"sf-{entry.name}-", dir=work_dir))
    with PeakRss() as rss:
        try:
            include_deleted = entry.include_deleted and not full_refresh
            t0 = time.monotonic()
            result, describe = extract_object(
                client, entry.name, work / "extract", since=None if full_refresh else since,
                until=None if full_refresh else until, include_deleted=include_deleted,
                cursor_field=entry.cursor_field, exclude_fields=list(entry.exclude_fields), options=extract_options)
            t1 = time.monotonic()
            by_name = {f["name"]: f for f in describe["fields"]}
            fields = [by_name[name] for name in result.fields]
            skipped = {f["name"]: f["type"] for f in describe["fields"] if f["name"] not in set(result.fields)}
            chunks = plan_chunks(result.files, work / "chunks", split_options, rows=result.page_records)
            csv_records = sum(c.rows for c in chunks)
            t2 = time.monotonic()
            loader = ObjectLoader(entry.name, warehouse.dlt_destination(), dataset_name=warehouse.dataset,
                                  staging=warehouse.staging, pipelines_dir=warehouse.staging.local_dir or work,
                                  settings=dlt_settings)
            if full_refresh:
                warehouse.drop_object_table(loader.table, loader.pipeline_name)
            loaded = loader.load(chunks, fields, mode="replace" if full_refresh else "merge")
            t3 = time.monotonic()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return SyncResult(
        sobject=entry.name, table=loaded.table, dataset=warehouse.dataset, mode="replace" if full_refresh else "merge",
        since=None if full_refresh else since, until=None if full_refresh else until,
        salesforce_records=result.records, csv_records=csv_records, rows_loaded=loaded.rows,
        rows_deleted=loaded.deleted, bytes=result.bytes, chunks=loaded.chunks, extract_seconds=t1 - t0,
        split_seconds=t2 - t1, load_seconds=t3 - t2, peak_rss_mb=rss.peak_mb, job_id=result.job_id,
        load_ids=loaded.load_ids, skipped_fields=skipped,
    )
