"""Reading CSV files as typed Arrow record batches, one block at a time, and the thread that reads ahead
while dlt writes the batch before; nothing here knows of dlt or of chunks."""

from __future__ import annotations

import csv
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..common.faultpoints import faultpoint
from ..errors import LoadError
from ..warehouse.naming import column_name
from .arrow_types import csv_column_types, decimal_columns, finish_batch, time_columns

# A batch is one block of CSV. Measured on a 1 GB file (bench/README): 2 MB loads as fast as 4 MB and, when one
# reader spans chunks (load_files), holds half as much read-ahead while DuckDB loads a chunk; 16 MB is slower.
READ_BLOCK = 2 << 20


def read_header(path: Path, delimiter: str = ",") -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f, delimiter=delimiter), [])


@dataclass
class BatchStats:
    rows: int = 0
    deleted: int = 0  # rows with IsDeleted = true


def arrow_batches(
    files: list[Path],
    fields: list[dict] | None,
    sobject: str,
    delimiter: str = ",",
    stats: BatchStats | None = None,
    column_names: dict[str, str] | None = None,
    block_size: int = READ_BLOCK,
) -> Iterator[pa.RecordBatch]:
    """Typed record batches from CSV files, streamed ``block_size`` bytes of CSV at a time (never a whole
    file in memory).

    ``column_names`` (API name -> column, from ``naming.assign_columns``) renames the fields whose column is
    not what dlt would make of their API name: the second of two names that normalize alike. When the files
    hold no record (or there are none), one empty batch typed from ``fields`` stands for them."""
    renames = {api: col for api, col in (column_names or {}).items() if col != column_name(api)}
    by_name = {f["name"]: f for f in fields or []}
    read_any = False
    for path in files:
        if path.stat().st_size == 0:
            continue
        header = _header(path, delimiter, sobject)
        types = _FileTypes.of(header, by_name, sobject, path)
        try:
            reader = _open_csv(path, types.columns, delimiter, block_size)
            deleted_at = header.index("IsDeleted") if "IsDeleted" in header and by_name else None
            for batch in reader:
                if stats is not None:
                    stats.rows += batch.num_rows
                    if deleted_at is not None:
                        stats.deleted += batch.column(deleted_at).true_count
                batch = finish_batch(batch, types.times, types.decimals)
                if renames:
                    batch = batch.rename_columns([renames.get(n, n) for n in batch.schema.names])
                read_any = True
                yield batch
                faultpoint("batch_read", sobject)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise LoadError(f"[{sobject}] {path}: {exc}") from exc
    if not read_any and fields:
        yield empty_batch(fields, sobject, renames)


def empty_batch(fields: list[dict], sobject: str, renames: dict[str, str] | None = None) -> pa.RecordBatch:
    """No rows, every field's column typed as a load types it: what an object with no records loads, so
    that its table exists (and is empty) like any other object's."""
    types = _FileTypes.of([f["name"] for f in fields], {f["name"]: f for f in fields}, sobject, Path("(none)"))
    batch = pa.RecordBatch.from_pylist([], schema=pa.schema(list(types.columns.items())))
    batch = finish_batch(batch, types.times, types.decimals)
    if renames:
        batch = batch.rename_columns([renames.get(n, n) for n in batch.schema.names])
    return batch


def _header(path: Path, delimiter: str, sobject: str) -> list[str]:
    try:
        return read_header(path, delimiter)
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"[{sobject}] {path}: not UTF-8 text ({exc.reason} at byte {exc.start} of the "
            "header); Salesforce writes UTF-8"
        ) from exc


@dataclass(frozen=True)
class _FileTypes:
    """How one file's columns are read: Arrow's type per column, and the columns ``finish_batch`` converts
    after (times; decimals narrowed to their scale)."""

    columns: dict[str, pa.DataType]
    times: list[str]
    decimals: dict[str, Any]

    @classmethod
    def of(cls, header: list[str], by_name: dict[str, dict], sobject: str, path: Path) -> _FileTypes:
        if not by_name:  # no describe (sf-pipeline load without fields): text as it is
            return cls({h: pa.string() for h in header}, [], {})
        unknown = [h for h in header if h not in by_name]
        if unknown:
            raise LoadError(
                f"[{sobject}] {path.name}: column(s) {', '.join(unknown)} are not fields of {sobject} in describe"
            )
        typed = [by_name[h] for h in header]
        return cls(csv_column_types(typed), time_columns(typed), decimal_columns(typed))


def _open_csv(path: Path, column_types: dict[str, pa.DataType], delimiter: str, block_size: int) -> Any:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_size, use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,  # a blank may come as "" too: null either way
            null_values=[""],
        ),
    )


T = TypeVar("T")
READ_AHEAD = 2  # batches parsed ahead of the one dlt is writing (each about READ_BLOCK of CSV)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


def read_ahead(items: Iterator[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """``items`` produced in a thread, at most ``depth`` ahead of the consumer, so Arrow parses the next CSV
    block while dlt writes this one to Parquet (both release the GIL: a 1 GB load on 2 cores, 17.7 s -> 14.6
    s, bench/README). The producer's error is raised here; a consumer that stops early stops the producer,
    which closes ``items`` (its open file) before this generator returns."""
    handoff: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        producer.join()


def without_deleted(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches without the rows whose IsDeleted is true (what a merge's hard-delete hint would drop)."""
    for batch in batches:
        at = batch.schema.get_field_index("IsDeleted")
        if at >= 0 and batch.column(at).true_count:
            batch = batch.filter(pc.invert(pc.fill_null(batch.column(at), False)))
        yield batch
