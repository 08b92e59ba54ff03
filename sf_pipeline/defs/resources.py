"""Dagster resources: the org, the warehouse, and the pipeline's tuning, each configured in one place.

Every setting has a default that runs locally (the emulator's demo org, a DuckDB file) and can be
overridden with an environment variable through ``EnvVar``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from ..catalog import CatalogObject
from ..common.sizing import ENV as SIZE_ENV
from ..datapath.load import ChunkRunner, DltSettings
from ..datapath.reconcile import SweepResult, sweep_ids
from ..datapath.split import SplitOptions
from ..datapath.sync import WINDOW_OVERLAP, SyncResult, sync_object
from ..errors import SettingsError
from ..salesforce import ExtractOptions, RetryPolicy, SalesforceClient, SalesforceSettings
from ..salesforce.settings import ENV as SALESFORCE_ENV
from ..warehouse import RunColumnMaps, SnowflakeSettings, StagingSettings, Warehouse, WarehouseConfigError


class SalesforceResource(dg.ConfigurableResource):
    """How to reach the org: ``login_url`` must be set (the demo sets it to its emulator)."""

    login_url: str | None = Field(
        default=None,
        description="OAuth host: https://login.salesforce.com, your My Domain, or the emulator (required)",
    )
    client_id: str = Field(default=SalesforceSettings.client_id, description="the connected app's consumer key")
    client_secret: str = Field(
        default=SalesforceSettings.client_secret, description="the connected app's consumer secret"
    )
    username: str | None = Field(default=None, description="username-password flow: the user")
    password: str | None = Field(
        default=None, description="username-password flow: the password with the security token appended"
    )
    refresh_token: str | None = Field(default=None, description="refresh-token flow: the token")
    access_token: str | None = Field(default=None, description="a given session (cannot be renewed when it expires)")
    instance_url: str | None = Field(default=None, description="the org's URL for a given session")
    api_version: str = Field(
        default=SalesforceSettings.api_version,
        description="one version for every call; 58.0+ pages results in parallel",
    )
    max_retries: int = RetryPolicy.max_attempts
    max_records_per_page: int = Field(
        default=ExtractOptions.max_records or 0, description="records per Bulk result page (maxRecords)"
    )
    download_concurrency: int = Field(
        default=0, description="result pages downloaded at once; 0: from the pod's memory (2 or 4)"
    )
    rest_max_records: int = Field(
        default=ExtractOptions.rest_max_records,
        ge=0,
        description=(
            "a Bulk object's window whose COUNT() is at most this is read by REST (no job floor, no daily job "
            "spent); 0: always Bulk"
        ),
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

    _shared: SalesforceClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # one login a run: every load, check and count of the run's objects shares this client (its session
        # renews itself when Salesforce expires it); Dagster closes it when the run ends
        self._shared = self._new_client()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def _new_client(self) -> SalesforceClient:
        return SalesforceClient(self.settings(), max_connections=max(self.download_concurrency, 4) + 2)

    @contextlib.contextmanager
    def client(self) -> Iterator[SalesforceClient]:
        """The run's client (logged in once a run), or, outside a Dagster execution, one of its own."""
        if self._shared is not None:
            yield self._shared
            return
        with self._new_client() as client:
            yield client

    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(
            max_records=self.max_records_per_page,
            concurrency=self.download_concurrency or None,
            rest_max_records=self.rest_max_records,
        )


def snowflake_resource(settings: SnowflakeSettings, schema: str) -> Any:
    """dagster-snowflake's resource on the warehouse's account: it runs the DDL and counts the pipeline owns,
    and dlt's loads share its connection (``snowflake_session``: the session dlt would set up itself)."""
    from dagster_snowflake import SnowflakeResource

    from ..warehouse.snowflake_session import SESSION_TIMEZONE

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
        autocommit=True,
        additional_snowflake_connection_args={**settings.endpoint_args(), "timezone": SESSION_TIMEZONE},
    )


