"""dlt's Snowflake destination on a connection the caller already holds: one login for a run's loads.

dlt's own Snowflake client logs in for every job of a load (the schema update, each COPY, the merge, the
load's completion: 4 logins for a one-chunk merge), asks ``INFORMATION_SCHEMA.SCHEMATA`` whether the dataset
and its staging dataset exist before every update and truncation (3 queries), and wraps every transaction in
``ALTER SESSION SET autocommit`` pairs. Where each login costs ~0.4 s and each metadata query more than a
statement (docs/performance.md), that is most of a small window's load. ``session_snowflake`` is dlt's
destination with one change: its SQL goes through one ``SnowflakeSession`` (a connection opened by the caller
with autocommit on and the UTC session dlt opens its own with), which asks whether a dataset exists with
``SHOW`` once per connection. Everything else (DDL, COPY, merge SQL, transactions, dlt's version and load
tables) is dlt's own code. Statements and transactions from dlt's worker threads take the session's lock, so
two jobs never interleave on the connection.

Transactions stay dlt's (``ALTER SESSION SET autocommit`` around them, 2 statements each): ``BEGIN`` /
``COMMIT`` would save one each, but fakesnow loses a multi-statement request (dlt's merge) run inside a
session-level ``BEGIN``, and Snowflake documents explicit transactions for multi-statement requests only
within the request itself, so that path is not taken untested.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dlt.common.data_writers.escape import escape_snowflake_literal
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.schema import Schema
from dlt.destinations import snowflake
from dlt.destinations.impl.snowflake.configuration import SnowflakeClientConfiguration
from dlt.destinations.impl.snowflake.snowflake import SnowflakeClient
from dlt.destinations.impl.snowflake.sql_client import SnowflakeSqlClient
from dlt.destinations.typing import DBTransaction

# What every connection handed to dlt must be: what dlt's own ``open_connection`` sets up.
SESSION_TIMEZONE = "UTC"
CONNECTION_PARAMS: dict[str, Any] = {"autocommit": True, "timezone": SESSION_TIMEZONE}


@dataclass(eq=False)
class SnowflakeSession:
    """One open connection shared by dlt's jobs (and the caller's own SQL between loads)."""

    connection: Any
    lock: threading.RLock = field(default_factory=threading.RLock)
    datasets: set[str] = field(default_factory=set)  # fully qualified names seen to exist on this connection
    in_transaction: bool = False


_SESSIONS: weakref.WeakKeyDictionary[Any, SnowflakeSession] = weakref.WeakKeyDictionary()
_SESSIONS_LOCK = threading.Lock()


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

    def open_connection(self) -> Any:
        self._conn = self.session.connection
        return self._conn

    def close_connection(self) -> None:
        self._conn = None  # the session's owner closes it

    @contextmanager
    def begin_transaction(self) -> Iterator[DBTransaction]:
        with self.session.lock:
            self.session.in_transaction = True
            try:
                with super().begin_transaction() as transaction:
                    yield transaction
            finally:
                self.session.in_transaction = False

    def _reset_connection(self) -> None:
        # after a failed statement: outside a transaction the session is in autocommit already, and dlt's
        # reset (ROLLBACK, then autocommit on) would cost two statements for nothing (a first load asks for
        # tables that are not there yet)
        if self.session.in_transaction:
            super()._reset_connection()

    @contextmanager
    def execute_query(self, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self.session.lock, super().execute_query(query, *args, **kwargs) as cursor:
            yield cursor

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
        super().drop_dataset()


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


class session_snowflake(snowflake):  # noqa: N801 - dlt's destination factories are lower case
    """``dlt.destinations.snowflake`` whose clients share ``session``; every other argument is dlt's."""

    def __init__(self, session: SnowflakeSession, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session

    def client(self, schema: Schema, initial_config: Any = None) -> SessionSnowflakeClient:
        client = super().client(schema, initial_config)
        return SessionSnowflakeClient(schema, client.config, client.capabilities, self.session)
