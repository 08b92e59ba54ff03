"""One object, one window, end to end: extract, split, load. Plain Python, no Dagster.

The load overlaps the extract: pages download in a thread of their own while the chunks they complete
load one at a time (``ChunkStream``), so a big object's run takes about as long as the slower of the two.

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
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ..catalog import CatalogObject
from ..common.faultpoints import faultpoint
from ..common.memory import PeakRss
from ..common.sizing import LoadSizes, SizeSettings, size_load
from ..errors import ObjectBusyError, SfPipelineError
from ..salesforce import ExtractOptions, ExtractResult, SalesforceClient, select_fields
from ..salesforce.bulk import check_cursor_field, extract_object
from ..warehouse import Warehouse
from ..warehouse.naming import ColumnPlan, plan_columns
from .arrow_types import arrow_type
from .load import REFRESH_SUFFIX, ChunkRunner, DltSettings, LoadResult, ObjectLoader, table_name
from .split import Chunk, ChunkStream, SplitOptions

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


STOP_WAIT_S = 120.0


class OverlappedExtract:
    """Runs an extract in a thread and hands its pages, cut into chunks, to the loader as they land.

    ``chunks()`` yields each chunk as soon as its pages are on disk and raises the extract's error if it
    fails; if the loader stops early (an error, a termination), the extract is told to stop and joined
    before the exception goes on, so nothing keeps writing into a folder being cleaned up."""

    _DONE = object()

    def __init__(
        self,
        sobject: str,
        extract: Callable[[Callable[[Path, int, int], None]], ExtractResult],
        stream: ChunkStream,
    ) -> None:
        self.sobject = sobject
        self._extract = extract
        self._stream = stream
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._result: ExtractResult | None = None
        self.records = 0
        self.split_seconds = 0.0
        self.waited_seconds = 0.0  # the loader idle, waiting for pages

    @property
    def result(self) -> ExtractResult:
        assert self._result is not None, "chunks() not consumed"
        return self._result

    def _on_page(self, path: Path, records: int, job_records: int) -> None:
        if self._stop.is_set():
            raise ExtractStopped(f"[{self.sobject}] extract stopped: the load failed")
        self._events.put((path, records, job_records))

    def _run(self) -> None:
        try:
            self._events.put((self._DONE, self._extract(self._on_page)))
        except BaseException as exc:  # noqa: BLE001 - handed to the loader's thread, raised there
            self._events.put((self._DONE, exc))

    def chunks(self) -> Iterator[Chunk]:
        thread = threading.Thread(target=self._run, name=f"extract-{self.sobject}", daemon=True)
        thread.start()
        try:
            while True:
                started = time.monotonic()
                event = self._events.get()
                self.waited_seconds += time.monotonic() - started
                if event[0] is self._DONE:
                    if isinstance(event[1], BaseException):
                        raise event[1]
                    self._result = event[1]
                    break
                yield from self._cut(lambda e=event: self._stream.add(*e))
            last = self._cut(self._stream.finish)
            faultpoint("split_done", self.sobject)
            yield from last
        finally:
            self._stop.set()
            # the pages in flight finish (each is resumable); a query job still running is not waited
            # for long: its thread writes nothing but complete pages and the manifest a rerun resumes from
            thread.join(timeout=STOP_WAIT_S)
            if thread.is_alive():
                log.warning("[%s] the extract is still running %.0fs after the load stopped", self.sobject, STOP_WAIT_S)

    def _cut(self, step: Callable[[], list[Chunk]]) -> list[Chunk]:
        started = time.monotonic()
        chunks = step()
        self.split_seconds += time.monotonic() - started
        for chunk in chunks:
            self.records += chunk.rows
            log.info(
                "[%s] chunk of %d record(s), %.1f MB (%d file(s)) ready to load",
                self.sobject,
                chunk.rows,
                chunk.bytes / 1e6,
                len(chunk.files),
            )
        return chunks


class ExtractStopped(SfPipelineError):
    """Raised in the extract's thread when the loader has given up; never reaches the caller."""


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
    by_name = {f["name"]: f for f in describe["fields"]}
    skipped = {f["name"]: f["type"] for f in describe["fields"] if f["name"] not in set(names)}
    return _Fields([by_name[name] for name in names], skipped, formulas)


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
            include_deleted=entry.include_deleted and not self.full_refresh,
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
) -> SyncResult:
    """Extract, split and load one object for one window (or all of it, replacing, on full refresh), sized
    by the memory the process has (``memory_limit_mb`` overrides the cgroup's limit)."""
    window = "full" if full_refresh else window_name(since, until)
    if full_refresh:
        since = until = None
    mode = "replace" if full_refresh else "merge"
    calls_before = client.api_calls
    sized = sized_load(entry.name, warehouse, extract_options, split_options, memory_limit_mb)
    warehouse = sized.warehouse
    with (
        object_workspace(work_root(work_dir), entry.name, window) as work,
        PeakRss() as rss,
        warehouse.load_destination() as destination,
    ):
        started = time.monotonic()
        describe = client.describe(entry.name)
        chosen = _choose_fields(entry, describe)
        if since or until:
            check_cursor_field(entry.name, entry.cursor_field, chosen.names)  # before anything is created
        table = table_name(entry.name)
        loader = sized.loader(
            entry.name,
            destination,
            work,
            settings=dlt_settings,
            table=table + REFRESH_SUFFIX if full_refresh else table,
            run_chunk=run_chunk,
        )
        plan = _plan_columns(warehouse, entry.name, chosen.fields)
        if full_refresh:
            warehouse.drop_object_table(loader.table, loader.schema_name)  # a dead run's shadow
        extract = _WindowExtract(
            client, entry, work / "extract", sized.extract, describe, chosen.names, since, until, full_refresh
        )
        overlap = OverlappedExtract(entry.name, extract, ChunkStream(work / "chunks", sized.split))
        # closing: a load that fails mid-way stops and joins the extract before the error goes on
        with contextlib.closing(overlap.chunks()) as chunks:
            into_empty = mode == "merge" and warehouse.count_rows(table) == 0
            loaded = loader.load(chunks, chosen.fields, mode=mode, column_names=plan.columns, into_empty=into_empty)
        if full_refresh:
            warehouse.swap_in(loader.table, table, loader.schema_name)
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
    )


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
    )
