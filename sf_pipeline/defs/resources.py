"""Dagster resources: the org, the warehouse, and the pipeline's tuning, each configured in one place.

Every setting has a default that runs locally (the emulator's demo org, a DuckDB file) and can be
overridden with an environment variable through ``EnvVar``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ..load import DltSettings, duckdb_destination
from ..salesforce import ExtractOptions, RetryPolicy, SalesforceClient, SalesforceSettings
from ..salesforce.settings import DEFAULT_API_VERSION, DEFAULT_LOGIN_URL
from ..split import SplitOptions


class SalesforceResource(dg.ConfigurableResource):
    """How to reach the org (defaults: the bundled emulator's demo org)."""

    login_url: str = DEFAULT_LOGIN_URL
    client_id: str = "demo-client-id"
    client_secret: str = "demo-client-secret"
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    api_version: str = DEFAULT_API_VERSION
    max_retries: int = 6
    max_records_per_page: int = 250_000
    download_concurrency: int = 4

    def settings(self) -> SalesforceSettings:
        return SalesforceSettings(
            login_url=self.login_url, client_id=self.client_id, client_secret=self.client_secret,
            username=self.username, password=self.password, refresh_token=self.refresh_token,
            api_version=self.api_version, retry=RetryPolicy(max_attempts=self.max_retries),
        )

    def client(self) -> SalesforceClient:
        return SalesforceClient(self.settings(), max_connections=self.download_concurrency + 2)

    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(max_records=self.max_records_per_page, concurrency=self.download_concurrency)


class WarehouseResource(dg.ConfigurableResource):
    """Where rows land. ``duckdb`` (embedded default) writes a local file."""

    destination: str = "duckdb"
    duckdb_path: str = "data/sf_pipeline.duckdb"
    duckdb_memory_limit: str = "512MB"
    dataset: str = "salesforce"

    def dlt_destination(self) -> Any:
        if self.destination == "duckdb":
            return duckdb_destination(Path(self.duckdb_path), self.duckdb_memory_limit)
        raise dg.Failure(f"warehouse destination {self.destination!r} is not supported yet (setting "
                         "SF_PIPELINE_DESTINATION); use 'duckdb'")


class PipelineSettings(dg.ConfigurableResource):
    """Splitting and working space; dlt keeps its own worker defaults."""

    work_dir: str | None = None
    chunk_min_rows: int = 500_000
    chunk_target_mb: int = 500
    max_chunks: int = 16
    dlt_log_level: str = Field(default="WARNING", description="dlt runtime log level: INFO or WARNING")

    def split_options(self) -> SplitOptions:
        return SplitOptions(min_rows=self.chunk_min_rows, target_bytes=self.chunk_target_mb * 2**20,
                            max_chunks=self.max_chunks)

    def dlt_settings(self) -> DltSettings:
        if self.dlt_log_level not in ("INFO", "WARNING"):
            raise dg.Failure(f"dlt_log_level must be INFO or WARNING (never a level that hides failures), "
                             f"got {self.dlt_log_level!r}")
        return DltSettings(log_level=self.dlt_log_level)

    def work_path(self) -> Path | None:
        if not self.work_dir:
            return None
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.work_dir)


def _env(name: str, default: str) -> Any:
    """An EnvVar when the variable is set, else the local default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "salesforce": SalesforceResource(
            login_url=_env("SF_LOGIN_URL", DEFAULT_LOGIN_URL),
            client_id=_env("SF_CLIENT_ID", "demo-client-id"),
            client_secret=_env("SF_CLIENT_SECRET", "demo-client-secret"),
            username=_env("SF_USERNAME", None) if os.environ.get("SF_USERNAME") else None,
            password=_env("SF_PASSWORD", None) if os.environ.get("SF_PASSWORD") else None,
            refresh_token=_env("SF_REFRESH_TOKEN", None) if os.environ.get("SF_REFRESH_TOKEN") else None,
            api_version=_env("SF_API_VERSION", DEFAULT_API_VERSION),
        ),
        "warehouse": WarehouseResource(
            destination=_env("SF_PIPELINE_DESTINATION", "duckdb"),
            duckdb_path=_env("SF_PIPELINE_DUCKDB", "data/sf_pipeline.duckdb"),
        ),
        "pipeline_settings": PipelineSettings(
            work_dir=_env("SF_PIPELINE_WORK_DIR", None) if os.environ.get("SF_PIPELINE_WORK_DIR") else None,
            dlt_log_level=_env("SF_PIPELINE_DLT_LOG_LEVEL", "WARNING"),
        ),
    }
