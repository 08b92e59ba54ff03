"""Faults the emulator can inject, per object and per request stage, set at start-up or at run time."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

KINDS = {
    "expired_session",  # 401 INVALID_SESSION_ID, and the presented token is revoked
    "rate_limit",  # 429 with Retry-After
    "server_error",  # 500 or 503 (``status``) with an API_ERROR body
    "cut_body",  # results: headers and part of the body, then the connection is closed
    "html_login",  # HTTP 200 with an HTML login page instead of the expected body
    "job_failed",  # the query job ends Failed with ``message``
    "slow_job",  # the query job stays InProgress for ``polls`` status requests (or until the faults are cleared)
    "request_limit",  # 403 REQUEST_LIMIT_EXCEEDED (not transient)
    "lost_answer",  # create: the job is created and runs, then the connection closes with no answer
}
STAGES = {"token", "sobjects", "describe", "query", "create", "poll", "results", "result_pages", "any"}


@dataclass
class Fault:
    kind: str
    stage: str = "any"
    object: str | None = None
    times: int = 1  # how many matching requests it hits; -1 for every one
    skip: int = 0  # matching requests let through before the first hit (e.g. 2: the third result page)
    status: int = 503
    retry_after: float = 1.0
    polls: int = 3
    message: str = "Injected failure from the sf_pipeline emulator"
    hits: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.stage not in STAGES:
            raise ValueError(f"unknown fault stage {self.stage!r}; expected one of {sorted(STAGES)}")

    def matches(self, stage: str, sobject: str | None) -> bool:
        if self.times == 0:
            return False
        if self.stage != "any" and self.stage != stage:
            return False
        return self.object is None or (sobject or "").lower() == self.object.lower()


class FaultPlan:
    """A thread-safe list of faults; ``take`` consumes one hit of the first matching fault."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = list(faults or [])

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, stage: str, sobject: str | None, kinds: set[str] | None = None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (kinds is None or fault.kind in kinds) and fault.matches(stage, sobject):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times > 0:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def describe(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]