class WarehouseResource(dg.ConfigurableResource):
    """Where rows land and how they get there: DuckDB (embedded default) or Snowflake, with files staged
    nowhere special, in a local folder, or in an Azure Blob Storage bucket (``az://container/prefix``)."""

    destination: str = Field(default="duckdb", description="duckdb (a local file) or snowflake")
    dataset: str = Field(default="salesforce", description="the schema tables are loaded into")
    duckdb_path: str = Field(default="data/sf_pipeline.duckdb", description="the DuckDB file (destination duckdb)")
    duckdb_memory_limit: str = Field(
        default="", description="DuckDB's cap, e.g. 192MB; empty: 45% of what the pod has left (48MB to 1024MB)"
    )
    snowflake_account: str | None = Field(
        default=None, description="account identifier: orgname-account, or a locator such as xy12345.west-europe.azure"
    )
    snowflake_user: str | None = Field(default=None, description="the loading user")
    snowflake_password: str | None = Field(default=None, description="its password, or instead a key pair")
    snowflake_private_key: str | None = Field(default=None, description="PEM text of the key pair's private key")
    snowflake_private_key_path: str | None = Field(default=None, description="a file holding the PEM private key")
    snowflake_private_key_passphrase: str | None = Field(default=None, description="when the key is encrypted")
    snowflake_role: str | None = Field(default=None, description="the role; unset: the user's default")
    snowflake_warehouse: str | None = Field(
        default=None, description="the virtual warehouse; unset: the user's default"
    )
    snowflake_database: str | None = Field(
        default=None, description="the database; tables go to the schema SF_PIPELINE_DATASET"
    )
    snowflake_stage: str | None = Field(default=None, description="named external stage over the staging bucket")
    snowflake_endpoint: str | None = Field(default=None, description="http(s)://host:port override (private link)")
    staging: str = Field(
        default="none", description="where dlt stages load files: none, a local folder, or az://container/prefix"
    )
    staging_file_format: str = Field(default="parquet", description="the staged files' format: parquet or jsonl")
    azure_account_name: str | None = Field(default=None, description="the storage account of the staging bucket")
    azure_account_key: str | None = Field(default=None, description="its key (or a SAS token instead)")
    azure_sas_token: str | None = Field(default=None, description="a SAS token with read, write, list and delete")
    azure_blob_endpoint: str | None = Field(
        default=None, description="http(s)://host[:port]/account for Azurite or a private endpoint"
    )

    _run_connections: contextlib.ExitStack | None = PrivateAttr(default=None)
    _snowflake: Any = PrivateAttr(default=None)
    _column_maps: RunColumnMaps | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_connections = contextlib.ExitStack()
        run = context.run
        if run is not None and run.asset_selection:
            # the run's objects' column records are read once, when the first of them loads
            objects = [key.path[-1] for key in run.asset_selection if key.path[0] == "salesforce"]
            self._column_maps = RunColumnMaps(sorted(objects))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_connections is not None:
            self._run_connections.close()
        self._run_connections = self._snowflake = self._column_maps = None

    @contextlib.contextmanager
    def _snowflake_connection(self, settings: SnowflakeSettings) -> Iterator[Any]:
        """In a run, one Snowflake connection (one login) for every load, count, DDL and swap of the run's
        objects, closed when the run ends; outside a run, a connection of its own."""
        if self._run_connections is None:
            with snowflake_resource(settings, self.dataset).get_connection() as conn:
                yield conn
            return
        if self._snowflake is None:
            self._snowflake = self._run_connections.enter_context(
                snowflake_resource(settings, self.dataset).get_connection()
            )
        yield self._snowflake

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
            snowflake_connection=lambda: self._snowflake_connection(snowflake),
            run_column_maps=self._column_maps,
        )
        try:
            warehouse.validate()
        except WarehouseConfigError as exc:
            raise dg.Failure(f"warehouse settings: {exc}") from None
        return warehouse


