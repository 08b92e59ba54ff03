"""Errors raised by the Salesforce client, one class per thing a caller may want to catch."""

from __future__ import annotations

from ..errors import SfPipelineError


class SalesforceError(SfPipelineError):
    """Base class: every message names the sObject (when there is one) and the request."""

    def __init__(
        self,
        message: str,
        *,
        sobject: str | None = None,
        request: str | None = None,
        error_code: str | None = None,
        status: int | None = None,
    ) -> None:
        self.detail = message  # the message without the object and request in front
        self.sobject = sobject
        self.request = request
        self.error_code = error_code
        self.status = status
        where = " ".join(p for p in (f"[{sobject}]" if sobject else "", request or "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class AuthError(SalesforceError):
    """Login failed, or the session expired and could not be renewed."""


class QueryError(SalesforceError):
    """Salesforce refused the query (bad field, malformed SOQL, unsupported by Bulk API 2.0)."""


class JobFailedError(SalesforceError):
    """A Bulk query job ended Failed or Aborted; the message is Salesforce's errorMessage."""


class JobTimeoutError(JobFailedError):
    """A Bulk query job still running when ``ExtractOptions.job_timeout_s`` ran out (it is aborted)."""


class UnexpectedResponseError(SalesforceError):
    """A response that is not what the protocol promises: an HTML login page served with HTTP 200,
    a CSV header that does not match the fields asked for, or a record count that does not add up."""


class TransientError(SalesforceError):
    """Throttling, 5xx or network trouble that outlasted every retry."""


class OutcomeUnknown(TransientError):
    """A request that is not safe to repeat (creating a job) failed after it may have reached Salesforce."""


class ApiLimitError(SalesforceError):
    """The org's API request limit is exhausted (403 REQUEST_LIMIT_EXCEEDED); retrying will not help."""
