"""The load's settings, declared once (``LoadSettings``): working space, chunking, the memory a load sizes
itself by, the window overlap and dlt's log level. ``PipelineSettings`` (the Dagster resource) inherits these
fields; the command line reads them with ``from_env``. Imports neither Dagster nor dlt."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.env_settings import EnvSettings, setting
from ..common.sizing import MiB, SizeSettings
from .split import SplitOptions

if TYPE_CHECKING:
    from ..salesforce.settings import ExtractSettings
    from ..warehouse.settings import WarehouseSettings
    from .dlt_settings import DltSettings

# How far before its start a window is read again. SystemModstamp is set when a transaction starts writing a
# record, and the record is visible only once the transaction commits: a long transaction (a bulk update, a
# trigger chain) commits records stamped minutes earlier, after a window covering that stamp was read.
# Salesforce's replication API lags its latestDateCovered for the same reason; Singer's tap looks back too.
WINDOW_OVERLAP_MINUTES = 5


class LoadSettings(EnvSettings):
    """Splitting, working space and the memory a load sizes itself by; dlt keeps its own worker defaults."""

    work_dir: str | None = setting(
        None, "SF_PIPELINE_WORK_DIR", "extract pages, chunks and dlt's folders; unset: the system temp folder"
    )
    chunk_min_rows: int = setting(
        SplitOptions.min_rows,
        "SF_PIPELINE_CHUNK_MIN_ROWS",
        "an object is cut into chunks only above this many records",
        ge=1,
    )
    chunk_target_mb: int | None = setting(
        None,
        "SF_PIPELINE_CHUNK_TARGET_MB",
        "MiB of CSV a chunk aims at; unset: from the pod's memory (64 to 1024 MiB)",
        ge=1,
    )
    memory_limit_mb: int | None = setting(
        None,
        "SF_PIPELINE_MEMORY_LIMIT_MB",
        "MiB a load sizes itself by; unset: its cgroup's memory limit, else the RAM",
        ge=1,
    )
    max_chunks: int = setting(SplitOptions.max_chunks, None, "chunks an object is cut into at most", ge=1)
    window_overlap_minutes: int = setting(
        WINDOW_OVERLAP_MINUTES,
        "SF_PIPELINE_WINDOW_OVERLAP_MINUTES",
        "minutes before its start an incremental window is read again (merged on Id, nothing doubles), so that "
        "a record committed after the window before it was read still lands; the change sensor's COUNT() "
        "answers trail now by as much",
        ge=0,
    )
    hash_key: str | None = setting(
        None,
        "SF_PIPELINE_HASH_KEY",
        "the secret key of the catalog's hash_fields (HMAC-SHA256); changing it needs a full refresh of those objects",
        secret=True,
    )
    dlt_log_level: str = setting(
        "WARNING",
        "SF_PIPELINE_DLT_LOG_LEVEL",
        "dlt's runtime log level: INFO or WARNING (none that hides failures)",
        pattern="^(INFO|WARNING)$",
    )

    def split_options(self) -> SplitOptions:
        target = self.chunk_target_mb * MiB if self.chunk_target_mb else None
        return SplitOptions(min_rows=self.chunk_min_rows, target_bytes=target, max_chunks=self.max_chunks)

    def dlt_settings(self, loader_file_format: str = "parquet") -> DltSettings:
        from .dlt_settings import DltSettings

        return DltSettings(log_level=self.dlt_log_level, loader_file_format=loader_file_format)

    @property
    def window_overlap(self) -> timedelta:
        return timedelta(minutes=self.window_overlap_minutes)

    def work_path(self) -> Path | None:
        if not self.work_dir:
            return None
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.work_dir)

    def size_settings(self, warehouse: WarehouseSettings, extract: ExtractSettings) -> SizeSettings:
        """The sizes these settings give explicitly, for ``sizing.plan_sizes`` (the rest it derives)."""
        return SizeSettings(
            memory_limit_mb=self.memory_limit_mb,
            duckdb_memory_limit=warehouse.duckdb_memory_limit,
            chunk_bytes=self.chunk_target_mb * MiB if self.chunk_target_mb else None,
            download_concurrency=extract.download_concurrency,
        )
