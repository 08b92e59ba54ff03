"""One object, one window, end to end: extract, split, load. Plain Python, no Dagster.

A full refresh extracts everything live (``query``), loads it into a shadow table and, once every chunk
is in, swaps that in for the object's table, so a failure leaves the table as it was; a window extracts
the rows whose cursor falls in it, deleted ones included (``queryAll``), and merges them on the key.

Each (object, window) works in a folder of its own under the work root, behind a per-object lock. A run
that dies (SIGKILL, an evicted pod) leaves it behind: the next run of the same window resumes the
extract from its complete pages and deletes the dead run's chunks and dlt packages (never loading them);
the next run of any other window of the object deletes the whole folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .arrow_types import arrow_type
from .catalog import CatalogObject
from .errors import ObjectBusyError
from .faultpoints import faultpoint
from .load import REFRESH_SUFFIX, ChunkRunner, DltSettings, ObjectLoader, table_name
from .memory import PeakRss
from .naming import ColumnPlan, plan_columns
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
    resumed_pages: int = 0  # extract pages reused from a run that did not finish
    columns: dict[str, str] = field(default_factory=dict)  # API name -> warehouse column
    schema_changes: dict[str, list] = field(default_factory=dict)  # added, removed, retyped since the last load
    field_info: dict[str, tuple[str, str]] = field(default_factory=dict)  # API name -> (Salesforce type, label)
    formula_fields: list[str] = field(default_factory=list)  # describe's calculated fields
    formula_fields_loaded: bool = False  # the catalog's choice: extracted (include) or left out (exclude)
    api_calls: int = 0  # Salesforce API requests this sync made
    api_usage: str = ""  # the org's daily API usage after it (used/limit), as Salesforce last reported it

    @property
    def reconciled(self) -> bool:
        return self.salesforce_records == self.csv_records == self.rows_loaded


def work_root(work_dir: Path | None = None) -> Path:
    return Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "sf_pipeline"


def window_name(since: datetime | None, until: datetime | None) -> str:
    stamp = "%Y%m%dT%H%M%S"
    return f"{since.strftime(stamp) if since else 'start'}-{until.strftime(stamp) if until else 'now'}"


@contextlib.contextmanager
def object_workspace(root: Path, sobject: str, window: str) -> Iterator[Path]:
    """Lock ``sobject``, clear what dead runs left, and yield its folder for ``window``.

    After success the folder is deleted. After a failure only the extract is kept, so that a rerun of
    the window resumes it; chunks and dlt's load packages are always deleted, never loaded again.
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{sobject}-{window}"
    lock_path = root / f"{sobject}.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ObjectBusyError(
                f"[{sobject}] another process is loading this object (it holds {lock_path})"
            ) from None
        for stale in root.glob(f"{sobject}-*"):
            if stale != folder:
                log.warning("[%s] deleting %s, left by a run that did not finish", sobject, stale)
                shutil.rmtree(stale, ignore_errors=True)
        _clear_load_state(folder, sobject)
        folder.mkdir(exist_ok=True)
        try:
            yield folder
        except BaseException:
            _clear_load_state(folder, sobject)
            raise
        shutil.rmtree(folder, ignore_errors=True)


