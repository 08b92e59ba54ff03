"""The warehouse side of a load: which dlt destination and staging area it uses, the DDL the pipeline
owns (a full refresh drops only catalog objects' tables), row counts for checks, and the cleanup of
staged files once they are loaded. Plain Python, no Dagster.

Destinations: ``duckdb`` (the embedded default, a local file) or ``snowflake``. Staging: none, a
local folder (where dlt writes its load files; Snowflake then receives them by ``PUT`` into the
table's internal stage), or an ``az://container/prefix`` bucket through adlfs, from which Snowflake
runs ``COPY INTO``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import dlt

log = logging.getLogger(__name__)

DestinationKind = Literal["duckdb", "snowflake"]
FileFormat = Literal["parquet", "jsonl"]
FILE_FORMATS = ("parquet", "jsonl")


class WarehouseConfigError(ValueError):
    """A warehouse or staging setting that cannot work; the message names the setting."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


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
        missing = [env for env, value in (("SF_PIPELINE_SNOWFLAKE_ACCOUNT", self.account),
                                          ("SF_PIPELINE_SNOWFLAKE_USER", self.user),
                                          ("SF_PIPELINE_SNOWFLAKE_DATABASE", self.database)) if not value]
        if missing:
            raise WarehouseConfigError(f"destination snowflake needs {', '.join(missing)}")
        if not (self.password or self.private_key or self.private_key_path):
            raise WarehouseConfigError("destination snowflake needs SF_PIPELINE_SNOWFLAKE_PASSWORD or a key pair "
                                       "(SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY or SF_PIPELINE_SNOWFLAKE_PRIVATE_KEY_PATH)")
        if self.endpoint and urlparse(self.endpoint).scheme not in ("http", "https"):
            raise WarehouseConfigError(f"SF_PIPELINE_SNOWFLAKE_ENDPOINT must be an http(s) URL, got {self.endpoint!r}")

    def endpoint_args(self) -> dict[str, Any]:
        """Connector arguments that point it at another endpoint (a private link, or fakesnow in tests)."""
        if not self.endpoint:
            return {}
        url = urlparse(self.endpoint)
        return {"host": url.hostname, "port": url.port or (443 if url.scheme == "https" else 80),
                "protocol": url.scheme}

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

    def dagster_resource(self, schema: str) -> Any:
        """dagster-snowflake's resource on the same account, for the DDL and counts the pipeline owns."""
        from dagster_snowflake import SnowflakeResource

        self.validate()
        return SnowflakeResource(
            account=self.account, user=self.user, password=self.password, database=self.database,
            schema=schema, role=self.role, warehouse=self.warehouse, private_key=self.private_key,
            private_key_path=self.private_key_path, private_key_password=self.private_key_passphrase,
            additional_snowflake_connection_args=self.endpoint_args() or None,
        )


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
        raise WarehouseConfigError(f"SF_PIPELINE_STAGING must be 'none', a local folder or az://container/prefix, "
                                   f"got {self.location!r}")

    def validate(self, destination: DestinationKind) -> None:
        if self.kind == "azure":
            if destination != "snowflake":
                raise WarehouseConfigError(f"staging in {self.location} needs destination snowflake "
                                           f"(DuckDB loads local files); set SF_PIPELINE_STAGING=none")
            if not urlparse(self.location).netloc:
                raise WarehouseConfigError(f"SF_PIPELINE_STAGING {self.location!r} names no container")
            if not self.azure_account_name:
                raise WarehouseConfigError("staging on Azure needs AZURE_STORAGE_ACCOUNT_NAME")
            if not (self.azure_account_key or self.azure_sas_token):
                raise WarehouseConfigError("staging on Azure needs AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN "
                                           "(Snowflake's COPY reads the bucket with a SAS token made from them)")
            if self.azure_blob_endpoint and urlparse(self.azure_blob_endpoint).scheme not in ("http", "https"):
                raise WarehouseConfigError(f"AZURE_STORAGE_BLOB_ENDPOINT must be an http(s) URL, "
                                           f"got {self.azure_blob_endpoint!r}")

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
            return (f"DefaultEndpointsProtocol={urlparse(endpoint).scheme};AccountName={self.azure_account_name};"
                    f"AccountKey={self.azure_account_key};BlobEndpoint={endpoint};")
        return f"BlobEndpoint={endpoint};SharedAccessSignature={(self.azure_sas_token or '').lstrip('?')}"

    def dlt_staging(self) -> Any:
        """dlt's filesystem staging destination for a bucket, or None."""
        if self.kind != "azure":
            return None
        connection_string = self.connection_string()
        return dlt.destinations.filesystem(bucket_url=self.bucket_url, credentials=self.azure_credentials(),
                                           kwargs={"connection_string": connection_string} if connection_string else None)

    def filesystem(self) -> Any:
        """An fsspec (adlfs) filesystem on the bucket, with the same credentials dlt uses."""
        import adlfs

        return adlfs.AzureBlobFileSystem(account_name=self.azure_account_name, account_key=self.azure_account_key,
                                         sas_token=self.azure_sas_token, connection_string=self.connection_string())

    def dataset_prefix(self, dataset: str) -> str:
        """The bucket path (container/prefix/dataset) under which dlt stages a dataset's files."""
        url = urlparse(self.bucket_url or "")
        return f"{url.netloc}{url.path}/{dataset}".replace("//", "/")


