"""One object, one window, end to end: extract, split, load. Plain Python, no Dagster.

The load overlaps the extract: pages download in a thread of their own while the chunks they complete
load one at a time (``ChunkStream``), so a big object's run takes about as long as the slower of the two.

A full refresh extracts every record (``queryAll``, less the deleted ones), loads it into a shadow table and,
once every chunk is in, swaps that in for the object's table, so a failure leaves the table as it was; a
window extracts the rows whose cursor falls in it, deleted ones included (``queryAll``), read back by the
overlap before its start (late commits), and merges them on ``Id``. A window open at its start (``since``
None) reads every record before its end: the first partition holds all history older than it.

Each (object, window) works in a folder of its own behind a per-object lock (``workspace.py``); the extract
runs in a thread alongside the load (``overlap.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from ..catalog import CatalogObject
from ..common.memory import PeakRss
from ..common.sizing import LoadSizes, SizeSettings, size_load
from ..errors import SettingsError
from ..salesforce import ExtractOptions, ExtractResult, SalesforceClient, select_fields
from ..salesforce.bulk import check_cursor_field, extract_object
from ..warehouse import Warehouse
from ..warehouse.ddl import Span
from ..warehouse.naming import ColumnPlan, plan_columns
from .arrow_types import arrow_type
from .dlt_settings import DltSettings
from .load import REFRESH_SUFFIX, ChunkRunner, LoadResult, ObjectLoader, table_name
from .overlap import OverlappedExtract
from .row_policy import RowPolicy, as_hashed
from .settings import WINDOW_OVERLAP_MINUTES
from .split import ChunkStream, SplitOptions
from .workspace import object_workspace, window_name, work_root

log = logging.getLogger(__name__)

WINDOW_OVERLAP = timedelta(minutes=WINDOW_OVERLAP_MINUTES)  # why: datapath/settings.py


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
    rows_loaded: int  # records processed: rows written plus deleted records removed or kept out
    rows_deleted: int  # records Salesforce reported deleted (removed from the table, or kept out of it)
    bytes: int
    chunks: int
    extract_seconds: float
    split_seconds: float
    load_seconds: float
    peak_rss_mb: float
    job_id: str
    sizes: LoadSizes  # what the load was sized by; the counts after it use the same
    load_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time: extract and load overlap, so this is not their sum
    skipped_fields: dict[str, str] = field(default_factory=dict)
    resumed_pages: int = 0  # extract pages reused from a run that did not finish
    columns: dict[str, str] = field(default_factory=dict)  # API name -> warehouse column
    schema_changes: dict[str, list] = field(default_factory=dict)  # added, removed, retyped since the last load
    field_info: dict[str, tuple[str, str]] = field(default_factory=dict)  # API name -> (Salesforce type, label)
    formula_fields: list[str] = field(default_factory=list)  # describe's calculated fields
    formula_fields_loaded: bool = False  # the catalog's choice: extracted (include) or left out (exclude)
    api_calls: int = 0  # Salesforce API requests this sync made
    api_usage: str = ""  # the org's daily API usage after it (used/limit), as Salesforce last reported it
    route: str = "bulk"  # how the records were read: bulk (query job) or rest (queryAll pages)
    demoted: str = ""  # why a bulk object was read by REST in this run (Salesforce refused the Bulk job)
    expected_records: int | None = None  # the window's COUNT() when it chose the route (REST when small)
    read_since: datetime | None = None  # where the extract started: ``since`` less the overlap (None: open)
    window_rows_before: int = 0  # rows the table held in the window before the load (all of it: full refresh)

    @property
    def rows_written(self) -> int:
        """Live rows written (inserted or merged) into the table."""
        return self.rows_loaded - self.rows_deleted

    @property
    def reconciled(self) -> bool:
        return self.salesforce_records == self.csv_records == self.rows_loaded


@dataclass(frozen=True)
class SizedLoad:
    """One load's options with the sizes chosen for it as it starts (``sizing.size_load``, logged): the
    warehouse's DuckDB cap and threads, the pages in flight, the chunk size, the CSV blocks read ahead."""

    sizes: LoadSizes
    warehouse: Warehouse
    extract: ExtractOptions
    split: SplitOptions

    def loader(self, sobject: str, destination: object, work: Path, **kwargs: object) -> ObjectLoader:
        warehouse = self.warehouse
        return ObjectLoader(
            sobject,
            destination,
            dataset_name=warehouse.dataset,
            staging=warehouse.staging,
            pipelines_dir=warehouse.staging.local_dir or work,
            read_block=self.sizes.read_block,
            read_ahead=self.sizes.read_ahead,
            **kwargs,  # type: ignore[arg-type]
        )


