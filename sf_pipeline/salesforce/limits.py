"""The org's daily API budget, as Salesforce reports it: the ``Sforce-Limit-Info: api-usage=N/M`` header on
every REST answer, and ``DailyApiRequests`` in the ``/limits`` resource; ``DailyBulkV2QueryJobs`` there too,
the Bulk API 2.0 query jobs of the last 24 hours (10,000 a day)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_API_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """API requests the org has made in the last 24 hours, against its limit."""

    used: int
    limit: int

    @classmethod
    def from_header(cls, value: str | None) -> ApiUsage | None:
        match = _API_USAGE.search(value or "")
        return cls(int(match.group(1)), int(match.group(2))) if match else None

    @classmethod
    def from_limits(cls, limits: dict, name: str = "DailyApiRequests") -> ApiUsage:
        """One of the ``/limits`` resource's allowances: ``DailyApiRequests``, ``DailyBulkV2QueryJobs``..."""
        daily = limits[name]
        return cls(int(daily["Max"]) - int(daily["Remaining"]), int(daily["Max"]))

    @property
    def remaining_fraction(self) -> float:
        return max(self.limit - self.used, 0) / self.limit if self.limit else 0.0

    def below(self, floor: float) -> bool:
        """Whether less than ``floor`` (a fraction, 0.1 = 10%) of the daily budget remains."""
        return self.remaining_fraction < floor

    def __str__(self) -> str:
        return f"{self.used}/{self.limit}"
