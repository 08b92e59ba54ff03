"""The DDL and counts the pipeline owns, on an open DB-API connection (DuckDB or Snowflake): dropping and
swapping catalog objects' tables (never a table because dlt's schema lists it), row counts, the column map,
and the Id sweep's comparison."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .naming import ColumnRecord, column_name
from .settings import DestinationKind

log = logging.getLogger(__name__)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def normalize(dialect: DestinationKind, identifier: str) -> str:
    """How dlt spells an identifier in the warehouse: Snowflake folds to upper case."""
    return identifier.upper() if dialect == "snowflake" else identifier


def table_exists(conn: Any, dialect: DestinationKind, schema: str, table: str) -> bool:
    cur = conn.cursor()
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
        f"{_literal(normalize(dialect, schema))} AND table_name = {_literal(normalize(dialect, table))}"
    )
    return int(cur.fetchone()[0]) > 0


def qualified(dialect: DestinationKind, schema: str, table: str) -> str:
    return f"{_quote(normalize(dialect, schema))}.{_quote(normalize(dialect, table))}"


def _forget_dlt_schema(conn: Any, dialect: DestinationKind, schema: str, dlt_schema: str) -> None:
    """dlt skips its DDL when the stored schema hash matches; forgetting it makes the next load reconcile
    its tables with what the warehouse now holds (recreate a dropped table, adopt a swapped-in one)."""
    if table_exists(conn, dialect, schema, "_dlt_version"):
        conn.cursor().execute(
            f"DELETE FROM {qualified(dialect, schema, '_dlt_version')} WHERE "
            f"{_quote(normalize(dialect, 'schema_name'))} = {_literal(dlt_schema)}"
        )
    if dialect == "snowflake":
        from .snowflake_session import forget_stored_versions

        forget_stored_versions(conn)  # the versions a run's loads read once are stale now


def forget_dlt_schema(conn: Any, dialect: DestinationKind, schema: str, dlt_schema: str) -> None:
    _forget_dlt_schema(conn, dialect, schema, dlt_schema)
    with contextlib.suppress(Exception):
        conn.commit()


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


Span = tuple[datetime | None, datetime | None]  # [since, until) on the cursor; None: open at that end


def count_spans(
    conn: Any,
    dialect: DestinationKind,
    schema: str,
    table: str,
    cursor_field: str | None = None,
    spans: dict[str, Span] | None = None,
    deleted_at: str | None = None,
) -> dict[str, int]:
    """Rows in an object's table (``"all"``) and in each named span of its cursor, in one statement (a
    Snowflake statement is a round trip and a compile: a load asks once before and once after). An absent
    table holds 0 rows: the statement's error says so, no INFORMATION_SCHEMA query is made first.
    ``deleted_at``: the column that marks a kept deleted row (catalog ``deleted_at_column``): such rows are
    left out, so the counts are of live records."""
    timestamp = "TIMESTAMPTZ" if dialect == "duckdb" else "TIMESTAMP_TZ"
    column = _quote(normalize(dialect, column_name(cursor_field))) if cursor_field else None
    live = f"{_quote(normalize(dialect, deleted_at))} IS NULL" if deleted_at else None
    selects = [f"COUNT(CASE WHEN {live} THEN 1 END)" if live else "COUNT(*)"]
    for since, until in (spans or {}).values():
        conditions = [c for c in (live,) if c]
        if column and since:
            conditions.append(f"{column} >= {_literal(since.isoformat())}::{timestamp}")
        if column and until:
            conditions.append(f"{column} < {_literal(until.isoformat())}::{timestamp}")
        selects.append(f"COUNT(CASE WHEN {' AND '.join(conditions)} THEN 1 END)" if conditions else "COUNT(*)")
    names = ["all", *(spans or {})]
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT {', '.join(selects)} FROM {qualified(dialect, schema, table)}")
    except Exception as exc:  # noqa: BLE001 - DuckDB's CatalogException, Snowflake's ProgrammingError 002003
        _reset_after_error(conn, dialect)
        if deleted_at and normalize(dialect, deleted_at).lower() in str(exc).lower():  # no row was ever flagged
            return count_spans(conn, dialect, schema, table, cursor_field, spans)
        if "does not exist" not in str(exc):
            raise
        return dict.fromkeys(names, 0)
    return dict(zip(names, (int(n) for n in cur.fetchone()), strict=True))


def _reset_after_error(conn: Any, dialect: DestinationKind) -> None:
    """A failed statement aborts DuckDB's open transaction, if any: roll it back so the connection goes on."""
    if dialect == "duckdb":
        with contextlib.suppress(Exception):
            conn.rollback()


