"""When and how long a request to Salesforce is tried again: tenacity, with Salesforce's rules.

Throttling (429), server errors (5xx) and network failures are retried with exponential backoff and full
jitter (many workers throttled at once do not come back at once); a ``Retry-After`` header is honoured up to
``RetryPolicy.max_retry_after_s`` (a proxy asking for an hour does not stall a run for an hour). A request
that is not idempotent (creating a query job) is retried only when Salesforce cannot have acted on it: a 429,
or a connection that was never made. Any other failure of such a request is ``OutcomeUnknown``: the caller
decides (``SalesforceClient.create_query_job`` creates the job again and aborts the one whose answer was lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import tenacity

from .settings import RetryPolicy

log = logging.getLogger(__name__)

# raised before a byte of the request left: Salesforce cannot have seen it
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RetryableResponse(Exception):
    """A 429 or 5xx answer, read and closed, worth another try (after ``retry_after`` when it says so)."""

    def __init__(self, response: httpx.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (an HTTP date is not used by Salesforce and is ignored)."""
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def backoff(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    """How long to wait before the next try: the failure's ``Retry-After`` (capped), else full-jitter backoff."""
    jittered = tenacity.wait_random_exponential(multiplier=policy.initial_backoff_s, max=policy.max_backoff_s)

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        asked = getattr(failure, "retry_after", None)
        if asked is not None:
            return min(max(asked, 0.0), policy.max_retry_after_s)
        return jittered(state)

    return wait


def retrying(
    policy: RetryPolicy, name: str, *, idempotent: bool = True, also: tuple[type[BaseException], ...] = ()
) -> tenacity.Retrying:
    """The retry loop for one request named ``name`` (``also``: more failures worth another try); the last
    failure is re-raised once attempts run out."""

    def retryable(exc: BaseException) -> bool:
        if isinstance(exc, also):
            return True
        if isinstance(exc, RetryableResponse):
            return idempotent or exc.response.status_code == 429
        if isinstance(exc, httpx.TransportError):
            return idempotent or isinstance(exc, NOT_SENT)
        return False

    def before_sleep(state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (%s); retry %d/%d in %.1fs",
            name,
            failure if isinstance(failure, RetryableResponse) else type(failure).__name__,
            state.attempt_number,
            policy.max_attempts - 1,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=backoff(policy),
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