class StagedFiles:
    """The staged files of one table: listed and removed through adlfs (dlt leaves them in the bucket).

    dlt's default layout puts a table's files at ``<bucket>/<dataset>/<table>/<load_id>.<file_id>.<ext>``.
    """

    def __init__(self, staging: StagingSettings, dataset: str, table: str) -> None:
        self.fs = staging.filesystem()
        self.folder = f"{staging.dataset_prefix(dataset)}/{table}"

    def list(self, load_id: str | None = None) -> list[str]:
        self.fs.invalidate_cache()
        try:
            names = self.fs.find(self.folder)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if load_id is None or n.rsplit("/", 1)[-1].startswith(f"{load_id}."))

    def remove(self, load_id: str | None = None) -> int:
        """Delete the files of one load (or all of the table's); returns how many were deleted."""
        names = self.list(load_id)
        if names:
            self.fs.rm(names)
        return len(names)


def normalize(dialect: DestinationKind, identifier: str) -> str:
    """How dlt spells an identifier in the warehouse: Snowflake folds to upper case."""
    return identifier.upper() if dialect == "snowflake" else identifier


def table_exists(conn: Any, dialect: DestinationKind, schema: str, table: str) -> bool:
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                f"{_literal(normalize(dialect, schema))} AND table_name = {_literal(normalize(dialect, table))}")
    return int(cur.fetchone()[0]) > 0


def qualified(dialect: DestinationKind, schema: str, table: str) -> str:
    return f"{_quote(normalize(dialect, schema))}.{_quote(normalize(dialect, table))}"


def _forget_dlt_schema(conn: Any, dialect: DestinationKind, schema: str, dlt_schema: str) -> None:
    """dlt skips its DDL when the stored schema hash matches; forgetting it makes the next load reconcile
    its tables with what the warehouse now holds (recreate a dropped table, adopt a swapped-in one)."""
    if table_exists(conn, dialect, schema, "_dlt_version"):
        conn.cursor().execute(f"DELETE FROM {qualified(dialect, schema, '_dlt_version')} WHERE "
                              f"{_quote(normalize(dialect, 'schema_name'))} = {_literal(dlt_schema)}")


def drop_object_table(conn: Any, dialect: DestinationKind, schema: str, table: str, dlt_schema: str) -> bool:
    """Drop one catalog object's table and forget dlt's stored schema for its pipeline, so the next load
    recreates it. ``table`` must come from the catalog (never from dlt's schema). Returns whether it existed.
    """
    existed = table_exists(conn, dialect, schema, table)
    conn.cursor().execute(f"DROP TABLE IF EXISTS {qualified(dialect, schema, table)}")
    _forget_dlt_schema(conn, dialect, schema, dlt_schema)
    with contextlib.suppress(Exception):
        conn.commit()
    log.info("full refresh: dropped %s (%s)", qualified(dialect, schema, table), "existed" if existed else "was absent")
    return existed


def swap_in(conn: Any, dialect: DestinationKind, schema: str, loaded: str, table: str, dlt_schema: str) -> None:
    """Put the freshly loaded table ``loaded`` in the place of the catalog object's ``table``.

    DuckDB does it in one transaction; Snowflake with ``ALTER TABLE ... SWAP WITH`` (atomic) when the
    table exists. dlt's stored schema for the pipeline is forgotten, so the next load reconciles its
    DDL with the table as it now is.
    """
    def name(t: str) -> str:
        return qualified(dialect, schema, t)

    cur = conn.cursor()
    exists = table_exists(conn, dialect, schema, table)
    if dialect == "duckdb":
        cur.execute("BEGIN TRANSACTION")
        cur.execute(f"DROP TABLE IF EXISTS {name(table)}")
        cur.execute(f"ALTER TABLE {name(loaded)} RENAME TO {_quote(normalize(dialect, table))}")
    elif exists:
        cur.execute(f"ALTER TABLE {name(loaded)} SWAP WITH {name(table)}")
        cur.execute(f"DROP TABLE {name(loaded)}")
    else:
        cur.execute(f"ALTER TABLE {name(loaded)} RENAME TO {name(table)}")
    _forget_dlt_schema(conn, dialect, schema, dlt_schema)
    if dialect == "duckdb":
        cur.execute("COMMIT")
    with contextlib.suppress(Exception):
        conn.commit()
    log.info("full refresh: %s now holds the rows loaded into %s", name(table), name(loaded))


