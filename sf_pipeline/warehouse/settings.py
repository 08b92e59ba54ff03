"""Warehouse and staging settings: which destination (DuckDB or Snowflake) and credentials, where load
files wait (nowhere special, a local folder, or an ``az://container/prefix`` bucket), each validated with
an error that names the setting."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from ..common.env_settings import EnvSettings, setting
from ..errors import WarehouseConfigError

if TYPE_CHECKING:
    from .client import RunColumnMaps, Warehouse

DestinationKind = Literal["duckdb", "snowflake"]
FileFormat = Literal["parquet", "jsonl"]
FILE_FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class SnowflakeSettings:
    """A Snowflake account, with a password or a key pair (PEM text or a file)."""

    account: str | None = None
    user: str | None = None
    database: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    private_key_path: str | None = None
    private_key_passphrase: str | None = field(default=None, repr=False)
    role: str | None = None
    warehouse: str | None = None
    stage: str | None = None  # a named external stage over the bucket; else COPY uses a SAS token
    endpoint: str | None = None  # http(s)://host:port instead of <account>.snowflakecomputing.com

    def validate(self) -> None:
        missing = [
            env
            for env, value in (
                ("SF_PIPELINE_SNOWFLAKE_ACCOUNT", self.account),
                ("SF_PIPELINE_SNOWFLAKE_USER", self.user),
                ("SF_PIPELINE_SNOWFLAKE_DATABASE", self.database),
            )
            if not value
        ]
        if missing:
            raise WarehouseConfigError(f"destination snowflake needs {', '.join(missing)}")
        if not (self.password or self.private_key or self.private_key_path):
            raise WarehouseConfigError(
                "destination snowflake needs SF_PIPELINE_SNOWFLAKE_PASSWORD or a key pair "
                "(SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY or SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY_PATH)"
            )
        if self.endpoint and urlparse(self.endpoint).scheme not in ("http", "https"):
            raise WarehouseConfigError(f"SF_PIPELINE_SNOWFLAKE_ENDPOINT must be an http(s) URL, got {self.endpoint!r}")

    def endpoint_args(self) -> dict[str, Any]:
        """Connector arguments that point it at another endpoint (a private link, or fakesnow in tests)."""
        if not self.endpoint:
            return {}
        url = urlparse(self.endpoint)
        return {
            "host": url.hostname,
            "port": url.port or (443 if url.scheme == "https" else 80),
            "protocol": url.scheme,
        }

    def dlt_credentials(self) -> Any:
        from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

        self.validate()
        creds = SnowflakeCredentials()
        creds.host, creds.username, creds.database = self.account, self.user, self.database
        creds.password, creds.role, creds.warehouse = self.password, self.role, self.warehouse
        creds.private_key, creds.private_key_path = self.private_key, self.private_key_path
        creds.private_key_passphrase = self.private_key_passphrase
        creds.query = {k: str(v) for k, v in self.endpoint_args().items()}
        return creds

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection with the same credentials dlt loads with (password or key pair, endpoint) and the
        session dlt sets on its own (``CONNECTION_PARAMS``), so dlt's loads can share it."""
        import snowflake.connector

        from .snowflake_session import CONNECTION_PARAMS

        credentials = self.dlt_credentials()
        credentials.on_resolved()  # reads private_key_path, as dlt does when it resolves them
        conn = snowflake.connector.connect(**{**credentials.to_connector_params(), **CONNECTION_PARAMS})
        try:
            yield conn
        finally:
            conn.close()


