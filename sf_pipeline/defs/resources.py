"""Dagster resources: the org, the warehouse, and the pipeline's tuning, each configured in one place.

Every setting has a default that runs locally (the emulator's demo org, a DuckDB file) and can be
overridden with an environment variable through ``EnvVar``.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from ..catalog import CatalogObject
from ..common.sizing import ENV as SIZE_ENV
from ..datapath.load import ChunkRunner, DltSettings
from ..datapath.reconcile import SweepResult, sweep_ids
from ..datapath.split import SplitOptions
from ..datapath.sync import SyncResult, sync_object
from ..errors import SettingsError
from ..salesforce import ExtractOptions, RetryPolicy, SalesforceClient, SalesforceSettings
from ..salesforce.settings import ENV as SALESFORCE_ENV
from ..warehouse import SnowflakeSettings, StagingSettings, Warehouse, WarehouseConfigError


class SalesforceResource(dg.ConfigurableResource):
    """How to reach the org (defaults: the bundled emulator's demo org)."""

    login_url: str = SalesforceSettings.login_url
    client_id: str = SalesforceSettings.client_id
    client_secret: str = SalesforceSettings.client_secret
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    access_token: str | None = Field(default=None, description="a given session (cannot be renewed when it expires)")
    instance_url: str | None = None
    api_version: str = SalesforceSettings.api_version
    max_retries: int = RetryPolicy.max_attempts
    max_records_per_page: int = ExtractOptions.max_records or 0
    download_concurrency: int = Field(
        default=0, description="result pages downloaded at once; 0: from the pod's memory"
    )

    def settings(self) -> SalesforceSettings:
        return SalesforceSettings(
            login_url=self.login_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            username=self.username,
            password=self.password,
            refresh_token=self.refresh_token,
            access_token=self.access_token,
            instance_url=self.instance_url,
            api_version=self.api_version,
            retry=RetryPolicy(max_attempts=self.max_retries),
        )

    def client(self) -> SalesforceClient:
        return SalesforceClient(self.settings(), max_connections=max(self.download_concurrency, 4) + 2)

    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(max_records=self.max_records_per_page, concurrency=self.download_concurrency or None)


def snowflake_resource(settings: SnowflakeSettings, schema: str) -> Any:
    """dagster-snowflake's resource on the warehouse's account: it runs the DDL and counts the pipeline owns."""
    from dagster_snowflake import SnowflakeResource

    settings.validate()
    return SnowflakeResource(
        account=settings.account,
        user=settings.user,
        password=settings.password,
        database=settings.database,
        schema=schema,
        role=settings.role,
        warehouse=settings.warehouse,
        private_key=settings.private_key,
        private_key_path=settings.private_key_path,
        private_key_password=settings.private_key_passphrase,
        additional_snowflake_connection_args=settings.endpoint_args() or None,
    )


class WarehouseResource(dg.ConfigurableResource):
    """Where rows land and how they get there: DuckDB (embedded default) or Snowflake, with files staged
    nowhere special, in a local folder, or in an Azure Blob Storage bucket (``az://container/prefix``)."""

    destination: str = Field(default="duckdb", description="duckdb or snowflake")
    dataset: str = Field(default="salesforce", description="the schema tables are loaded into")
    duckdb_path: str = "data/sf_pipeline.duckdb"
    duckdb_memory_limit: str = Field(
        default="", description="DuckDB's cap, e.g. \"192MB\"; empty: from the pod's memory"
    )
    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_password: str | None = None
    snowflake_private_key: str | None = Field(default=None, description="PEM text of the key pair's private key")
    snowflake_private_key_path: str | None = None
    snowflake_private_key_passphrase: str | None = None
    snowflake_role: str | None = None
    snowflake_warehouse: str | None = None
    snowflake_database: str | None = None
    snowflake_stage: str | None = Field(default=None, description="named external stage over the staging bucket")
    snowflake_endpoint: str | None = Field(default=None, description="http(s)://host:port override (private link)")
    staging: str = Field(default="none", description="none, a local folder, or az://container/prefix")
    staging_file_format: str = Field(default="parquet", description="parquet or jsonl")
    azure_account_name: str | None = None
    azure_account_key: str | None = None
    azure_sas_token: str | None = None
    azure_blob_endpoint: str | None = Field(
        default=None, description="blob endpoint URL for Azurite or a private endpoint"
    )

    def warehouse(self) -> Warehouse:
        snowflake = SnowflakeSettings(
            account=self.snowflake_account,
            user=self.snowflake_user,
            database=self.snowflake_database,
            password=self.snowflake_password,
            private_key=self.snowflake_private_key,
            private_key_path=self.snowflake_private_key_path,
            private_key_passphrase=self.snowflake_private_key_passphrase,
            role=self.snowflake_role,
            warehouse=self.snowflake_warehouse,
            stage=self.snowflake_stage,
            endpoint=self.snowflake_endpoint,
        )
        staging = StagingSettings(
            location=self.staging,
            azure_account_name=self.azure_account_name,
            azure_account_key=self.azure_account_key,
            azure_sas_token=self.azure_sas_token,
            azure_blob_endpoint=self.azure_blob_endpoint,
        )
        warehouse = Warehouse(
            kind=self.destination,
            dataset=self.dataset,  # type: ignore[arg-type]
            duckdb_path=Path(self.duckdb_path),
            duckdb_memory_limit=self.duckdb_memory_limit or None,
            snowflake=snowflake,
            staging=staging,
            snowflake_connection=lambda: snowflake_resource(snowflake, self.dataset).get_connection(),
        )
        try:
            warehouse.validate()
        except WarehouseConfigError as exc:
            raise dg.Failure(f"warehouse settings: {exc}") from None
        return warehouse


class PipelineSettings(dg.ConfigurableResource):
    """Splitting and working space; dlt keeps its own worker defaults."""

    work_dir: str | None = None
    chunk_min_rows: int = SplitOptions.min_rows
    chunk_target_mb: int = Field(default=0, description="chunk size aimed at; 0: from the pod's memory")
    memory_limit_mb: int = Field(default=0, description="the memory a load sizes itself by; 0: the cgroup's limit")
    max_chunks: int = SplitOptions.max_chunks
    dlt_log_level: str = Field(default=DltSettings.log_level, description="dlt runtime log level: INFO or WARNING")

    def split_options(self) -> SplitOptions:
        return SplitOptions(
            min_rows=self.chunk_min_rows, target_bytes=self.chunk_target_mb * 2**20 or None, max_chunks=self.max_chunks
        )

    def dlt_settings(self, loader_file_format: str = "parquet") -> DltSettings:
        try:
            return DltSettings(log_level=self.dlt_log_level, loader_file_format=loader_file_format)
        except SettingsError as exc:
            raise dg.Failure(str(exc)) from None

    def work_path(self) -> Path | None:
        if not self.work_dir:
            return None
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.work_dir)


