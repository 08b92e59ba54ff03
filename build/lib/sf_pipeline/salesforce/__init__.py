"""Salesforce access over httpx: OAuth, REST metadata, and Bulk API 2.0 query extracts to CSV files."""

from .bulk import BulkExtract, ExtractOptions, ExtractResult
from .client import SalesforceClient
from .errors import (
    ApiLimitError,
    AuthError,
    JobFailedError,
    QueryError,
    SalesforceError,
    TransientError,
    UnexpectedResponseError,
)
from .limits import ApiUsage
from .settings import RetryPolicy, SalesforceSettings
from .soql import FieldSelection, InvalidIdentifierError, build_query, check_identifier, select_fields

__all__ = [
    "ApiLimitError",
    "ApiUsage",
    "AuthError",
    "BulkExtract",
    "ExtractOptions",
    "ExtractResult",
    "FieldSelection",
    "InvalidIdentifierError",
    "JobFailedError",
    "QueryError",
    "RetryPolicy",
    "SalesforceClient",
    "SalesforceError",
    "SalesforceSettings",
    "TransientError",
    "UnexpectedResponseError",
    "build_query",
    "check_identifier",
    "select_fields",
]