COLUMN_MAP_TABLE = "_sf_columns"  # every column assignment ever made; a field's latest record (seq) is current
_COLUMN_MAP_COLUMNS = {
    "sobject": "VARCHAR",
    "field": "VARCHAR",
    "column_name": "VARCHAR",
    "label": "VARCHAR",
    "sf_type": "VARCHAR",
    "data_type": "VARCHAR",
    "present": "BOOLEAN",
    "seq": "INTEGER",
}


def read_column_map(conn: Any, dialect: DestinationKind, schema: str, sobject: str) -> dict[str, ColumnRecord]:
    """The current record of each field of ``sobject`` an earlier load gave a column (none before the first
    load: the table is absent, which the statement's error says)."""
    return read_column_maps(conn, dialect, schema, [sobject]).maps[sobject]


@dataclass
class StoredColumns:
    """What ``_sf_columns`` holds for some objects: each one's current records and its last ``seq``, and
    whether the table exists at all."""

    maps: dict[str, dict[str, ColumnRecord]]
    seqs: dict[str, int]
    table_exists: bool


def read_column_maps(conn: Any, dialect: DestinationKind, schema: str, sobjects: list[str]) -> StoredColumns:
    """``read_column_map`` of several objects in one statement (a run's objects, read once)."""
    names = [_quote(normalize(dialect, c)) for c in _COLUMN_MAP_COLUMNS]
    stored = StoredColumns({s: {} for s in sobjects}, dict.fromkeys(sobjects, 0), table_exists=True)
    cur = conn.cursor()
    try:
        cur.execute(
            f"SELECT {', '.join(names)} FROM {qualified(dialect, schema, COLUMN_MAP_TABLE)} "
            f"WHERE {names[0]} IN ({', '.join(_literal(s) for s in sorted(set(sobjects)))}) ORDER BY {names[-1]}"
        )
    except Exception as exc:  # noqa: BLE001 - as count_spans: an absent table
        if "does not exist" not in str(exc):
            raise
        _reset_after_error(conn, dialect)
        stored.table_exists = False
        return stored
    for sobject, field, column, label, sf_type, data_type, present, seq in cur.fetchall():
        stored.maps[sobject][field] = ColumnRecord(column, sf_type, data_type, label or "", bool(present))
        stored.seqs[sobject] = max(stored.seqs[sobject], int(seq))
    return stored


def write_column_map(
    conn: Any,
    dialect: DestinationKind,
    schema: str,
    sobject: str,
    records: dict[str, ColumnRecord],
    *,
    last_seq: int | None = None,
    table_exists: bool = False,
) -> None:
    """Append records (new, retyped, removed or returned fields); earlier ones stay as history. A caller that
    knows the object's last ``seq`` and that the table exists (a run that read them) saves the statements that
    would ask. The connection autocommits: one INSERT is atomic."""
    if not records:
        return
    table = qualified(dialect, schema, COLUMN_MAP_TABLE)
    names = [_quote(normalize(dialect, c)) for c in _COLUMN_MAP_COLUMNS]
    cur = conn.cursor()
    if not table_exists:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(normalize(dialect, schema))}")
        columns_sql = ", ".join(f"{n} {t}" for n, t in zip(names, _COLUMN_MAP_COLUMNS.values(), strict=True))
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns_sql})")
    if last_seq is None:
        cur.execute(f"SELECT COALESCE(MAX({names[-1]}), 0) FROM {table} WHERE {names[0]} = {_literal(sobject)}")
        last_seq = int(cur.fetchone()[0])
    values = []
    for seq, (field, r) in enumerate(sorted(records.items()), start=last_seq + 1):
        literals = [sobject, field, r.column, r.label, r.sf_type, r.data_type]
        values.append(f"({', '.join(_literal(v) for v in literals)}, {'TRUE' if r.present else 'FALSE'}, {seq})")
    cur.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(values)}")


@dataclass(frozen=True)
class IdComparison:
    """What the Id sweep found: rows before, rows Salesforce no longer has (removed or flagged now), and
    Salesforce Ids the table lacks (not loaded yet: a later window or re-sync brings them)."""

    table_rows: int
    salesforce_ids: int
    gone_from_salesforce: int
    missing_in_table: int
    already_flagged: int = 0