def _clear_load_state(folder: Path, sobject: str) -> None:
    for leftover in [folder / "chunks", *folder.glob("dlt-*")]:
        if leftover.exists():
            log.warning("[%s] deleting %s, left by a run that did not finish", sobject, leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def _plan_columns(warehouse: Warehouse, sobject: str, fields: list[dict]) -> ColumnPlan:
    """Each field's column (the one an earlier load gave it, or a new one) and what changed since, recorded
    before loading so that a rerun after a crash makes the same choices."""
    plan = plan_columns(fields, warehouse.column_map(sobject), lambda f: str(arrow_type(f)))
    warehouse.record_columns(sobject, plan.records)
    for kind, items in plan.changes.items():
        for item in items:
            log.warning("[%s] schema change since the last load: %s %s", sobject, kind, item)
    return plan


def sync_object(
    client: SalesforceClient,
    entry: CatalogObject,
    warehouse: Warehouse,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    full_refresh: bool = False,
    work_dir: Path | None = None,
    extract_options: ExtractOptions | None = None,
    split_options: SplitOptions | None = None,
    dlt_settings: DltSettings | None = None,
    run_chunk: ChunkRunner | None = None,
) -> SyncResult:
    """Extract, split and load one object for one window (or all of it, replacing, on full refresh)."""
    window = "full" if full_refresh else window_name(since, until)
    calls_before = client.api_calls
    with object_workspace(work_root(work_dir), entry.name, window) as work, PeakRss() as rss:
        include_deleted = entry.include_deleted and not full_refresh
        t0 = time.monotonic()
        describe = client.describe(entry.name)
        formulas = [f["name"] for f in describe["fields"] if f.get("calculated")]
        left_out = [*entry.exclude_fields, *(formulas if entry.formula_fields == "exclude" else [])]
        result, describe = extract_object(
            client,
            entry.name,
            work / "extract",
            since=None if full_refresh else since,
            until=None if full_refresh else until,
            include_deleted=include_deleted,
            cursor_field=entry.cursor_field,
            exclude_fields=left_out,
            options=extract_options,
            describe=describe,
        )
        t1 = time.monotonic()
        by_name = {f["name"]: f for f in describe["fields"]}
        fields = [by_name[name] for name in result.fields]
        skipped = {f["name"]: f["type"] for f in describe["fields"] if f["name"] not in set(result.fields)}
        chunks = plan_chunks(result.files, work / "chunks", split_options, rows=result.page_records)
        csv_records = sum(c.rows for c in chunks)
        log.info(
            "[%s] %d record(s) in %d chunk(s) to load (%s)",
            entry.name,
            csv_records,
            len(chunks),
            ", ".join(f"{c.rows} rows / {c.bytes / 1e6:.1f} MB" for c in chunks) or "nothing",
        )
        faultpoint("split_done", entry.name)
        t2 = time.monotonic()
        table = table_name(entry.name)
        loader = ObjectLoader(
            entry.name,
            warehouse.dlt_destination(),
            dataset_name=warehouse.dataset,
            staging=warehouse.staging,
            pipelines_dir=warehouse.staging.local_dir or work,
            settings=dlt_settings,
            table=table + REFRESH_SUFFIX if full_refresh else table,
            run_chunk=run_chunk,
        )
        plan = _plan_columns(warehouse, entry.name, fields)
        if full_refresh:
            warehouse.drop_object_table(loader.table, loader.schema_name)  # a dead run's shadow
        loaded = loader.load(chunks, fields, mode="replace" if full_refresh else "merge", column_names=plan.columns)
        if full_refresh:
            warehouse.swap_in(loader.table, table, loader.schema_name)
        t3 = time.monotonic()
    return SyncResult(
        sobject=entry.name,
        table=table,
        dataset=warehouse.dataset,
        mode="replace" if full_refresh else "merge",
        since=None if full_refresh else since,
        until=None if full_refresh else until,
        salesforce_records=result.records,
        csv_records=csv_records,
        rows_loaded=loaded.rows,
        rows_deleted=loaded.deleted,
        bytes=result.bytes,
        chunks=loaded.chunks,
        extract_seconds=t1 - t0,
        split_seconds=t2 - t1,
        load_seconds=t3 - t2,
        peak_rss_mb=rss.peak_mb,
        job_id=result.job_id,
        load_ids=loaded.load_ids,
        columns=plan.columns,
        schema_changes=plan.changes,
        field_info={f["name"]: (f.get("type", ""), f.get("label") or "") for f in fields},
        skipped_fields=skipped,
        resumed_pages=result.resumed_pages,
        formula_fields=formulas,
        formula_fields_loaded=entry.formula_fields == "include",
        api_calls=client.api_calls - calls_before,
        api_usage=str(client.api_usage or ""),
    )