def sized_load(
    sobject: str,
    warehouse: Warehouse,
    extract: ExtractOptions | None,
    split: SplitOptions | None,
    memory_limit_mb: int | None,
) -> SizedLoad:
    """The sizes for a load of ``sobject`` starting now; what the options or the warehouse set explicitly wins."""
    extract, split = extract or ExtractOptions(), split or SplitOptions()
    given = SizeSettings(memory_limit_mb, warehouse.duckdb_memory_limit, split.target_bytes, extract.concurrency)
    sizes = size_load(sobject, given)
    return SizedLoad(
        sizes,
        warehouse.sized(sizes),
        replace(extract, concurrency=sizes.pages_in_flight),
        replace(split, target_bytes=sizes.chunk_bytes),
    )


@dataclass(frozen=True)
class _Fields:
    """The fields a sync queries (in order, with their describe entries), those it leaves out, and the
    object's formula fields."""

    fields: list[dict]
    skipped: dict[str, str]  # name -> type
    formulas: list[str]

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.fields]


def _choose_fields(entry: CatalogObject, describe: dict) -> _Fields:
    """The catalog entry's exclusions (and its formula fields when it excludes them) applied to describe."""
    formulas = [f["name"] for f in describe["fields"] if f.get("calculated")]
    left_out = [*entry.exclude_fields, *(formulas if entry.formula_fields == "exclude" else [])]
    names = select_fields(describe, None, left_out).names
    hashed = {f.lower() for f in entry.hash_fields}
    by_name = {f["name"]: as_hashed(f) if f["name"].lower() in hashed else f for f in describe["fields"]}
    skipped = {f["name"]: f["type"] for f in describe["fields"] if f["name"] not in set(names)}
    return _Fields([by_name[name] for name in names], skipped, formulas)


def _described(client: SalesforceClient, entry: CatalogObject, *, windowed: bool) -> tuple[dict, _Fields]:
    """The object's describe and the fields chosen from it; a window needs its cursor among them, checked before
    anything is created."""
    describe = client.describe(entry.name)
    chosen = _choose_fields(entry, describe)
    if windowed:
        check_cursor_field(entry.name, entry.cursor_field, chosen.names)
    return describe, chosen


def _plan_columns(warehouse: Warehouse, sobject: str, fields: list[dict]) -> ColumnPlan:
    """Each field's column (the one an earlier load gave it, or a new one) and what changed since, recorded
    before loading so that a rerun after a crash makes the same choices."""
    plan = plan_columns(fields, warehouse.column_map(sobject), lambda f: str(arrow_type(f)))
    warehouse.record_columns(sobject, plan.records)
    for kind, items in plan.changes.items():
        for item in items:
            log.warning("[%s] schema change since the last load: %s %s", sobject, kind, item)
    return plan


