"""Loading one object's CSV chunks with a freshly constructed dlt pipeline, as Arrow record batches.

Chunks load one at a time, each through a ``dlt.pipeline`` constructed for it alone in the object's
per-run working folder (one ``pipeline.run``, or whatever ``run_chunk`` the caller gives: the Dagster
asset runs it through dagster-dlt); finished load packages and temporary chunk files are deleted as soon
as they are loaded, and the pipeline is dropped (``del`` + ``gc``) with its folder, so memory is bounded
by one chunk's batches, not by the number of objects or chunks. No row is ever a dict.

A thread parses the next CSV block while dlt writes the current batch to Parquet (``read.read_ahead``). Files
too big for one chunk (``load_files``, what ``sf-pipeline load`` runs) are read once and cut into chunks at
batch boundaries, never copied into chunk files first.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dlt
import pyarrow as pa
from dlt.common.schema.utils import normalize_schema_name
from dlt.pipeline.exceptions import PipelineStepFailed

from ..catalog import VALID_FROM_COLUMN, VALID_TO_COLUMN, VERSION_COLUMN
from ..common.faultpoints import faultpoint
from ..common.memory import PeakRss, lean_arrow_allocator, peak_rss_mb, release_freed_memory
from ..errors import LoadError
from ..salesforce.soql import check_identifier
from ..warehouse import StagedFiles, StagingSettings
from ..warehouse.naming import assign_columns, table_name
from .dlt_settings import DltSettings
from .read import READ_AHEAD, READ_BLOCK, BatchStats, arrow_batches, read_ahead, without_deleted
from .row_policy import RowPolicy
from .split import Chunk, SplitOptions

log = logging.getLogger(__name__)

WriteMode = Literal["replace", "merge", "append"]
REFRESH_SUFFIX = "__sf_refresh"  # a full refresh loads into <table>__sf_refresh, then swaps it in
# A chunk at least this big is followed by a full garbage collection and the C heap trimmed; a smaller one's
# garbage (a few MB) is left to Python's own collections: a full one costs ~0.13 s in a run process whatever
# the chunk, a tenth of a small window's local work (bench/README, issue 31)
COLLECT_AFTER_BYTES = 16 * 1024 * 1024


@dataclass
class LoadResult:
    sobject: str
    table: str
    dataset: str
    rows: int  # records read and processed: the rows written plus the deleted ones
    deleted: int  # records Salesforce reported deleted: removed from the table or kept out of it
    chunks: int
    bytes: int
    seconds: float
    peak_rss_mb: float
    load_ids: list[str] = field(default_factory=list)


@dataclass
class _Part:
    """One chunk as the loader sees it: its batches, the files they come from (for errors), its CSV bytes
    (for a run of a stream, counted as it is read) and what to do once it is loaded."""

    batches: Iterator[pa.RecordBatch]
    files: list[Path]
    bytes: int
    remove: Callable[[], None] = lambda: None


def _runs(batches: Iterator[pa.RecordBatch], size: int, files: list[Path], block_size: int) -> Iterator[_Part]:
    """One stream of batches (each ``block_size`` bytes of CSV) as consecutive runs of ``size`` batches, each
    a chunk; a run is handed out only once its first batch is there, so no chunk is empty."""
    for first in batches:
        part = _Part(iter(()), files, 0)

        def run(part: _Part = part, first: pa.RecordBatch = first) -> Iterator[pa.RecordBatch]:
            for batch in itertools.chain([first], itertools.islice(batches, size - 1)):
                part.bytes += block_size
                yield batch

        part.batches = run()
        yield part


ChunkRunner = Callable[[Any, Any, str], Any]
"""Runs one chunk's dlt resource through its freshly constructed pipeline (``pipeline, resource,
loader_file_format``) and returns dlt's ``LoadInfo``, raising when a job failed. The Dagster asset passes one
that goes through dagster-dlt; the loader itself knows nothing of Dagster."""


def run_chunk_plainly(pipeline: Any, resource: Any, loader_file_format: str) -> Any:
    info = pipeline.run(resource, loader_file_format=loader_file_format)
    info.raise_on_failed_jobs()
    return info


class ObjectLoader:
    """Loads one object's chunks through a pipeline built for it alone; ``load`` drops it after.

    With a bucket staging area, each chunk's staged files are deleted once Snowflake has loaded them,
    and files left by an earlier run that died are deleted before the first chunk.
    """

    def __init__(
        self,
        sobject: str,
        destination: Any,
        *,
        dataset_name: str = "salesforce",
        staging: StagingSettings | None = None,
        pipelines_dir: Path | None = None,
        settings: DltSettings | None = None,
        pipeline_name: str | None = None,
        table: str | None = None,
        run_chunk: ChunkRunner | None = None,
        read_block: int = READ_BLOCK,
        read_ahead: int = READ_AHEAD,
        policy: RowPolicy | None = None,
        history: bool = False,
    ) -> None:
        self.read_block = read_block  # bytes of CSV per Arrow batch
        self.read_ahead = read_ahead  # batches parsed ahead of the one dlt is writing
        self.sobject = check_identifier(sobject, "sObject")
        self.table = table or table_name(sobject)
        self.destination = destination
        self.staging = staging or StagingSettings()
        self.dataset_name = dataset_name
        self.pipelines_dir = pipelines_dir or self.staging.local_dir
        self.settings = settings or DltSettings()
        self.pipeline_name = pipeline_name or f"sf_{table_name(sobject)}"
        self.run_chunk = run_chunk or run_chunk_plainly
        self.policy = policy or RowPolicy()  # deleted rows kept with a flag, hashed fields (row_policy)
        self.history = history  # a merge keeps every version (dlt's scd2) instead of the latest
        self._data_columns: list[str] = []  # the loaded fields' columns (the load's ``column_names``)
        self._sweep: tuple[StagedFiles, Future[dict[str, int]]] | None = None  # a dead run's files, being deleted

    @property
    def schema_name(self) -> str:
        """The name dlt stores the pipeline's schema under (``_dlt_version``): normalized, so ``sf_invoice__c``
        is ``sf_invoice_c`` there."""
        return normalize_schema_name(self.pipeline_name)

    def load(
        self,
        chunks: Iterable[Chunk],
        fields: list[dict] | None,
        mode: WriteMode = "merge",
        delimiter: str = ",",
        column_names: dict[str, str] | None = None,
        into_empty: bool = False,
    ) -> LoadResult:
        """Each chunk's files through a pipeline of its own. A list is planned up front; any other iterable
        may still be cutting chunks (pages downloading) while the first ones load. ``into_empty``: the
        caller saw the table empty or absent (see ``_load_parts``)."""
        known = len(chunks) if isinstance(chunks, Sized) else None
        stats = BatchStats()
        column_names = self._column_names(fields, column_names)
        self._data_columns = list((column_names or {}).values())  # history's in-place refresh sets these
        drop_deleted = self._drops_deleted(mode, into_empty)

        def parts() -> Iterator[_Part]:
            cut = False
            for chunk in chunks:
                cut = True
                batches = self._batches(chunk.files, fields, delimiter, stats, column_names, drop_deleted)
                yield _Part(batches, chunk.files, chunk.bytes, chunk.remove)
            if not cut and fields:  # no result file at all: the table is still created, empty
                yield _Part(self._batches([], fields, delimiter, stats, column_names, drop_deleted), [], 0)

        return self._load_parts(parts(), known, fields, mode, stats, into_empty)

    def load_files(
        self,
        files: list[Path],
        fields: list[dict] | None,
        mode: WriteMode = "merge",
        delimiter: str = ",",
        options: SplitOptions | None = None,
        into_empty: bool = False,
    ) -> LoadResult:
        """CSV files read once, as one stream of Arrow batches cut into chunks at batch boundaries: no chunk
        file is written and nothing is counted first. The cut follows ``SplitOptions``: one chunk when the
        files hold at most ``min_rows`` records (estimated from the first batch), else about
        ``target_bytes`` a chunk, at most ``max_chunks``. A batch is one ``read_block`` of CSV."""
        options = options or SplitOptions()
        stats = BatchStats()
        lean_arrow_allocator()  # before the reader is opened: its buffers come from the pool in use then
        column_names = self._column_names(fields, None)
        batches = self._batches(files, fields, delimiter, stats, column_names, self._drops_deleted(mode, into_empty))
        first = next(batches, None)
        if first is None:
            return self._load_parts(iter(()), None, fields, mode, stats)
        sizes = [f.stat().st_size for f in files]
        blocks = sum(math.ceil(size / self.read_block) for size in sizes)
        n = options.chunk_count(first.num_rows * blocks, sum(sizes))
        runs = _runs(itertools.chain([first], batches), max(1, math.ceil(blocks / n)), files, self.read_block)
        result = self._load_parts(runs, None, fields, mode, stats, into_empty)
        result.bytes = sum(sizes)  # the runs count whole blocks; the files' own size is exact
        return result

    def _batches(
        self,
        files: list[Path],
        fields: list[dict] | None,
        delimiter: str,
        stats: BatchStats,
        column_names: dict[str, str] | None,
        drop_deleted: bool,
    ) -> Iterator[pa.RecordBatch]:
        """The files' batches, parsed (and, for a replace or a first load, rid of deleted rows) in the read-ahead thread
        while dlt writes the one before: the filter copies every column of a batch that holds a deleted row
        (~1 s of a 1 GB Account file) and costs the loader's thread nothing there."""
        batches = arrow_batches(files, fields, self.sobject, delimiter, stats, column_names, self.read_block)
        if drop_deleted:
            batches = without_deleted(batches)
        if self.policy.active:
            batches = self.policy.apply(batches)
        return read_ahead(batches, self.read_ahead)

    def _column_names(self, fields: list[dict] | None, column_names: dict[str, str] | None) -> dict[str, str] | None:
        if column_names is None and fields:
            # no recorded history (sf-pipeline load): every field still gets a column of its own
            return assign_columns([f["name"] for f in fields], {})
        return column_names

    def _load_parts(
        self,
        parts: Iterator[_Part],
        known: int | None,
        fields: list[dict] | None,
        mode: WriteMode,
        stats: BatchStats,
        into_empty: bool = False,
    ) -> LoadResult:
        """Each part through a pipeline of its own. A merge into a table the caller saw empty or absent is
        loaded as an append of the rows Salesforce has not deleted: a query job returns each record once,
        so there is nothing to delete or replace, and dlt's merge (a staging table, then delete and insert)
        would write every row twice. A run that dies part-way leaves rows behind: the table is not empty
        for its retry, which merges."""
        started = time.monotonic()
        first_load = into_empty and mode == "merge" and not self.history  # versions need scd2's columns
        lean_arrow_allocator()
        workdir = self._fresh_workdir()
        staged = self._staged_files()
        has_deleted = any(f["name"] == "IsDeleted" for f in fields or [])
        if first_load:
            log.info("[%s] %s is empty: its rows are appended (no merge needed)", self.sobject, self.table)
        columns = self._column_hints("append" if first_load else mode, has_deleted)
        result = LoadResult(self.sobject, self.table, self.dataset_name, 0, 0, 0, 0, 0.0, 0.0)
        self.settings.configure()
        with PeakRss() as rss:
            try:
                for k, part in enumerate(parts):
                    disposition = "append" if first_load or (mode == "replace" and k > 0) else mode
                    resource = self._resource(
                        part, disposition, merge=mode == "merge", columns=columns, has_deleted=has_deleted
                    )
                    label = f"{k + 1}/{known}" if known else str(k + 1)
                    load_ids, rows = self._load_in_fresh_pipeline(
                        workdir / f"chunk-{k:03d}", resource, label, part, staged
                    )
                    result.chunks, result.rows, result.bytes = k + 1, result.rows + rows, result.bytes + part.bytes
                    result.load_ids += load_ids
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        result.deleted = stats.deleted  # counted as the batches were read: known once every part is loaded
        if self._drops_deleted(mode, into_empty):
            result.rows += stats.deleted  # dropped here rather than by a merge: accounted for all the same
        result.seconds, result.peak_rss_mb = time.monotonic() - started, rss.peak_mb
        return result

    def _resource(
        self, part: _Part, disposition: WriteMode, *, merge: bool, columns: dict[str, dict], has_deleted: bool
    ) -> Any:
        write_disposition: Any = disposition
        if disposition == "merge" and self.history:
            # dlt's scd2: a record Salesforce changed (a new SystemModstamp, so a new version id) gets a new
            # version and its current one is closed; with the merge key only records present in this chunk are
            # compared (each chunk is its own merge); a replayed window brings the same version ids and adds
            # nothing; a deleted record is in the chunk (so its current version is in scope and closed) but never
            # inserted (the source filter). The boundary is the load's time.
            write_disposition = {
                "disposition": "merge",
                "strategy": "scd2",
                "validity_column_names": [VALID_FROM_COLUMN, VALID_TO_COLUMN],
                "row_version_column_name": VERSION_COLUMN,  # Id@SystemModstamp (row_policy.with_version)
                "destination_scope": "id IN (SELECT id FROM {staging_table})",
            }
            if has_deleted:
                write_disposition["source_filter"] = "COALESCE(is_deleted, FALSE) = FALSE"
        return dlt.resource(
            part.batches,  # a first load's deleted rows already dropped (_batches)
            name=self.table,
            table_name=self.table,
            write_disposition=write_disposition,
            # a merge key, not a primary key: a query job returns each record once, so dlt's de-duplication
            # of the chunk (a window function over it) is pure cost; measured 24 s instead of 33 s for a
            # 700 MB merge (delete by Id, insert, deleted rows dropped)
            merge_key="Id" if merge and not self.history else None,  # history: the destination scope instead
            columns=columns,
        )

    def _load_in_fresh_pipeline(
        self, folder: Path, resource: Any, label: str, part: _Part, staged: StagedFiles | None
    ) -> tuple[list[str], int]:
        """One chunk through a pipeline constructed for it alone and dropped after it: nothing of it (schema
        dicts, traces, packages) outlives the chunk (collected at once after a big chunk)."""
        pipeline = self._pipeline(folder)
        try:
            return self._load_chunk(pipeline, resource, label, part, staged)
        finally:
            del pipeline
            if part.bytes >= COLLECT_AFTER_BYTES:
                gc.collect()
                release_freed_memory()
            shutil.rmtree(folder, ignore_errors=True)

    def _pipeline(self, pipelines_dir: Path) -> Any:
        pipeline = dlt.pipeline(
            pipeline_name=self.pipeline_name,
            pipelines_dir=str(pipelines_dir),
            destination=self.destination,
            staging=self.staging.dlt_staging(),
            dataset_name=self.dataset_name,
            progress=None,
        )
        # a fresh pipeline must not pull a stored state and schema back from the destination: the loader says
        # what the table is (its column records), and the lookup costs statements
        pipeline.config.restore_from_destination = False
        return pipeline

    def _fresh_workdir(self) -> Path:
        """One folder per table, cleared first: a dead run's load packages are deleted, never loaded."""
        workdir = (self.pipelines_dir or Path(tempfile.gettempdir())) / f"dlt-{self.table}"
        if workdir.exists():
            log.warning("[%s] deleting %s, left by a load that did not finish", self.sobject, workdir)
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        return workdir

    def start(self) -> None:
        """Begin what a load does before its first chunk, so that it overlaps the caller's extract: with a bucket,
        deleting what a dead run left under the object's table or its shadow (a full refresh's), both folders in
        one listing, on adlfs's event loop. ``load`` waits for it (and begins it if nobody did)."""
        if self.staging.kind == "azure" and self._sweep is None:
            staged = StagedFiles(self.staging, self.dataset_name)
            table = table_name(self.sobject)
            self._sweep = staged, staged.removing_all(table, table + REFRESH_SUFFIX)

    def _staged_files(self) -> StagedFiles | None:
        """The bucket's staged files (None without a bucket), once what a dead run left is deleted, never
        loaded (``start``)."""
        self.start()
        if self._sweep is None:
            return None
        (staged, sweep), self._sweep = self._sweep, None
        for folder, stale in sweep.result().items():
            if stale:
                log.warning(
                    "[%s] deleted %d staged file(s) left by an earlier run in %s/%s",
                    self.sobject,
                    stale,
                    staged.dataset_folder,
                    folder,
                )
        return staged

    def _load_chunk(
        self, pipeline: Any, resource: Any, label: str, chunk: _Part, staged: StagedFiles | None
    ) -> tuple[list[str], int]:
        """One ``pipeline.run`` for one chunk; its staged files and chunk file deleted once loaded."""
        started = time.monotonic()
        try:
            with staged.deleted_once_copied(self.destination) if staged else contextlib.nullcontext():
                info = self.run_chunk(pipeline, resource, self.settings.loader_file_format)
        except PipelineStepFailed as exc:
            raise _load_error(exc, self.sobject, label, chunk) from exc
        if self.history and info.loads_ids:
            self._refresh_current_versions(pipeline)
        faultpoint("chunk_loaded", self.sobject)
        if staged:
            staged.remove_loaded(info)
        rows = pipeline.last_trace.last_normalize_info.row_counts.get(self.table, 0)
        chunk.remove()
        log.info(
            "[%s] chunk %s loaded: %d rows, %.1f MB of CSV in %.1fs (peak RSS %.0f MB)",
            self.sobject,
            label,
            rows,
            chunk.bytes / 1e6,
            time.monotonic() - started,
            peak_rss_mb(),
        )
        return list(info.loads_ids), rows

    def _refresh_current_versions(self, pipeline: Any) -> None:
        """History: a current version whose record Salesforce did not change (the same ``Id@SystemModstamp`` in
        this chunk) takes the chunk's values of its other columns: a field added by schema drift, a formula
        value. dlt's scd2 inserts only new versions; one UPDATE from its staging table fills these in place, so
        the version stays one and no value goes missing."""
        names = self._data_columns
        if not names:
            return
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(self.table)
            with client.with_staging_dataset():
                staging = client.make_qualified_table_name(self.table)
            esc = client.escape_column_name
            sets = ", ".join(f"{esc(c)} = s.{esc(c)}" for c in names)
            differs = " OR ".join(f"{table}.{esc(c)} IS DISTINCT FROM s.{esc(c)}" for c in names)
            version, valid_to = esc(VERSION_COLUMN), esc(VALID_TO_COLUMN)
            client.execute_sql(
                f"UPDATE {table} SET {sets} FROM {staging} AS s WHERE {table}.{version} = s.{version} "
                f"AND {table}.{valid_to} IS NULL AND ({differs})"
            )

    def _drops_deleted(self, mode: WriteMode, into_empty: bool) -> bool:
        """Whether the reader drops the rows Salesforce reports deleted: on a replace and on a first load into
        an empty table (nothing to remove them from); a merge into rows removes them by dlt's hard-delete
        hint. Never when the object keeps deleted rows with a flag."""
        return not self.policy.keep_deleted and (mode == "replace" or (into_empty and mode == "merge"))

    def _column_hints(self, mode: WriteMode, has_deleted: bool) -> dict[str, dict]:
        hints: dict[str, dict] = {}
        # rows queryAll reports deleted: a merge removes them (dlt's hard-delete hint) unless they are kept with a
        # flag or closed as versions (history's source filter)
        if mode == "merge" and has_deleted and not self.policy.keep_deleted and not self.history:
            hints["IsDeleted"] = {"hard_delete": True}
        return hints


def _load_error(exc: PipelineStepFailed, sobject: str, label: str, chunk: _Part) -> LoadError:
    """Our own error when dlt wraps it (a bad file names itself); else one that names the object and chunk."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, LoadError):
            return cause
        cause = cause.__cause__ or cause.__context__
    files = ", ".join(f.name for f in chunk.files)
    return LoadError(f"[{sobject}] chunk {label} ({files}) failed at dlt's {exc.step} step: {exc.exception}")


__all__ = ["LoadError", "LoadResult", "ObjectLoader", "table_name"]
