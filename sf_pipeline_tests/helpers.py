"""Helpers the tests share: the test org's sizes, fast retries, and a handle on a running emulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx

from sf_pipeline.salesforce import RetryPolicy, SalesforceSettings
from sf_testbed.emulator import EmulatorConfig, EmulatorServer, Fault, make_server
from sf_testbed.emulator.org import ObjectModel

# Small objects keep the suite fast; Account is large enough to span several result pages.
TEST_ROWS = {
    "Account": 12_000,
    "Contact": 3_000,
    "Opportunity": 2_000,
    "Lead": 1_500,
    "Case": 1_000,
    "Task": 2_500,
    "User": 300,
    "Invoice__c": 800,
}
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


class Emulator:
    """A running emulator and helpers to steer it through its admin endpoints."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.url = server.url
        self.org = server.state.org
        self.config = server.state.config

    def fault(self, **spec) -> None:
        Fault(**spec)  # validate before sending
        httpx.post(f"{self.url}/__emulator__/faults", json=spec).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/__emulator__/faults").raise_for_status()

    def faults(self) -> list[dict]:
        return httpx.get(f"{self.url}/__emulator__/faults").json()

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/__emulator__/stats").json()["requests"]

    def reset_stats(self) -> None:
        httpx.delete(f"{self.url}/__emulator__/stats").raise_for_status()

    def change(self, sobject: str, **changes: object) -> dict:
        """Change records now (insert, update, delete, undelete, hard_delete), as users do in the org."""
        response = httpx.post(f"{self.url}/__emulator__/records", json={"object": sobject, **changes})
        response.raise_for_status()
        return response.json()

    def reset_records(self) -> None:
        httpx.delete(f"{self.url}/__emulator__/records").raise_for_status()

    def set_api_usage(self, used: int, limit: int) -> None:
        httpx.post(f"{self.url}/__emulator__/limits", json={"used": used, "limit": limit}).raise_for_status()

    def set_bulk_jobs(self, used: int, limit: int = 10_000) -> None:
        """The org's Bulk API 2.0 query jobs of the day (DailyBulkV2QueryJobs)."""
        body = {"bulk_jobs_used": used, "bulk_jobs_limit": limit}
        httpx.post(f"{self.url}/__emulator__/limits", json=body).raise_for_status()

    def now(self) -> datetime:
        """The org's clock (the wall clock unless a test moved it on with ``advance_clock``)."""
        return datetime.fromtimestamp(self.server.state.now(), UTC)

    def advance_clock(self, seconds: float) -> None:
        """Move the org's clock on (its replication resources and change stamps follow it), instead of waiting."""
        httpx.post(f"{self.url}/__emulator__/clock", json={"advance_s": seconds}).raise_for_status()

    def advance_formulas(self) -> None:
        httpx.post(f"{self.url}/__emulator__/formulas", json={"advance": 1}).raise_for_status()

    def settings(self, **overrides) -> SalesforceSettings:
        return SalesforceSettings(login_url=self.url, retry=FAST_RETRY, **overrides)

    def truth_ids(
        self, sobject: str, since_ms: int | None = None, until_ms: int | None = None, include_deleted: bool = False
    ) -> list[str]:
        """The Ids the org holds for a window: what any correct extract must return."""
        obj = self.org.get(sobject)
        assert obj is not None
        id_field = obj.by_name["id"]
        out = []
        for i in [*range(obj.rows), *sorted(k for k in obj.live if k >= obj.rows)]:
            if i in obj.gone:
                continue
            ms = obj.live[i].modstamp_ms if i in obj.live else obj.modstamp_ms(i)
            if since_ms is not None and ms < since_ms or until_ms is not None and ms >= until_ms:
                continue
            if obj.row_deleted(i) and not include_deleted:
                continue
            out.append(obj.raw_value(id_field, i))
        return out


@contextmanager
def running_emulator(config: EmulatorConfig) -> Iterator[Emulator]:
    """An emulator serving in the background for the duration of the block."""
    server = make_server(config)
    server.start_background()
    try:
        yield Emulator(server)
    finally:
        server.shutdown()
        server.server_close()


def materialize_object(org: Emulator, name: str, db: Path, work: Path, **kwargs: object) -> dg.ExecuteInProcessResult:
    """One object's asset materialized in process against ``org``, loading into the DuckDB file ``db``."""
    from sf_pipeline.catalog import load_catalog
    from sf_pipeline.defs.assets import asset_key, build_assets
    from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource

    asset = next(a for a in build_assets(load_catalog()) if asset_key(name) in a.keys)
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [asset],
            instance=instance,
            resources={
                "salesforce": SalesforceResource(login_url=org.url, max_retries=3),
                "warehouse": WarehouseResource(duckdb_path=str(db)),
                "pipeline_settings": PipelineSettings(work_dir=str(work)),
            },
            **kwargs,
        )


ODD_TEXT = {
    "131072 chars": lambda v: len(v) == 131072,
    "NUL": lambda v: "\x00" in v,
    "lone CR": lambda v: "\r" in v.replace("\r\n", ""),
    "CRLF": lambda v: "\r\n" in v,
    "tab": lambda v: "\t" in v,
    "astral plane": lambda v: any(ord(c) > 0xFFFF for c in v),
}


def assert_text_round_trips(model: ObjectModel, loaded: dict[str, dict[str, object]]) -> set[str]:
    """Every live row's value of each field (API name -> {Id: value}) equals the org's; returns which of
    the ``ODD_TEXT`` cases the values held, so that a test can insist it saw them."""
    id_field = model.by_name["id"]
    seen: set[str] = set()
    for api, values in loaded.items():
        f = model.by_name[api.lower()]
        for i in range(model.rows):
            raw = model.raw_value(f, i)
            if model.is_deleted(i) or raw is None:
                continue
            assert values[model.raw_value(id_field, i)] == raw, f"{model.name}.{api} row {i}"
            seen |= {name for name, test in ODD_TEXT.items() if test(raw)}
    return seen