@dataclass(frozen=True)
class _WindowExtract:
    """The extract of one sync's window into its folder, called by ``OverlappedExtract``'s thread with the
    callback that hands each page on disk to the splitter."""

    client: SalesforceClient
    entry: CatalogObject
    folder: Path
    options: ExtractOptions
    describe: dict
    fields: list[str]
    since: datetime | None
    until: datetime | None
    full_refresh: bool

    def __call__(self, on_page: Callable[[Path, int, int], None]) -> ExtractResult:
        entry = self.entry
        result, _ = extract_object(
            self.client,
            entry.name,
            self.folder,
            since=self.since,
            until=self.until,
            # queryAll on a full refresh too: archived activities come only with it; the deleted rows are dropped
            include_deleted=entry.include_deleted,
            cursor_field=entry.cursor_field,
            fields=self.fields,
            options=self.options,
            describe=self.describe,
            on_page=on_page,
            route=entry.route,
            where=entry.filter,
        )
        return result


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
    memory_limit_mb: int | None = None,
    overlap: timedelta = WINDOW_OVERLAP,
    hash_key: str | None = None,
) -> SyncResult:
    """Extract, split and load one object for one window (or all of it, replacing, on full refresh), sized
    by the memory the process has (``memory_limit_mb`` overrides the cgroup's limit). A window with a start
    is read from ``overlap`` before it: a record whose transaction committed after an earlier window was
    read, with a SystemModstamp inside that window, is merged now rather than lost. ``hash_key``: the key of
    the entry's ``hash_fields`` (``SF_PIPELINE_HASH_KEY``)."""
    window = "full" if full_refresh else window_name(since, until)
    if full_refresh:
        since = until = None
    if overlap < timedelta(0):
        raise SettingsError(f"[{entry.name}] the window overlap must not be negative, got {overlap}")
    read_since = since - overlap if since else None
    # a full refresh replaces the table, unless it keeps history: then every live record is merged as a version
    replaces = full_refresh and not entry.history
    mode = "replace" if replaces else "merge"
    calls_before = client.api_calls
    sized = sized_load(entry.name, warehouse, extract_options, split_options, memory_limit_mb)
    warehouse = sized.warehouse
    with (
        object_workspace(work_root(work_dir), entry.name, window) as work,
        PeakRss() as rss,
        warehouse.load_destination() as destination,
    ):
        started = time.monotonic()
        table = table_name(entry.name)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"count-{entry.name}") as pool:
            counting = _count_before(pool, warehouse, entry, table, (since, until))
            describe, chosen = _described(client, entry, windowed=bool(since or until))
            loader = sized.loader(
                entry.name,
                destination,
                work,
                settings=dlt_settings,
                table=table + REFRESH_SUFFIX if replaces else table,
                history=entry.history,
                run_chunk=run_chunk,
                policy=RowPolicy.of(entry, hash_key, chosen.names),
            )
            loader.start()  # the bucket's leftovers of a dead run deleted while the extract runs
            extract = _WindowExtract(
                client, entry, work / "extract", sized.extract, describe, chosen.names, read_since, until, full_refresh
            )
            overlap = OverlappedExtract(entry.name, extract, ChunkStream(work / "chunks", sized.split))
            before, plan = _while_extracting(
                overlap, counting, lambda: _plan_columns(warehouse, entry.name, chosen.fields)
            )
        into_empty = not replaces and before["all"] == 0
        loaded = _load_window(warehouse, loader, overlap, chosen.fields, plan.columns, replaces, into_empty)
        seconds = time.monotonic() - started
    return _report(
        entry,
        (table, warehouse.dataset, mode, since, until),
        overlap,
        loaded,
        plan,
        chosen,
        seconds=seconds,
        peak_rss_mb=rss.peak_mb,
        api_calls=client.api_calls - calls_before,
        api_usage=str(client.api_usage or ""),
        read_since=read_since,
        window_rows_before=before["window"],
        sizes=sized.sizes,
    )


def _count_before(
    pool: ThreadPoolExecutor, warehouse: Warehouse, entry: CatalogObject, table: str, window: Span
) -> Future[dict[str, int]]:
    """The table's rows and the window's before the load, counted in ``pool`` while Salesforce describes the
    object and sends its first page."""
    spans = {"window": window}
    return pool.submit(warehouse.count_spans, table, entry.cursor_field, spans, deleted_at=entry.inactive_column)


