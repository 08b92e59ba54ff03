"""The load overlaps the extract: chunk 1 is in the warehouse while a later page is still downloading, the
extract asks Salesforce while the warehouse counts what the table holds, and a load (or a count) that fails
stops the extract instead of leaving it writing into a folder being cleaned up."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import duckdb
import pytest

from sf_pipeline.catalog import load_catalog
from sf_pipeline.common import faultpoints
from sf_pipeline.datapath.split import SplitOptions
from sf_pipeline.datapath.sync import sync_object
from sf_pipeline.salesforce import ExtractOptions, SalesforceClient
from sf_pipeline.warehouse import Warehouse

from ..helpers import Emulator

PAGE = 2_000  # Account records per page: the org's 12,000 in six pages
SPLIT = SplitOptions(min_rows=1_000, target_bytes=3 * 2**20)  # ~1.3 MB pages: chunks of two or three pages


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_the_first_chunk_loads_while_the_last_page_is_still_downloading(
    org: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pages one at a time, in order; the last one answered 429 with Retry-After 4 s first
    org.fault(kind="rate_limit", stage="results", object="Account", skip=5, retry_after=4)
    caplog.set_level(logging.INFO, logger="sf_pipeline")
    db = tmp_path / "sf.duckdb"
    with SalesforceClient(org.settings()) as client:
        result = sync_object(
            client,
            load_catalog().get("Account"),
            Warehouse(duckdb_path=db),
            full_refresh=True,
            work_dir=tmp_path / "work",
            extract_options=ExtractOptions(max_records=PAGE, concurrency=1, delete_job=False),
            split_options=SPLIT,
        )
    log = messages(caplog)
    first_load = next(i for i, m in enumerate(log) if "[Account] chunk 1 loaded" in m)
    last_page = next(i for i, m in enumerate(log) if "page Account.00005.csv on disk" in m)
    assert first_load < last_page, "chunk 1 waited for the whole extract"
    assert result.chunks >= 2  # the overlap itself is the log order above, not a timing (timings live in bench/)
    with duckdb.connect(str(db), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute("SELECT id FROM salesforce.account").fetchall())
    assert ids == sorted(org.truth_ids("Account"))


def test_a_failed_load_stops_the_extract_and_leaves_nothing_running(
    org: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org.fault(kind="rate_limit", stage="results", object="Account", skip=3, retry_after=2)
    faultpoints.reset()
    monkeypatch.setenv(faultpoints.ENV, "batch_read:Account@1=raise")
    work = tmp_path / "work"
    with (
        SalesforceClient(org.settings()) as client,
        pytest.raises(Exception, match=r"\[Account\].*injected fault"),
    ):
        sync_object(
            client,
            load_catalog().get("Account"),
            Warehouse(duckdb_path=tmp_path / "sf.duckdb"),
            full_refresh=True,
            work_dir=work,
            extract_options=ExtractOptions(max_records=PAGE, concurrency=1, delete_job=False),
            split_options=SPLIT,
        )
    assert not [t.name for t in threading.enumerate() if t.name.startswith("extract-")], "the extract runs on"
    assert not any(work.glob("Account-*/extract/*.part")), "a page was left half written"


def _sync_account(org: Emulator, tmp_path: Path) -> None:
    with SalesforceClient(org.settings()) as client:
        sync_object(
            client,
            load_catalog().get("Account"),
            Warehouse(duckdb_path=tmp_path / "sf.duckdb"),
            full_refresh=True,
            work_dir=tmp_path / "work",
            split_options=SPLIT,
        )


def test_the_extract_asks_salesforce_while_the_warehouse_counts(
    org: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count before a load (a round trip to Snowflake), the object's describe and the extract's first
    requests (round trips to Salesforce) overlap: the count here waits until the org has been asked for the
    records, which needs the describe first."""
    count_spans = Warehouse.count_spans
    seen: list[bool] = []

    def count_once_the_org_is_asked(self: Warehouse, *args: object, **kwargs: object) -> dict[str, int]:
        if not seen:
            deadline = time.monotonic() + 20
            while not any("/query" in path or "/jobs/query" in path for path in org.stats()):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            seen.append(any("/query" in path for path in org.stats()))
        return count_spans(self, *args, **kwargs)

    monkeypatch.setattr(Warehouse, "count_spans", count_once_the_org_is_asked)
    org.reset_stats()
    _sync_account(org, tmp_path)
    assert seen == [True], "the extract waited for the warehouse's count"
    with duckdb.connect(str(tmp_path / "sf.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM salesforce.account").fetchone()[0] == len(org.truth_ids("Account"))


def test_a_failed_count_stops_the_extract_it_started(
    org: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Warehouse, *args: object, **kwargs: object) -> dict[str, int]:
        raise RuntimeError("the warehouse went away")

    monkeypatch.setattr(Warehouse, "count_spans", refuse)
    with pytest.raises(RuntimeError, match="went away"):
        _sync_account(org, tmp_path)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("extract-")], "the extract runs on"
