"""dlt's own configuration for the loader's pipelines: its log level, whether finished load packages are
deleted, and the file format it stages; declared once, validated, written to dlt's in-memory config."""

from __future__ import annotations

from dataclasses import dataclass

import dlt

from ..errors import SettingsError
from ..warehouse import FILE_FORMATS

LOG_LEVELS = ("INFO", "WARNING")


@dataclass(frozen=True)
class DltSettings:
    """dlt's own configuration for our pipelines, set in one place.

    dlt's worker defaults are kept: measured here, hand-tuned caps did not beat them.
    """

    log_level: str = "WARNING"  # dlt's runtime logger; failures still raise and are logged by us
    delete_completed_jobs: bool = True  # drop load package files once loaded: local disk stays near one chunk
    loader_file_format: str = "parquet"  # parquet or jsonl: the files dlt stages and the warehouse ingests

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                f"dlt log level (SF_PIPELINE_DLT_LOG_LEVEL) must be INFO or WARNING (never a level "
                f"that hides failures), got {self.log_level!r}"
            )
        if self.loader_file_format not in FILE_FORMATS:
            raise SettingsError(
                f"loader file format (SF_PIPELINE_STAGING_FORMAT) must be one of {FILE_FORMATS}, "
                f"got {self.loader_file_format!r}"
            )

    def configure(self) -> None:
        """dlt's configuration for our pipelines, written to dlt's in-memory config (never to ``os.environ``,
        which the extract and read-ahead threads read while a load runs). Idempotent; the same values for
        every pipeline of the process but the log level, which is the latest caller's."""
        dlt.config["runtime.log_level"] = self.log_level
        dlt.config["load.delete_completed_jobs"] = self.delete_completed_jobs
