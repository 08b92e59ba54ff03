"""``Warehouse``: one destination and its staging area for a load, with the DDL, counts and Id comparisons a
load and its checks run against it. DuckDB connections of ours all take ``duckdb_config``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.sizing import UNSIZED
from ..errors import WarehouseConfigError
from . import dlt_factories
from .ddl import (
    IdComparison,
    Span,
    StoredColumns,
    count_spans,
    drop_object_table,
    forget_dlt_schema,
    read_column_map,
    read_column_maps,
    reconcile_ids,
    swap_in,
    update_columns,
    write_column_map,
)
from .naming import ColumnRecord
from .settings import DestinationKind, SnowflakeSettings, StagingSettings

if TYPE_CHECKING:
    from ..common.sizing import LoadSizes


def duckdb_config(memory_limit: str | None, threads: int | None = None) -> dict[str, Any]:
    """What every DuckDB connection of ours sets: the cap (DuckDB's own default is 80% of the machine's RAM,
    which on a small pod is the kernel's OOM line): a load's (``sizing`` derives it from the pod's limit), or
    outside a sized load the smallest a load would take; and the threads. Insertion order is not kept: a table
    has no order, and keeping it makes a capped DuckDB buffer a load's rows before writing them (bench/README:
    a 1 GB Parquet insert under a 192MB cap, 11.3 s kept, 5.2 s not)."""
    config: dict[str, Any] = {
        "preserve_insertion_order": False,
        "memory_limit": memory_limit or UNSIZED.duckdb_memory_limit,
    }
    if threads:
        config["threads"] = threads
    return config


def duckdb_destination(path: Path | str, memory_limit: str | None = None, threads: int | None = None) -> Any:
    """The embedded warehouse: a DuckDB file, each of dlt's connections capped (``duckdb_config``)."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    credentials = DuckDbCredentials(str(path))
    credentials.global_config = duckdb_config(memory_limit, threads)
    return dlt_factories.duckdb(credentials)


@contextlib.contextmanager
def duckdb_connection(path: Path | str, memory_limit: str | None = None, threads: int | None = None) -> Iterator[Any]:
    """A connection for the pipeline's own SQL, capped like dlt's."""
    import duckdb

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path), config=duckdb_config(memory_limit, threads))
    try:
        yield conn
    finally:
        conn.close()


@dataclass
class RunColumnMaps:
    """The column records of a run's objects, read in one statement when the first of them asks and kept up to
    date by what the run records: a batch of N objects reads ``_sf_columns`` once, not N times, and writes a
    schema change with one INSERT."""

    sobjects: list[str]
    stored: StoredColumns | None = None


