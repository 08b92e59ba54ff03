"""dlt's Snowflake destination on a connection the caller already holds: one login for a run's loads.

dlt's own Snowflake client logs in for every job of a load (the schema update, each COPY, the merge, the
load's completion: 4 logins for a one-chunk merge), asks ``INFORMATION_SCHEMA.SCHEMATA`` whether the dataset
and its staging dataset exist before every update and truncation (3 queries), and wraps every transaction in
``ALTER SESSION SET autocommit`` pairs. Where each login costs ~0.4 s and each metadata query more than a
statement (docs/performance.md), that is most of a small window's load. ``session_snowflake`` is dlt's
destination with one change: its SQL goes through one ``SnowflakeSession`` (a connection opened by the caller
with autocommit on and the UTC session dlt opens its own with), which asks whether a dataset exists with
``SHOW`` once per connection and reads which schema versions dlt stored once per dataset and connection (dlt
asks for its schema's hash in both datasets before every load: two statements an object). Everything else
(DDL, COPY, merge SQL, transactions, writing dlt's version and load tables) is dlt's own code. Statements
and transactions from dlt's worker threads take the session's lock, so two jobs never interleave on the
connection.

Transactions are dlt's, sent in fewer round trips: a COPY from the bucket runs alone in autocommit
(``SessionCopyJob``), and a merge's statements go in one request between ``BEGIN`` and ``COMMIT``
(``SessionSqlJob``: Snowflake documents explicit transactions inside a multi-statement request) rather than
between dlt's ``ALTER SESSION SET autocommit`` pairs. A session-level ``BEGIN`` followed by the statements in
a request of their own is not used: fakesnow loses such a request.

Two of dlt's statements ride with the next request instead of taking a round trip of their own, in dlt's
order: the staging table's ``TRUNCATE`` before a load goes in front of the COPY that follows it (any other
statement first sends it alone), and the load's row in dlt's loads table goes inside the merge's transaction
when that merge is the load's last job (one table a load, as the loader's are), so the load is recorded
exactly when its rows commit. A one-row window's load is then 2 requests of dlt's, not 4.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from dlt.common.data_writers.escape import escape_snowflake_literal
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.destination.client import LoadJob, PreparedTableSchema, StorageSchemaInfo
from dlt.common.schema import Schema
from dlt.common.storages import FileStorage
from dlt.common.time import ensure_datetime_in_tz
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.snowflake.configuration import SnowflakeClientConfiguration
from dlt.destinations.impl.snowflake.snowflake import SnowflakeClient, SnowflakeLoadJob
from dlt.destinations.impl.snowflake.sql_client import SnowflakeSqlClient
from dlt.destinations.job_client_impl import SqlLoadJob
from dlt.destinations.job_impl import ReferenceFollowupJobRequest
from dlt.destinations.typing import DBTransaction

from .dlt_factories import snowflake

# What every connection handed to dlt must be: what dlt's own ``open_connection`` sets up.
SESSION_TIMEZONE = "UTC"
CONNECTION_PARAMS: dict[str, Any] = {"autocommit": True, "timezone": SESSION_TIMEZONE}
# how the transactions a thread opens are sent (``SessionSqlClient.transactions_as``)
TransactionMode = Literal["single statement", "one request"]
_DDL_VERB = re.compile(r"\s*(ALTER|CREATE|DROP)\b", re.IGNORECASE)


@dataclass(eq=False)
class SnowflakeSession:
    """One open connection shared by dlt's jobs (and the caller's own SQL between loads)."""

    connection: Any
    lock: threading.RLock = field(default_factory=threading.RLock)
    datasets: set[str] = field(default_factory=set)  # fully qualified names seen to exist on this connection
    # dlt's version table (qualified name) -> the schema versions stored in it, by hash (their text not kept)
    versions: dict[str, dict[str, StorageSchemaInfo]] = field(default_factory=dict)
    in_transaction: bool = False
    pending: list[str] = field(default_factory=list)  # dlt's TRUNCATEs, sent with the next request
    recorded_loads: set[str] = field(default_factory=set)  # load ids a merge's transaction recorded
    # told the URL of each file a COPY has loaded from the bucket (``StagedFiles.deleted_once_copied``)
    on_copied: Callable[[str], None] | None = None


_SESSIONS: weakref.WeakKeyDictionary[Any, SnowflakeSession] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


def forget_stored_versions(connection: Any) -> None:
    """After dlt's version rows were deleted on ``connection`` (a table dropped or swapped in): ask again."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(connection)
    if session is not None:
        session.versions.clear()