def sync_with(
    salesforce: SalesforceResource,
    warehouse: WarehouseResource,
    settings: PipelineSettings,
    entry: CatalogObject,
    target: Warehouse,
    *,
    since: datetime | None,
    until: datetime | None,
    full_refresh: bool,
    extract_overrides: dict[str, Any] | None = None,
    split_overrides: dict[str, Any] | None = None,
    run_chunk: ChunkRunner | None = None,
) -> SyncResult:
    """``sync_object`` with the settings these resources hold: the asset and ``sf-pipeline sync`` both run this."""
    extract = dataclasses.replace(salesforce.extract_options(), **(extract_overrides or {}))
    split = dataclasses.replace(settings.split_options(), **(split_overrides or {}))
    with salesforce.client() as client:
        return sync_object(
            client,
            entry,
            target,
            since=since,
            until=until,
            full_refresh=full_refresh,
            work_dir=settings.work_path(),
            extract_options=extract,
            split_options=split,
            dlt_settings=settings.dlt_settings(warehouse.staging_file_format),
            run_chunk=run_chunk,
            memory_limit_mb=settings.memory_limit_mb or None,
        )


def sweep_with(
    salesforce: SalesforceResource,
    settings: PipelineSettings,
    entry: CatalogObject,
    target: Warehouse,
    file_format: str = "parquet",
) -> SweepResult:
    """``sweep_ids`` with the settings these resources hold: the Id sweep check and ``sf-pipeline sweep`` run this."""
    with salesforce.client() as client:
        return sweep_ids(
            client,
            entry,
            target,
            work_dir=settings.work_path(),
            extract_options=salesforce.extract_options(),
            split_options=settings.split_options(),
            dlt_settings=settings.dlt_settings(file_format),
            memory_limit_mb=settings.memory_limit_mb or None,
        )


