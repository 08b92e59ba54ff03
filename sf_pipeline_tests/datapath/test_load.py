"""Split and load into a real DuckDB file: row counts, types, merges, deletes, and bad input."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import dlt
import duckdb
import pytest

from sf_pipeline.datapath.load import LoadError, ObjectLoader, table_name
from sf_pipeline.datapath.read import READ_BLOCK, read_ahead
from sf_pipeline.datapath.split import Chunk, SplitOptions, plan_chunks
from sf_pipeline.errors import InvalidIdentifierError
from sf_pipeline.salesforce import ExtractOptions, SalesforceClient
from sf_pipeline.salesforce.bulk import extract_object
from sf_pipeline.salesforce.soql import select_fields
from sf_pipeline.warehouse import duckdb_destination

from ..helpers import Emulator

OPTS = ExtractOptions(max_records=3_000, poll_initial_s=0.02)
UTC = dt.UTC


def extract_and_load(
    client: SalesforceClient,
    tmp: Path,
    sobject: str,
    db: Path,
    mode: str = "merge",
    split: SplitOptions | None = None,
    into_empty: bool = False,
    **window,
) -> tuple:
    result, describe = extract_object(
        client, sobject, tmp / f"x-{sobject}-{mode}-{len(list(tmp.iterdir()))}", options=OPTS, **window
    )
    fields = select_fields(describe).fields
    chunks = plan_chunks(result.files, tmp / "chunks", split or SplitOptions())
    loaded = ObjectLoader(sobject, duckdb_destination(db)).load(
        chunks,
        fields,
        mode=mode,  # type: ignore[arg-type]
        into_empty=into_empty,
    )
    return result, loaded, chunks


def q(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_full_refresh_types_and_values(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "sf.duckdb"
    result, loaded, _ = extract_and_load(client, tmp_path, "Invoice__c", db, mode="replace")
    assert loaded.table == "invoice_c" == table_name("Invoice__c")
    assert loaded.rows == result.records == len(org.truth_ids("Invoice__c"))
    assert q(db, "SELECT count(*), count(DISTINCT id) FROM salesforce.invoice_c")[0] == (loaded.rows, loaded.rows)
    types = dict(q(db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='invoice_c'"))
    assert types["id"] == "VARCHAR" and types["paid__c"] == "BOOLEAN"
    assert types["amount__c"] == "DECIMAL(18,2)" and types["tax_rate__c"] == "DECIMAL(5,2)"
    assert types["due_date__c"] == "DATE" and types["reminder_time__c"] == "TIME"
    assert types["system_modstamp"] == "TIMESTAMP WITH TIME ZONE"
    assert "signature__c" not in types and "site_location__c" not in types  # base64 / location left out
    # values round-trip exactly, nulls stay null, text keeps newlines, quotes and non-ASCII
    obj = org.org.get("Invoice__c")
    first = next(i for i in range(obj.rows) if not obj.is_deleted(i))
    row_id = obj.raw_value(obj.by_name["id"], first)
    notes, amount, due, stamp = q(
        db, f"SELECT notes__c, amount__c, due_date__c, system_modstamp FROM salesforce.invoice_c WHERE id = '{row_id}'"
    )[0]
    assert notes == obj.raw_value(obj.by_name["notes__c"], first)
    raw_amount = obj.raw_value(obj.by_name["amount__c"], first)
    assert amount == (decimal.Decimal(raw_amount) if raw_amount else None)
    raw_due = obj.raw_value(obj.by_name["due_date__c"], first)
    assert due == (dt.date.fromisoformat(raw_due) if raw_due else None)
    assert stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") == obj.raw_value(
        obj.by_name["systemmodstamp"], first
    )
    texts = [r[0] for r in q(db, "SELECT notes__c FROM salesforce.invoice_c WHERE notes__c IS NOT NULL")]
    assert any("\n" in t for t in texts) and any('"' in t for t in texts) and any(not t.isascii() for t in texts)


def test_chunked_load_matches_and_cleans_up(client: SalesforceClient, org: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "sf.duckdb"
    split = SplitOptions(min_rows=1_000, target_bytes=2_000_000, max_chunks=16)
    result, loaded, chunks = extract_and_load(client, tmp_path, "Account", db, mode="replace", split=split)
    assert loaded.chunks == len(chunks) >= 4
    assert loaded.rows == len(org.truth_ids("Account"))
    ids = [r[0] for r in q(db, "SELECT id FROM salesforce.account ORDER BY id")]
    assert ids == sorted(org.truth_ids("Account"))
    assert not any(f.exists() for c in chunks if c.temporary for f in c.files), "split chunk files are deleted"
    # a second full refresh replaces, it does not append
    _, again, _ = extract_and_load(client, tmp_path, "Account", db, mode="replace", split=split)
    assert q(db, "SELECT count(*) FROM salesforce.account")[0][0] == again.rows == loaded.rows


def test_incremental_windows_merge_and_deleted_rows_are_removed(
    client: SalesforceClient, org: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "sf.duckdb"
    t0, t1, t2 = (
        dt.datetime(2024, 6, 1, tzinfo=UTC),
        dt.datetime(2025, 3, 1, tzinfo=UTC),
        dt.datetime(2025, 9, 1, tzinfo=UTC),
    )
    ms = [int(t.timestamp() * 1000) for t in (t0, t1, t2)]
    # an append of everything, deleted rows included: what a destination holds before the rows were deleted
    extract_and_load(client, tmp_path, "Contact", db, mode="append", include_deleted=True, since=t0, until=t2)
    before = q(db, "SELECT count(*) FROM salesforce.contact")[0][0]
    assert before == len(org.truth_ids("Contact", ms[0], ms[2], include_deleted=True))
    # incremental windows with queryAll: deleted rows go, live rows merge on Id without duplicates
    _, w1, _ = extract_and_load(client, tmp_path, "Contact", db, include_deleted=True, since=t0, until=t1)
    _, w2, _ = extract_and_load(client, tmp_path, "Contact", db, include_deleted=True, since=t1, until=t2)
    _, w2b, _ = extract_and_load(client, tmp_path, "Contact", db, include_deleted=True, since=t1, until=t2)
    assert w1.deleted > 0 and w2.deleted > 0 and w2b.deleted == w2.deleted
    ids = sorted(r[0] for r in q(db, "SELECT id FROM salesforce.contact"))
    assert ids == sorted(org.truth_ids("Contact", ms[0], ms[2]))
    assert q(db, "SELECT count(*) FROM salesforce.contact WHERE is_deleted")[0][0] == 0


def test_a_first_load_into_an_empty_table_appends_live_rows_then_later_windows_merge(
    client: SalesforceClient, org: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "sf.duckdb"
    t0, t1, t2 = (dt.datetime(2024, 6, 1, tzinfo=UTC), dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime.now(UTC))
    ms = [int(t.timestamp() * 1000) for t in (t0, t1, t2)]
    split = SplitOptions(min_rows=10, target_bytes=200_000)
    _, first, chunks = extract_and_load(
        client, tmp_path, "Contact", db, split=split, into_empty=True, include_deleted=True, since=t0, until=t2
    )
    assert len(chunks) > 2 and first.deleted > 0
    # every record accounted for, the deleted ones as dropped: what a merge would have reported
    assert first.rows == len(org.truth_ids("Contact", ms[0], ms[2], include_deleted=True))
    ids = sorted(r[0] for r in q(db, "SELECT id FROM salesforce.contact"))
    assert ids == sorted(org.truth_ids("Contact", ms[0], ms[2]))  # each live record once, deleted ones never
    schemas = {r[0] for r in q(db, "SELECT schema_name FROM information_schema.schemata")}
    assert "salesforce_staging" not in schemas  # appended: dlt's merge would have staged every chunk there
    # the table an append created merges like any other: a window's deletes and edits land, no duplicates
    deleted = org.truth_ids("Contact", ms[1], ms[2])[:3]
    org.change("Contact", delete=deleted)
    t3 = dt.datetime.now(UTC) + dt.timedelta(minutes=1)
    _, later, _ = extract_and_load(client, tmp_path, "Contact", db, include_deleted=True, since=t1, until=t3)
    assert later.deleted >= len(deleted)
    ids = sorted(r[0] for r in q(db, "SELECT id FROM salesforce.contact"))
    assert ids == sorted(org.truth_ids("Contact", ms[0], int(t3.timestamp() * 1000)))
    assert len(deleted) == 3 and not set(deleted) & set(ids)


def test_load_without_describe_is_all_text(org: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "Thing.csv"
    src.write_text('"Id","Amount","When"\n"a1","12.5","2024-01-01"\n"a2",,"x, ""y""\nz"\n')
    db = tmp_path / "t.duckdb"
    res = ObjectLoader("Thing__c", duckdb_destination(db)).load([Chunk([src], 2, src.stat().st_size)], None, "replace")
    assert res.rows == 2
    assert q(db, 'SELECT id, amount, "when" FROM salesforce.thing_c ORDER BY id') == [
        ("a1", "12.5", "2024-01-01"),
        ("a2", None, 'x, "y"\nz'),
    ]


def test_bad_chunk_fails_clearly_and_leaves_the_table_as_it_was(
    client: SalesforceClient, org: Emulator, tmp_path: Path
) -> None:
    db = tmp_path / "sf.duckdb"
    _, first, _ = extract_and_load(client, tmp_path, "Lead", db, mode="replace")
    bad = tmp_path / "Lead.bad.csv"
    bad.write_text('"Id","Name"\n"00Q1","ok"\n"00Q2","ragged","extra"\n')
    describe = client.describe("Lead")
    fields = select_fields(describe).fields
    with pytest.raises(LoadError, match=r"Lead\.bad\.csv") as err:
        ObjectLoader("Lead", duckdb_destination(db)).load([Chunk([bad], 2, bad.stat().st_size)], fields, "replace")
    assert "Expected 2 columns" in str(err.value) or "ragged" in str(err.value)
    assert q(db, "SELECT count(*) FROM salesforce.lead")[0][0] == first.rows
    unknown = tmp_path / "Lead.unknown.csv"
    unknown.write_text('"Id","Nope__c"\n"00Q1","x"\n')
    with pytest.raises(LoadError, match=r"Nope__c are not fields of Lead"):
        ObjectLoader("Lead", duckdb_destination(db)).load([Chunk([unknown], 1, 10)], fields, "replace")
    assert q(db, "SELECT count(*) FROM salesforce.lead")[0][0] == first.rows


def test_object_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidIdentifierError, match="'Account; DROP TABLE x' is not a valid Salesforce API name"):
        ObjectLoader("Account; DROP TABLE x", duckdb_destination(tmp_path / "x.duckdb"))


def test_one_big_file_loads_in_chunks_read_once_with_no_chunk_file_written(
    client: SalesforceClient, org: Emulator, tmp_path: Path
) -> None:
    """``load_files`` (what ``sf-pipeline load`` runs): one reader over the file, cut into chunks at batch
    boundaries; every row lands once and nothing is written next to the file."""
    result, describe = extract_object(client, "Account", tmp_path / "x", options=OPTS)
    big = tmp_path / "in" / "Account.csv"
    big.parent.mkdir()
    with open(big, "wb") as out:
        for k, page in enumerate(result.files):
            lines = page.read_bytes()
            out.write(lines if k == 0 else lines[lines.index(b"\n") + 1 :])
    assert big.stat().st_size > 3 * READ_BLOCK, "the file spans several batches"
    db = tmp_path / "sf.duckdb"
    split = SplitOptions(min_rows=1_000, target_bytes=READ_BLOCK)
    loaded = ObjectLoader("Account", duckdb_destination(db)).load_files(
        [big], select_fields(describe).fields, "replace", options=split
    )
    assert loaded.chunks >= 3
    assert loaded.rows == len(org.truth_ids("Account")) == q(db, "SELECT count(*) FROM salesforce.account")[0][0]
    assert [r[0] for r in q(db, "SELECT id FROM salesforce.account ORDER BY id")] == sorted(org.truth_ids("Account"))
    assert list(big.parent.iterdir()) == [big]
    # under the row threshold the same file is one chunk
    small = ObjectLoader("Account", duckdb_destination(db)).load_files([big], select_fields(describe).fields, "replace")
    assert small.chunks == 1 and small.rows == loaded.rows


def _numbers(n: int, closed: threading.Event, fail_at: int | None = None) -> Iterator[int]:
    try:
        for k in range(n):
            if k == fail_at:
                raise LoadError(f"bad item {k}")
            yield k
    finally:
        closed.set()


def test_read_ahead_keeps_order_raises_the_producers_error_and_stops_with_its_consumer() -> None:
    closed = threading.Event()
    assert list(read_ahead(_numbers(50, closed))) == list(range(50))
    assert closed.is_set()
    failing = threading.Event()
    items = read_ahead(_numbers(50, failing, fail_at=7))
    assert [next(items) for _ in range(7)] == list(range(7))
    with pytest.raises(LoadError, match="bad item 7"):
        next(items)
    assert failing.is_set()
    # a consumer that stops early: the producer stops, its source is closed, no thread is left behind
    stopped = threading.Event()
    ahead = read_ahead(_numbers(10**9, stopped))
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert stopped.is_set()
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


class _WatchedEnviron(dict):
    """``os.environ`` stand-in that records every write (the extract and read-ahead threads read it)."""

    def __init__(self, initial: dict[str, str]) -> None:
        super().__init__(initial)
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: str) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: object) -> object:
        self.writes.append(key)
        return super().pop(key, *default)


def test_a_load_changes_no_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt's settings go to dlt's own config, not os.environ (which other threads read during a load)."""
    src = tmp_path / "Thing__c.csv"
    src.write_text("Id,Name\n1,a\n2,b\n")
    watched = _WatchedEnviron(dict(os.environ))
    monkeypatch.setattr(os, "environ", watched)
    res = ObjectLoader("Thing__c", duckdb_destination(tmp_path / "x.duckdb"), pipelines_dir=tmp_path / "p").load(
        [Chunk([src], 2, src.stat().st_size)], None, "replace"
    )
    assert res.rows == 2
    assert watched.writes == []
    assert dlt.config["load.delete_completed_jobs"] is True  # completed load packages are still deleted