def _while_extracting(
    overlap: OverlappedExtract, counting: Future[dict[str, int]], plan: Callable[[], ColumnPlan]
) -> tuple[dict[str, int], ColumnPlan]:
    """With the extract started, so that Salesforce's first answers come meanwhile: the count begun with the sync
    (one statement under the object's lock: a merge into an empty table appends, the checks want the count
    before), then the column plan; the warehouse is asked by one thread at a time. Either failing stops the
    extract."""
    overlap.start()
    try:
        return counting.result(), plan()
    except BaseException:
        overlap.stop()
        raise


def _load_window(
    warehouse: Warehouse,
    loader: ObjectLoader,
    overlap: OverlappedExtract,
    fields: list[dict],
    columns: dict[str, str],
    replaces: bool,
    into_empty: bool,
) -> LoadResult:
    """The chunks merged into the object's table as the extract cuts them (appended, ``into_empty``, when it
    holds no row); ``replaces`` (a full refresh of an object without history): loaded into the loader's shadow
    table (a dead run's dropped first) and swapped in once every chunk is in."""
    table = table_name(loader.sobject)
    if replaces:
        warehouse.drop_object_table(loader.table, loader.schema_name)
    mode = "replace" if replaces else "merge"
    # closing: a load that fails mid-way stops and joins the extract before the error goes on
    with contextlib.closing(overlap.chunks()) as chunks:
        loaded = loader.load(chunks, fields, mode=mode, column_names=columns, into_empty=into_empty)
    if replaces:
        warehouse.swap_in(loader.table, table, loader.schema_name)
    return loaded


def _report(
    entry: CatalogObject,
    target: tuple[str, str, str, datetime | None, datetime | None],
    overlap: OverlappedExtract,
    loaded: LoadResult,
    plan: ColumnPlan,
    chosen: _Fields,
    *,
    seconds: float,
    peak_rss_mb: float,
    api_calls: int,
    api_usage: str,
    read_since: datetime | None,
    window_rows_before: int,
    sizes: LoadSizes,
) -> SyncResult:
    """What one sync did, logged in a line and returned whole. ``target``: table, dataset, mode, window."""
    table, dataset, mode, since, until = target
    result = overlap.result
    log.info(
        "[%s] %d rows loaded in %.1fs (extract %.1fs alongside; %d chunk(s)), peak RSS %.0f MB",
        entry.name,
        loaded.rows,
        seconds,
        result.seconds,
        loaded.chunks,
        peak_rss_mb,
    )
    return SyncResult(
        sobject=entry.name,
        table=table,
        dataset=dataset,
        mode=mode,
        since=since,
        until=until,
        salesforce_records=result.records,
        csv_records=overlap.records,
        rows_loaded=loaded.rows,
        rows_deleted=loaded.deleted,
        bytes=result.bytes,
        chunks=loaded.chunks,
        extract_seconds=result.seconds,
        split_seconds=overlap.split_seconds,
        load_seconds=loaded.seconds - overlap.waited_seconds,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb,
        job_id=result.job_id,
        load_ids=loaded.load_ids,
        columns=plan.columns,
        schema_changes=plan.changes,
        field_info={f["name"]: (f.get("type", ""), f.get("label") or "") for f in chosen.fields},
        skipped_fields=chosen.skipped,
        resumed_pages=result.resumed_pages,
        formula_fields=chosen.formulas,
        formula_fields_loaded=entry.formula_fields == "include",
        api_calls=api_calls,
        api_usage=api_usage,
        route=result.route,
        demoted=result.demoted,
        expected_records=result.expected,
        read_since=read_since,
        window_rows_before=window_rows_before,
        sizes=sizes,
    )