def _env(name: str, default: str | None = None) -> Any:
    """An EnvVar when the variable is set, else the local default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def _int_env(name: str, default: int) -> Any:
    return dg.EnvVar.int(name) if os.environ.get(name) else default


SNOWFLAKE_ENV = (
    "account",
    "user",
    "password",
    "private_key",
    "private_key_path",
    "private_key_passphrase",
    "role",
    "warehouse",
    "database",
    "stage",
    "endpoint",
)
AZURE_ENV = {
    "azure_account_name": "AZURE_STORAGE_ACCOUNT_NAME",
    "azure_account_key": "AZURE_STORAGE_ACCOUNT_KEY",
    "azure_sas_token": "AZURE_STORAGE_SAS_TOKEN",
    "azure_blob_endpoint": "AZURE_STORAGE_BLOB_ENDPOINT",
}


def destination_from_env() -> str:
    """The destination the code location loads into, for the asset's kinds (a label, read at import)."""
    return os.environ.get("SF_PIPELINE_DESTINATION") or WarehouseResource.model_fields["destination"].default


def warehouse_from_env() -> WarehouseResource:
    return WarehouseResource(
        destination=_env("SF_PIPELINE_DESTINATION", WarehouseResource.model_fields["destination"].default),
        dataset=_env("SF_PIPELINE_DATASET", "salesforce"),
        duckdb_path=_env("SF_PIPELINE_DUCKDB", "data/sf_pipeline.duckdb"),
        duckdb_memory_limit=_env(SIZE_ENV["duckdb_memory_limit"], ""),
        staging=_env("SF_PIPELINE_STAGING", "none"),
        staging_file_format=_env("SF_PIPELINE_STAGING_FORMAT", "parquet"),
        **{f"snowflake_{k}": _env(f"SF_PIPELINE_SNOWFLAKE_{k.upper()}") for k in SNOWFLAKE_ENV},
        **{field: _env(env) for field, env in AZURE_ENV.items()},
    )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "salesforce": SalesforceResource(
            **{name: _env(var, SalesforceResource.model_fields[name].default) for name, var in SALESFORCE_ENV.items()},
            max_records_per_page=_int_env("SF_PIPELINE_PAGE_RECORDS", ExtractOptions.max_records or 0),
            download_concurrency=_int_env(SIZE_ENV["download_concurrency"], 0),
        ),
        "warehouse": warehouse_from_env(),
        "pipeline_settings": PipelineSettings(
            work_dir=_env("SF_PIPELINE_WORK_DIR"),
            dlt_log_level=_env("SF_PIPELINE_DLT_LOG_LEVEL", DltSettings.log_level),
            chunk_min_rows=_int_env("SF_PIPELINE_CHUNK_MIN_ROWS", SplitOptions.min_rows),
            chunk_target_mb=_int_env(SIZE_ENV["chunk_target_mb"], 0),
            memory_limit_mb=_int_env(SIZE_ENV["memory_limit_mb"], 0),
        ),
    }