@dataclass(frozen=True)
class StagingSettings:
    """Where load files wait before the warehouse ingests them."""

    location: str | None = None  # None/"none", a local folder, or az://container/prefix
    azure_account_name: str | None = None
    azure_account_key: str | None = field(default=None, repr=False)
    azure_sas_token: str | None = field(default=None, repr=False)
    # http(s)://host[:port]/account instead of https://<account>.blob.core.windows.net (Azurite, private endpoints)
    azure_blob_endpoint: str | None = None

    @property
    def kind(self) -> Literal["none", "local", "azure"]:
        if not self.location or self.location.lower() == "none":
            return "none"
        scheme = urlparse(self.location).scheme
        if scheme in ("az", "abfs", "abfss"):
            return "azure"
        if scheme in ("", "file"):
            return "local"
        raise WarehouseConfigError(
            f"SF_PIPELINE_STAGING must be 'none', a local folder or az://container/prefix, got {self.location!r}"
        )

    def validate(self, destination: DestinationKind) -> None:
        if self.kind == "azure":
            if destination != "snowflake":
                raise WarehouseConfigError(
                    f"staging in {self.location} needs destination snowflake "
                    f"(DuckDB loads local files); set SF_PIPELINE_STAGING=none"
                )
            if not urlparse(self.location).netloc:
                raise WarehouseConfigError(f"SF_PIPELINE_STAGING {self.location!r} names no container")
            if not self.azure_account_name:
                raise WarehouseConfigError("staging on Azure needs AZURE_STORAGE_ACCOUNT_NAME")
            if not (self.azure_account_key or self.azure_sas_token):
                raise WarehouseConfigError(
                    "staging on Azure needs AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN "
                    "(Snowflake's COPY reads the bucket with a SAS token made from them)"
                )
            if self.azure_blob_endpoint and urlparse(self.azure_blob_endpoint).scheme not in ("http", "https"):
                raise WarehouseConfigError(
                    f"AZURE_STORAGE_BLOB_ENDPOINT must be an http(s) URL, got {self.azure_blob_endpoint!r}"
                )

    @property
    def local_dir(self) -> Path | None:
        if self.kind != "local":
            return None
        assert self.location is not None
        return Path(urlparse(self.location).path if self.location.startswith("file:") else self.location)

    @property
    def bucket_url(self) -> str | None:
        return self.location.rstrip("/") if self.kind == "azure" and self.location else None

    def azure_credentials(self) -> Any:
        from dlt.common.configuration.specs import AzureCredentials

        creds = AzureCredentials()
        creds.azure_storage_account_name = self.azure_account_name
        creds.azure_storage_account_key = self.azure_account_key
        creds.azure_storage_sas_token = self.azure_sas_token
        return creds

    def connection_string(self) -> str | None:
        """An Azure connection string for a non-default blob endpoint (adlfs's ``account_host`` is https only)."""
        if not self.azure_blob_endpoint:
            return None
        endpoint = self.azure_blob_endpoint.rstrip("/")
        if self.azure_account_key:
            return (
                f"DefaultEndpointsProtocol={urlparse(endpoint).scheme};AccountName={self.azure_account_name};"
                f"AccountKey={self.azure_account_key};BlobEndpoint={endpoint};"
            )
        return f"BlobEndpoint={endpoint};SharedAccessSignature={(self.azure_sas_token or '').lstrip('?')}"

    def dlt_staging(self) -> Any:
        """dlt's filesystem staging destination for a bucket, or None."""
        if self.kind != "azure":
            return None
        from .dlt_factories import filesystem

        connection_string = self.connection_string()
        return filesystem(
            bucket_url=self.bucket_url,
            credentials=self.azure_credentials(),
            kwargs={"connection_string": connection_string} if connection_string else None,
        )

    def filesystem(self) -> Any:
        """An fsspec (adlfs) filesystem on the bucket, with the same credentials dlt uses."""
        import adlfs

        return adlfs.AzureBlobFileSystem(
            account_name=self.azure_account_name,
            account_key=self.azure_account_key,
            sas_token=self.azure_sas_token,
            connection_string=self.connection_string(),
        )

    def dataset_prefix(self, dataset: str) -> str:
        """The bucket path (container/prefix/dataset) under which dlt stages a dataset's files."""
        url = urlparse(self.bucket_url or "")
        return f"{url.netloc}{url.path}/{dataset}".replace("//", "/")