def session_for(connection: Any) -> SnowflakeSession:
    """The session of an open connection: one per connection, so what it learned outlives one load."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(connection)
        if session is None:
            session = _SESSIONS[connection] = SnowflakeSession(connection)
        return session


class SessionSqlClient(SnowflakeSqlClient):
    """dlt's Snowflake SQL client on a session's connection: never opens or closes it."""

    def __init__(self, session: SnowflakeSession, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session = session
        self._thread = threading.local()  # dlt runs its jobs in worker threads

    def open_connection(self) -> Any:
        self._conn = self.session.connection
        return self._conn

    def close_connection(self) -> None:
        self._conn = None  # the session's owner closes it

    @contextmanager
    def begin_transaction(self) -> Iterator[DBTransaction]:
        with self.session.lock:
            mode = getattr(self._thread, "transactions", None)
            if mode == "single statement":
                yield self  # one statement in autocommit is a transaction of its own (``SessionCopyJob``)
                return
            if mode == "one request":
                self._thread.begin = True  # ``execute_many`` sends BEGIN, the statements and COMMIT together
                try:
                    yield self
                finally:
                    self._thread.begin = False
                return
            self._send_alone(self._take_pending())  # dlt ran its TRUNCATEs before the transaction: first, alone
            self.session.in_transaction = True
            try:
                with super().begin_transaction() as transaction:
                    yield transaction
            finally:
                self.session.in_transaction = False

    @contextmanager
    def transactions_as(self, mode: TransactionMode, *, also: str | None = None) -> Iterator[None]:
        """How transactions this thread opens are sent: ``single statement`` (no ``ALTER SESSION``/``COMMIT``
        around the one statement) or ``one request`` (``BEGIN``, the statements, ``also`` if given, and
        ``COMMIT`` in one request). Either way the thread's next request carries the pending ``TRUNCATE``s."""
        self._thread.transactions, self._thread.also = mode, also
        try:
            yield
        finally:
            self._thread.transactions, self._thread.also = None, None

    def truncate_tables(self, *tables: str) -> None:
        """dlt empties the staging tables before a load: the statements wait for the next request (its COPY)."""
        with self.session.lock:
            self.session.pending.extend(self._truncate_table_sql(self.make_qualified_table_name(t)) for t in tables)

    def execute_many(self, statements: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self._thread, "begin", False):
            return super().execute_many(statements, *args, **kwargs)
        also = [self._thread.also] if self._thread.also else []
        request = ";\n".join(["BEGIN TRANSACTION", *statements, *also, "COMMIT"]) + ";"
        try:
            return [self.execute_sql(request, *args, **kwargs)]
        except Exception:
            # a statement failed inside the transaction: nothing of it is committed, whether the transaction is
            # still open or aborted (fakesnow) or already ended; ROLLBACK (a no-op without one) ends it here,
            # alone: a TRUNCATE still pending waits for the next statement, after the transaction
            with suppress(Exception), super().execute_query("ROLLBACK"):
                pass
            raise

    def _reset_connection(self) -> None:
        # after a failed statement: outside a transaction the session is in autocommit already, and dlt's
        # reset (ROLLBACK, then autocommit on) would cost two statements for nothing (a first load asks for
        # tables that are not there yet)
        if self.session.in_transaction:
            super()._reset_connection()

    @contextmanager
    def execute_query(self, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self.session.lock:
            pending = self._take_pending()
            carry = bool(pending) and getattr(self._thread, "transactions", None) is not None
            if pending and not carry:
                self._send_alone(pending)  # a statement whose result is read: the TRUNCATEs go first, alone
            elif carry:
                query = ";\n".join([*pending, query])
            try:
                with super().execute_query(query, *args, **kwargs) as cursor:
                    yield cursor
            except Exception:
                if carry:
                    self.session.pending[:0] = pending  # unknown whether they ran: they go again (idempotent)
                raise

    def _take_pending(self) -> list[str]:
        pending, self.session.pending = self.session.pending, []
        return pending

    def _send_alone(self, statements: list[str]) -> None:
        if not statements:
            return
        try:
            with super().execute_query(";\n".join(statements) + ";"):
                pass
        except Exception:
            self.session.pending[:0] = statements
            raise

    def has_dataset(self) -> bool:
        """``SHOW TERSE SCHEMAS`` rather than dlt's ``INFORMATION_SCHEMA.SCHEMATA`` query: SHOW is answered from
        Snowflake's metadata store without a warehouse, an INFORMATION_SCHEMA query is compiled and run like
        any query (slow, and billed as cloud services). Asked once per dataset and connection."""
        name = self.fully_qualified_dataset_name()
        if name in self.session.datasets:
            return True
        catalog, schema, _ = self._get_information_schema_components()
        where = f" IN DATABASE {self.catalog_name()}" if catalog else ""  # dlt's names: the session's database
        rows = self.execute_sql(f"SHOW TERSE SCHEMAS LIKE {escape_snowflake_literal(schema)}{where}")
        # LIKE matches without regard to case and treats _ as a wildcard: the exact name decides
        if exists := any(row[1] == schema for row in rows or ()):
            self.session.datasets.add(name)
        return exists

    def create_dataset(self) -> None:
        super().create_dataset()
        self.session.datasets.add(self.fully_qualified_dataset_name())

    def drop_dataset(self) -> None:
        self.session.datasets.discard(self.fully_qualified_dataset_name())
        self.session.versions.clear()
        super().drop_dataset()


class SessionCopyJob(SnowflakeLoadJob):
    """dlt's COPY job. A file in the bucket (a reference job) is loaded by one COPY, atomic on its own in
    autocommit, so dlt's transaction around it (``ALTER SESSION``, ``COMMIT``, ``ALTER SESSION``: three
    statements) is left out, and the session is told the file is loaded (its owner deletes it while the
    merge runs); a local file keeps dlt's way (PUT, COPY and REMOVE)."""

    def run(self) -> None:
        sql_client = self._job_client.sql_client
        one_copy = ReferenceFollowupJobRequest.is_reference_job(self._file_path)
        with sql_client.transactions_as("single statement") if one_copy else nullcontext():
            super().run()
        if one_copy and (copied := sql_client.session.on_copied):
            copied(ReferenceFollowupJobRequest.resolve_reference(self._file_path))  # the table has its rows


class SessionSqlJob(SqlLoadJob):
    """dlt's SQL job (a merge: delete, then insert, from the staging table). Where dlt runs it in a transaction,
    it is sent as one request, ``BEGIN``, the statements, ``COMMIT`` (Snowflake documents explicit transactions
    inside a multi-statement request), rather than ``ALTER SESSION``, the statements, ``COMMIT``, ``ALTER
    SESSION``: one round trip instead of four. SQL with DDL keeps dlt's way: DDL would commit a ``BEGIN`` early,
    and the statements after it would no longer be one transaction."""

    def run(self) -> None:
        with FileStorage.open_zipsafe_ro(self._file_path, "r", encoding="utf-8") as f:
            # dlt's own test finds "CREATE" in any text, a column CREATED_DATE included: statements' verbs here
            ddl = any(_DDL_VERB.match(statement) for statement in f.read().split(";"))
        client: SessionSnowflakeClient = self._job_client  # type: ignore[assignment]
        if ddl:
            super().run()
            return
        # the load's only table (the loader's pipelines load one, and no pipeline state): once its merge commits,
        # nothing of the load is left to run
        last = self._schema.data_table_names() == [self._load_table["name"]]
        record = client.load_record_sql(self._load_id) if last else None
        with client.sql_client.transactions_as("one request", also=record):
            super().run()
        if record:
            client.sql_client.session.recorded_loads.add(self._load_id)


class SessionSnowflakeClient(SnowflakeClient):
    """dlt's Snowflake job client whose SQL client is a ``SessionSqlClient``."""

    def __init__(
        self,
        schema: Schema,
        config: SnowflakeClientConfiguration,
        capabilities: DestinationCapabilitiesContext,
        session: SnowflakeSession,
    ) -> None:
        super().__init__(schema, config, capabilities)
        self.sql_client = SessionSqlClient(
            session,
            self.sql_client.dataset_name,
            self.sql_client.staging_dataset_name,
            config.credentials,
            capabilities,
            config.query_tag,
        )
        self.dataset = self.sql_client.dataset_name  # the destination dataset, whichever one a job makes active

    def create_load_job(
        self, table: PreparedTableSchema, file_path: str, load_id: str, restore: bool = False
    ) -> LoadJob:
        job = super().create_load_job(table, file_path, load_id, restore)
        if type(job) is SqlLoadJob:
            return SessionSqlJob(file_path)
        if type(job) is not SnowflakeLoadJob:
            return job
        # dlt's own construction of its COPY job (SnowflakeClient.create_load_job), as a SessionCopyJob
        staging = self.config.staging_config
        return SessionCopyJob(
            file_path,
            self.config,
            stage_name=self.config.stage_name,
            keep_staged_files=self.config.keep_staged_files,
            staging_credentials=staging.credentials if staging else None,
        )

    def load_record_sql(self, load_id: str) -> str:
        """dlt's row for a completed load (``complete_load``'s statement) with its values as literals."""
        # a merge job runs with the staging dataset active: the loads table is the destination dataset's
        path = self.sql_client.make_qualified_table_name_path(self.schema.loads_table_name, dataset_name=self.dataset)
        name = ".".join(path)
        values = ", ".join(
            map(escape_snowflake_literal, (load_id, self.schema.name, 0, datetime.now(UTC), self.schema.version_hash))
        )
        return f"INSERT INTO {name}({self.loads_table_schema_columns}) VALUES({values})"

    def complete_load(self, load_id: str) -> None:
        recorded = self.sql_client.session.recorded_loads
        if load_id in recorded:
            recorded.discard(load_id)  # the merge's transaction wrote the row
            return
        super().complete_load(load_id)

    def get_stored_schema_by_hash(self, version_hash: str) -> StorageSchemaInfo | None:
        """Whether dlt stored this schema version, from the version table's rows read once per connection (one
        statement a dataset for a run's objects, rather than one an object). dlt asks only to decide whether
        the schema needs its DDL, so the stored schema's text is not read (``schema`` is empty)."""
        return self._stored_versions().get(version_hash)

    def _version_table(self) -> str:
        # asked each time: dlt points the same client at the staging dataset (``with_staging_dataset``)
        return self.sql_client.make_qualified_table_name(self.schema.version_table_name)

    def _stored_versions(self) -> dict[str, StorageSchemaInfo]:
        table = self._version_table()
        versions = self.sql_client.session.versions.get(table)
        if versions is None:
            columns = self._norm_and_escape_columns(
                "version_hash", "schema_name", "version", "engine_version", "inserted_at"
            )
            try:
                rows = self.sql_client.execute_sql(f"SELECT {', '.join(columns)} FROM {table}") or []
            except DatabaseUndefinedRelation:
                rows = []  # a dataset's first load: dlt creates the table with the schema's DDL
            versions = {
                row[0]: StorageSchemaInfo(row[0], row[1], row[2], row[3], ensure_datetime_in_tz(row[4], UTC), "")
                for row in rows
            }
            self.sql_client.session.versions[table] = versions
        return versions

    def _commit_schema_update(self, schema: Schema, schema_str: str) -> None:
        super()._commit_schema_update(schema, schema_str)
        versions = self.sql_client.session.versions.get(self._version_table())
        if versions is not None:
            versions[schema.stored_version_hash] = StorageSchemaInfo(
                schema.stored_version_hash, schema.name, schema.version, schema.ENGINE_VERSION, datetime.now(UTC), ""
            )


class session_snowflake(snowflake):  # noqa: N801 - dlt's destination factories are lower case
    """``dlt.destinations.snowflake`` whose clients share ``session`` (capabilities resolved once, ``dlt_factories``);
    every other argument is dlt's."""

    def __init__(self, session: SnowflakeSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session

    def client(self, schema: Schema, initial_config: Any = None) -> SessionSnowflakeClient:
        client = super().client(schema, initial_config)
        return SessionSnowflakeClient(schema, client.config, client.capabilities, self.session)
