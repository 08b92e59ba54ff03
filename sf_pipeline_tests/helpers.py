"""Helpers the tests share: the test org's sizes, fast retries, and a handle on a running emulator."""

from __future__ import annotations

import httpx

from sf_pipeline.emulator import EmulatorServer, Fault
from sf_pipeline.salesforce import RetryPolicy, SalesforceSettings

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
        for i in range(obj.rows):
            ms = obj.modstamp_ms(i)
            if since_ms is not None and ms < since_ms or until_ms is not None and ms >= until_ms:
                continue
            if obj.is_deleted(i) and not include_deleted:
                continue
            out.append(obj.raw_value(id_field, i))
        return out