def reconcile_ids(
    conn: Any,
    dialect: DestinationKind,
    schema: str,
    table: str,
    ids_table: str,
    id_column: str,
    mode: str,
    flag_columns: tuple[str, ...] = ("_sf_hard_deleted_at",),
) -> IdComparison:
    """Compare the object's table with ``ids_table`` (Salesforce's Ids, just loaded) inside the warehouse and
    delete (``mode="delete"``) or flag (``"flag"``) the rows Salesforce no longer has, in one transaction.
    A flag sets ``flag_columns``: a timestamp column to now, and a boolean column after it (if given) to
    true. Nothing is read into Python but counts."""
    t, ids = qualified(dialect, schema, table), qualified(dialect, schema, ids_table)
    key = _quote(normalize(dialect, id_column))
    flag = _quote(normalize(dialect, flag_columns[0]))
    flag_bool = _quote(normalize(dialect, flag_columns[1])) if len(flag_columns) > 1 else None
    cur = conn.cursor()
    if not table_exists(conn, dialect, schema, ids_table):  # Salesforce holds no record: dlt made no table
        cur.execute(f"CREATE TABLE {ids} ({key} VARCHAR)")
    if not table_exists(conn, dialect, schema, table):  # never loaded: every Id is missing, nothing to sweep
        cur.execute(f"SELECT COUNT(*) FROM {ids}")
        count = int(cur.fetchone()[0])
        cur.execute(f"DROP TABLE IF EXISTS {ids}")
        return IdComparison(0, count, 0, count)
    if mode == "flag":
        cur.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {flag} TIMESTAMP")
        if flag_bool:
            cur.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {flag_bool} BOOLEAN")
        with contextlib.suppress(Exception):
            conn.commit()
    gone_rows = f"NOT EXISTS (SELECT 1 FROM {ids} s WHERE s.{key} = {t}.{key})"
    cur.execute("BEGIN TRANSACTION" if dialect == "duckdb" else "BEGIN")
    cur.execute(f"SELECT COUNT(*) FROM {t}")
    table_rows = int(cur.fetchone()[0])
    cur.execute(f"SELECT COUNT(*) FROM {ids}")
    salesforce_ids = int(cur.fetchone()[0])
    cur.execute(f"SELECT COUNT(*) FROM {ids} s WHERE NOT EXISTS (SELECT 1 FROM {t} w WHERE w.{key} = s.{key})")
    missing = int(cur.fetchone()[0])
    flagged = 0
    if mode == "flag":
        cur.execute(f"SELECT COUNT(*) FROM {t} WHERE {flag} IS NOT NULL AND {gone_rows}")
        flagged = int(cur.fetchone()[0])
        also = f", {flag_bool} = TRUE" if flag_bool else ""
        cur.execute(f"UPDATE {t} SET {flag} = CURRENT_TIMESTAMP{also} WHERE {flag} IS NULL AND {gone_rows}")
    else:
        cur.execute(f"DELETE FROM {t} WHERE {gone_rows}")
    gone = int(cur.rowcount)  # rows the UPDATE or DELETE touched: the anti-join runs once, not twice
    cur.execute(f"DROP TABLE IF EXISTS {ids}")
    cur.execute("COMMIT")
    return IdComparison(table_rows, salesforce_ids, gone, missing, flagged)


def update_columns(
    conn: Any,
    dialect: DestinationKind,
    schema: str,
    table: str,
    source: str,
    key: str,
    columns: list[str],
    current_only: str | None = None,
) -> int:
    """Set ``columns`` of ``table``'s rows from ``source``'s row with the same ``key`` where a value differs
    (one UPDATE, inside the warehouse), then drop ``source``; ``current_only``: the column whose null marks
    the rows to update (history's current versions). Returns the rows changed."""
    t, s = qualified(dialect, schema, table), qualified(dialect, schema, source)
    k = _quote(normalize(dialect, key))
    cols = [_quote(normalize(dialect, c)) for c in columns]
    sets = ", ".join(f"{c} = src.{c}" for c in cols)
    differs = " OR ".join(f"{t}.{c} IS DISTINCT FROM src.{c}" for c in cols)
    where = f"{t}.{k} = src.{k} AND ({differs})"
    if current_only:
        where += f" AND {t}.{_quote(normalize(dialect, current_only))} IS NULL"
    cur = conn.cursor()
    cur.execute(f"UPDATE {t} SET {sets} FROM {s} AS src WHERE {where}")
    changed = int(cur.rowcount or 0)
    cur.execute(f"DROP TABLE IF EXISTS {s}")
    return changed