def count_rows(conn: Any, dialect: DestinationKind, schema: str, table: str, cursor_field: str | None = None,
               since: datetime | None = None, until: datetime | None = None) -> int:
    """Rows in an object's table, optionally those whose cursor falls in [since, until)."""
    if not table_exists(conn, dialect, schema, table):
        return 0
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    sql = f"SELECT COUNT(*) FROM {qualified(dialect, schema, table)}"
    if cursor_field and since and until:
        column = _quote(normalize(dialect, NamingConvention().normalize_identifier(cursor_field)))
        sql += (f" WHERE {column} >= {_literal(since.isoformat())}::TIMESTAMP_TZ"
                f" AND {column} < {_literal(until.isoformat())}::TIMESTAMP_TZ")
        if dialect == "duckdb":
            sql = sql.replace("::TIMESTAMP_TZ", "::TIMESTAMPTZ")
    cur = conn.cursor()
    cur.execute(sql)
    return int(cur.fetchone()[0])


def duckdb_destination(path: Path | str, memory_limit: str | None = "512MB") -> Any:
    """The embedded warehouse: a DuckDB file. DuckDB's own default memory limit is 80% of the machine's
    RAM, which on a small pod is the kernel's OOM line, so it is capped here (configurable)."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    credentials = DuckDbCredentials(str(path))
    if memory_limit:
        credentials.global_config = {"memory_limit": memory_limit}
    return dlt.destinations.duckdb(credentials)


@contextlib.contextmanager
def duckdb_connection(path: Path | str) -> Iterator[Any]:
    import duckdb

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(path))
    try:
        yield conn
    finally:
        conn.close()


@dataclass(frozen=True)
class Warehouse:
    """One configured warehouse: the dlt destination and staging for loads, a connection for the DDL
    and counts the pipeline owns (DuckDB directly, Snowflake through dagster-snowflake's resource)."""

    kind: DestinationKind = "duckdb"
    dataset: str = "salesforce"
    duckdb_path: Path = Path("data/sf_pipeline.duckdb")
    duckdb_memory_limit: str | None = "512MB"
    snowflake: SnowflakeSettings = SnowflakeSettings()
    staging: StagingSettings = StagingSettings()

    def validate(self) -> None:
        if self.kind not in ("duckdb", "snowflake"):
            raise WarehouseConfigError(f"SF_PIPELINE_DESTINATION must be duckdb or snowflake, got {self.kind!r}")
        if self.kind == "snowflake":
            self.snowflake.validate()
        self.staging.validate(self.kind)

    def dlt_destination(self) -> Any:
        self.validate()
        if self.kind == "duckdb":
            return duckdb_destination(self.duckdb_path, self.duckdb_memory_limit)
        kwargs: dict[str, Any] = {"credentials": self.snowflake.dlt_credentials()}
        if self.snowflake.stage:
            kwargs["stage_name"] = self.snowflake.stage
        # files PUT into a table stage are removed after COPY, like files staged in a bucket
        return dlt.destinations.snowflake(keep_staged_files=False, **kwargs)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        self.validate()
        if self.kind == "duckdb":
            with duckdb_connection(self.duckdb_path) as conn:
                yield conn
        else:
            with self.snowflake.dagster_resource(self.dataset).get_connection() as conn:
                yield conn

    def drop_object_table(self, table: str, dlt_schema: str) -> bool:
        with self.connection() as conn:
            return drop_object_table(conn, self.kind, self.dataset, table, dlt_schema)

    def swap_in(self, loaded: str, table: str, dlt_schema: str) -> None:
        with self.connection() as conn:
            swap_in(conn, self.kind, self.dataset, loaded, table, dlt_schema)

    def count_rows(self, table: str, cursor_field: str | None = None, since: datetime | None = None,
                   until: datetime | None = None) -> int:
        with self.connection() as conn:
            return count_rows(conn, self.kind, self.dataset, table, cursor_field, since, until)


__all__ = ["FILE_FORMATS", "DestinationKind", "FileFormat", "SnowflakeSettings", "StagedFiles", "StagingSettings",
           "Warehouse", "WarehouseConfigError", "count_rows", "drop_object_table", "duckdb_connection", "duckdb_destination", "normalize",
           "table_exists"]