class WarehouseSettings(EnvSettings):
    """Where rows land and how they get there, declared once: DuckDB (the embedded default) or Snowflake, with
    load files staged nowhere special, in a local folder, or in an Azure Blob Storage bucket
    (``az://container/prefix``). ``SnowflakeSettings`` and ``StagingSettings`` are views of these fields."""

    destination: str = setting("duckdb", "SF_PIPELINE_DESTINATION", "duckdb (a local file) or snowflake")
    dataset: str = setting("salesforce", "SF_PIPELINE_DATASET", "the schema tables are loaded into")
    duckdb_path: str = setting("data/sf_pipeline.duckdb", "SF_PIPELINE_DUCKDB", "the DuckDB file (destination duckdb)")
    duckdb_memory_limit: str | None = setting(
        None,
        "SF_PIPELINE_DUCKDB_MEMORY_LIMIT",
        "DuckDB's cap, e.g. 192MB; unset: 45% of what the pod has left (48MB to 1024MB)",
    )
    snowflake_account: str | None = setting(
        None,
        "SF_PIPELINE_SNOWFLAKE_ACCOUNT",
        "account identifier: orgname-account, or a locator such as xy12345.west-europe.azure",
    )
    snowflake_user: str | None = setting(None, "SF_PIPELINE_SNOWFLAKE_USER", "the loading user")
    snowflake_password: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_PASSWORD", "its password, or instead a key pair", secret=True
    )
    snowflake_private_key: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY", "PEM text of the key pair's private key", secret=True
    )
    snowflake_private_key_path: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY_PATH", "a file holding the PEM private key"
    )
    snowflake_private_key_passphrase: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "when the key is encrypted", secret=True
    )
    snowflake_role: str | None = setting(None, "SF_PIPELINE_SNOWFLAKE_ROLE", "the role; unset: the user's default")
    snowflake_warehouse: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_WAREHOUSE", "the virtual warehouse; unset: the user's default"
    )
    snowflake_database: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_DATABASE", "the database; tables go to the schema SF_PIPELINE_DATASET"
    )
    snowflake_stage: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_STAGE", "named external stage over the staging bucket"
    )
    snowflake_endpoint: str | None = setting(
        None, "SF_PIPELINE_SNOWFLAKE_ENDPOINT", "http(s)://host:port override (private link)"
    )
    staging: str = setting(
        "none", "SF_PIPELINE_STAGING", "where dlt stages load files: none, a local folder, or az://container/prefix"
    )
    staging_file_format: str = setting(
        "parquet", "SF_PIPELINE_STAGING_FORMAT", "the staged files' format: parquet or jsonl"
    )
    azure_account_name: str | None = setting(
        None, "AZURE_STORAGE_ACCOUNT_NAME", "the storage account of the staging bucket"
    )
    azure_account_key: str | None = setting(
        None, "AZURE_STORAGE_ACCOUNT_KEY", "its key (or a SAS token instead)", secret=True
    )
    azure_sas_token: str | None = setting(
        None, "AZURE_STORAGE_SAS_TOKEN", "a SAS token with read, write, list and delete", secret=True
    )
    azure_blob_endpoint: str | None = setting(
        None, "AZURE_STORAGE_BLOB_ENDPOINT", "http(s)://host[:port]/account for Azurite or a private endpoint"
    )

    def snowflake_settings(self) -> SnowflakeSettings:
        prefix = "snowflake_"
        return SnowflakeSettings(
            **{f.name: getattr(self, prefix + f.name) for f in dataclasses.fields(SnowflakeSettings)}
        )

    def staging_settings(self) -> StagingSettings:
        return StagingSettings(
            location=self.staging,
            azure_account_name=self.azure_account_name,
            azure_account_key=self.azure_account_key,
            azure_sas_token=self.azure_sas_token,
            azure_blob_endpoint=self.azure_blob_endpoint,
        )

    def warehouse(
        self,
        snowflake_connection: Callable[[], AbstractContextManager[Any]] | None = None,
        run_column_maps: RunColumnMaps | None = None,
    ) -> Warehouse:
        """The configured ``Warehouse``, validated (an error names the setting). Without
        ``snowflake_connection`` it connects to Snowflake with the connector itself."""
        from .client import Warehouse

        warehouse = Warehouse(
            kind=self.destination,  # type: ignore[arg-type]
            dataset=self.dataset,
            duckdb_path=Path(self.duckdb_path),
            duckdb_memory_limit=self.duckdb_memory_limit,
            snowflake=self.snowflake_settings(),
            staging=self.staging_settings(),
            snowflake_connection=snowflake_connection,
            run_column_maps=run_column_maps,
        )
        warehouse.validate()
        return warehouse
