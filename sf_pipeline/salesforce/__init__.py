"""SOURCE: Salesforce over httpx - OAuth, REST metadata and limits, object discovery, change counts, and
Bulk API 2.0 query extracts streamed to CSV files (``bulk.py``; REST for objects Bulk cannot query).
May import ``errors`` and ``common``; never dlt, pyarrow, duckdb or dagster."""

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