class PipelineSettings(dg.ConfigurableResource):
    """Splitting and working space; dlt keeps its own worker defaults."""

    work_dir: str | None = Field(
        default=None, description="extract pages, chunks and dlt's folders; unset: the system temp folder"
    )
    chunk_min_rows: int = Field(
        default=SplitOptions.min_rows, description="an object is cut into chunks only above this many records"
    )
    chunk_target_mb: int = Field(
        default=0, description="MiB of CSV a chunk aims at; 0: from the pod's memory (64 to 1024 MiB)"
    )
    memory_limit_mb: int = Field(
        default=0, description="MiB a load sizes itself by; 0: its cgroup's memory limit, else the RAM"
    )
    max_chunks: int = SplitOptions.max_chunks
    window_overlap_minutes: int = Field(
        default=int(WINDOW_OVERLAP.total_seconds() // 60),
        ge=0,
        description=(
            "minutes before its start an incremental window is read again (merged on Id, nothing doubles), so "
            "that a record committed after the window before it was read still lands; the change sensor's "
            "COUNT() answers trail now by as much"
        ),
    )
    dlt_log_level: str = Field(
        default=DltSettings.log_level, description="dlt's runtime log level: INFO or WARNING (none that hides failures)"
    )

    def split_options(self) -> SplitOptions:
        return SplitOptions(
            min_rows=self.chunk_min_rows, target_bytes=self.chunk_target_mb * 2**20 or None, max_chunks=self.max_chunks
        )

    def dlt_settings(self, loader_file_format: str = "parquet") -> DltSettings:
        try:
            return DltSettings(log_level=self.dlt_log_level, loader_file_format=loader_file_format)
        except SettingsError as exc:
            raise dg.Failure(str(exc)) from None

    @property
    def window_overlap(self) -> timedelta:
        return timedelta(minutes=self.window_overlap_minutes)

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
            overlap=settings.window_overlap,
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


SNOWFLAKE_FIELDS = (
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

# Each resource field a variable sets (field -> variable): the one list `default_resources` reads and
# docs/configuration.md is generated from (`sf-pipeline settings`). Unset, a field keeps its default.
RESOURCE_ENV: dict[str, tuple[type[dg.ConfigurableResource], dict[str, str]]] = {
    "salesforce": (
        SalesforceResource,
        {
            **SALESFORCE_ENV,
            "max_records_per_page": "SF_PIPELINE_PAGE_RECORDS",
            "download_concurrency": SIZE_ENV["download_concurrency"],
            "rest_max_records": "SF_PIPELINE_REST_MAX_RECORDS",
        },
    ),
    "warehouse": (
        WarehouseResource,
        {
            "destination": "SF_PIPELINE_DESTINATION",
            "dataset": "SF_PIPELINE_DATASET",
            "duckdb_path": "SF_PIPELINE_DUCKDB",
            "duckdb_memory_limit": SIZE_ENV["duckdb_memory_limit"],
            "staging": "SF_PIPELINE_STAGING",
            "staging_file_format": "SF_PIPELINE_STAGING_FORMAT",
            **{f"snowflake_{name}": f"SF_PIPELINE_SNOWFLAKE_{name.upper()}" for name in SNOWFLAKE_FIELDS},
            "azure_account_name": "AZURE_STORAGE_ACCOUNT_NAME",
            "azure_account_key": "AZURE_STORAGE_ACCOUNT_KEY",
            "azure_sas_token": "AZURE_STORAGE_SAS_TOKEN",
            "azure_blob_endpoint": "AZURE_STORAGE_BLOB_ENDPOINT",
        },
    ),
    "pipeline_settings": (
        PipelineSettings,
        {
            "work_dir": "SF_PIPELINE_WORK_DIR",
            "dlt_log_level": "SF_PIPELINE_DLT_LOG_LEVEL",
            "chunk_min_rows": "SF_PIPELINE_CHUNK_MIN_ROWS",
            "chunk_target_mb": SIZE_ENV["chunk_target_mb"],
            "memory_limit_mb": SIZE_ENV["memory_limit_mb"],
            "window_overlap_minutes": "SF_PIPELINE_WINDOW_OVERLAP_MINUTES",
        },
    ),
}


def resource_from_env(key: str) -> dg.ConfigurableResource:
    """The resource with an ``EnvVar`` for each of its variables that is set (read when the run starts)."""
    cls, env = RESOURCE_ENV[key]
    values: dict[str, Any] = {}
    for name, var in env.items():
        if os.environ.get(var):
            values[name] = dg.EnvVar.int(var) if cls.model_fields[name].annotation is int else dg.EnvVar(var)
    return cls(**values)


def destination_from_env() -> str:
    """The destination the code location loads into, for the asset's kinds (a label, read at import)."""
    var = RESOURCE_ENV["warehouse"][1]["destination"]
    return os.environ.get(var) or WarehouseResource.model_fields["destination"].default


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {key: resource_from_env(key) for key in RESOURCE_ENV}