@dataclass(frozen=True)
class Warehouse:
    """One configured warehouse: the dlt destination and staging for loads, a connection for the DDL
    and counts the pipeline owns (DuckDB directly; Snowflake through ``snowflake_connection`` when the
    caller gives one, as the Dagster resource does with dagster-snowflake's, else the connector itself)."""

    kind: DestinationKind = "duckdb"
    dataset: str = "salesforce"
    duckdb_path: Path = Path("data/sf_pipeline.duckdb")
    duckdb_memory_limit: str | None = None  # None: a load's sizes set it (``sized``); outside one, the smallest
    duckdb_threads: int | None = None  # None: DuckDB's own (the cores)
    snowflake: SnowflakeSettings = SnowflakeSettings()
    staging: StagingSettings = StagingSettings()
    snowflake_connection: Callable[[], AbstractContextManager[Any]] | None = field(default=None, compare=False)
    run_column_maps: RunColumnMaps | None = field(default=None, compare=False)

    def sized(self, sizes: LoadSizes) -> Warehouse:
        """This warehouse with DuckDB's cap and threads as a load's sizes say (``sizing``)."""
        return replace(self, duckdb_memory_limit=sizes.duckdb_memory_limit, duckdb_threads=sizes.duckdb_threads)

    def validate(self) -> None:
        if self.kind not in ("duckdb", "snowflake"):
            raise WarehouseConfigError(f"SF_PIPELINE_DESTINATION must be duckdb or snowflake, got {self.kind!r}")
        if self.kind == "snowflake":
            self.snowflake.validate()
        self.staging.validate(self.kind)

    def dlt_destination(self) -> Any:
        self.validate()
        if self.kind == "duckdb":
            return duckdb_destination(self.duckdb_path, self.duckdb_memory_limit, self.duckdb_threads)
        return dlt_factories.snowflake(**self._snowflake_kwargs())

    def _snowflake_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"credentials": self.snowflake.dlt_credentials()}
        if self.snowflake.stage:
            kwargs["stage_name"] = self.snowflake.stage
        # files PUT into a table stage are removed after COPY, like files staged in a bucket; a bucket's files are
        # deleted by the loader (a dead run's before a load, the load's own after it), so dlt's truncation of the
        # table's staged folder before each load (a directory check, a listing and a second look at its
        # ``init`` file: 8 blob requests) would only repeat it
        return {"keep_staged_files": False, "truncate_tables_on_staging_destination_before_load": False, **kwargs}

    @contextlib.contextmanager
    def load_destination(self) -> Iterator[Any]:
        """The dlt destination for one object's load, whatever number of chunks (pipelines) it takes, on the
        connection ``connection`` gives (in a Dagster run: the run's). On DuckDB the file is checkpointed once
        a load rather than once a chunk (bench/README: 2.3 s of a 1 GB load's 16.4 s for each checkpoint); on
        Snowflake dlt's jobs log in once a run rather than once a job (``snowflake_session``)."""
        with self.connection() as conn:
            if self.kind == "duckdb":
                from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

                yield dlt_factories.duckdb(DuckDbCredentials(conn))
            else:
                from .snowflake_session import session_for, session_snowflake

                yield session_snowflake(session_for(conn), **self._snowflake_kwargs())

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        self.validate()
        if self.kind == "duckdb":
            with duckdb_connection(self.duckdb_path, self.duckdb_memory_limit, self.duckdb_threads) as conn:
                yield conn
        else:
            with (self.snowflake_connection or self.snowflake.connect)() as conn:
                yield conn

    def drop_object_table(self, table: str, dlt_schema: str) -> bool:
        with self.connection() as conn:
            return drop_object_table(conn, self.kind, self.dataset, table, dlt_schema)

    def swap_in(self, loaded: str, table: str, dlt_schema: str) -> None:
        with self.connection() as conn:
            swap_in(conn, self.kind, self.dataset, loaded, table, dlt_schema)

    def column_map(self, sobject: str) -> dict[str, ColumnRecord]:
        """The current column record of every field of ``sobject`` an earlier load gave a column."""
        cache = self.run_column_maps
        with self.connection() as conn:
            if cache is None or sobject not in cache.sobjects:
                return read_column_map(conn, self.kind, self.dataset, sobject)
            if cache.stored is None:
                cache.stored = read_column_maps(conn, self.kind, self.dataset, cache.sobjects)
            return dict(cache.stored.maps[sobject])

    def record_columns(self, sobject: str, records: dict[str, ColumnRecord]) -> None:
        if not records:
            return
        cache = self.run_column_maps
        stored = cache.stored if cache is not None and sobject in cache.sobjects else None
        with self.connection() as conn:
            if stored is None:
                write_column_map(conn, self.kind, self.dataset, sobject, records)
                return
            last_seq = stored.seqs[sobject]
            write_column_map(
                conn, self.kind, self.dataset, sobject, records, last_seq=last_seq, table_exists=stored.table_exists
            )
        stored.maps[sobject].update(records)
        stored.seqs[sobject] = last_seq + len(records)
        stored.table_exists = True

    def forget_pipeline(self, dlt_schema: str) -> None:
        """Forget dlt's stored schema of a pipeline whose table the pipeline itself dropped (the Id sweep's)."""
        with self.connection() as conn:
            forget_dlt_schema(conn, self.kind, self.dataset, dlt_schema)

    def update_columns(
        self, table: str, source: str, key: str, columns: list[str], current_only: str | None = None
    ) -> int:
        """``ddl.update_columns``: the rows of ``table`` whose ``columns`` differ from ``source``'s, updated."""
        with self.connection() as conn:
            return update_columns(conn, self.kind, self.dataset, table, source, key, columns, current_only)

    def reconcile_ids(
        self, table: str, ids_table: str, id_column: str, mode: str, flag_columns: tuple[str, ...]
    ) -> IdComparison:
        with self.connection() as conn:
            return reconcile_ids(conn, self.kind, self.dataset, table, ids_table, id_column, mode, flag_columns)

    def count_spans(
        self,
        table: str,
        cursor_field: str | None = None,
        spans: dict[str, Span] | None = None,
        *,
        deleted_at: str | None = None,
    ) -> dict[str, int]:
        """The table's rows (``"all"``) and those of each named span, in one statement (``ddl.count_spans``)."""
        with self.connection() as conn:
            return count_spans(conn, self.kind, self.dataset, table, cursor_field, spans, deleted_at)

    def count_rows(
        self,
        table: str,
        cursor_field: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        deleted_at: str | None = None,
    ) -> int:
        """Rows in the table, or those whose cursor is in [since, until) (either end open: None)."""
        if not (cursor_field and (since or until)):
            return self.count_spans(table, deleted_at=deleted_at)["all"]
        return self.count_spans(table, cursor_field, {"span": (since, until)}, deleted_at=deleted_at)["span"]
