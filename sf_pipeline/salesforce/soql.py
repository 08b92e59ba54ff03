"""SOQL for bulk extracts: identifier checks, the queryable field list from describe, window filters.

Nothing user-given reaches a query unchecked: object and field names must be plain Salesforce
identifiers, and window bounds are datetimes formatted here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import CatalogError, InvalidIdentifierError

log = logging.getLogger(__name__)

_SEGMENT = r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*"
# Api names: letters, digits and single underscores, starting with a letter; "__" only between a
# namespace, the name and a suffix (ns__Field__c, Site_Location__Latitude__s).
IDENTIFIER = re.compile(rf"{_SEGMENT}(?:__{_SEGMENT}){{0,2}}")  # fullmatch: "$" would accept a final newline
# Bulk API 2.0 cannot select compound fields or base64 fields.
UNQUERYABLE_TYPES = {"address", "location", "base64"}


def check_identifier(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or len(name) > 120 or not IDENTIFIER.fullmatch(name):
        raise InvalidIdentifierError(
            f"{what} {name!r} is not a valid Salesforce API name "
            "(letters, digits and single underscores, starting with a letter)"
        )
    return name


@dataclass(frozen=True)
class FieldSelection:
    """The fields an extract selects, in order, and what was left out and why."""

    fields: list[dict]
    skipped: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [f["name"] for f in self.fields]


def select_fields(describe: dict, wanted: list[str] | None = None, exclude: list[str] | None = None) -> FieldSelection:
    """Queryable fields from a describe result, in describe order; compound and base64 fields are left
    out (and logged). ``wanted`` restricts the list and fails on a name describe does not know."""
    sobject = describe.get("name", "?")
    by_lower = {f["name"].lower(): f for f in describe["fields"]}
    if wanted:
        missing = [w for w in wanted if w.lower() not in by_lower]
        if missing:
            raise InvalidIdentifierError(f"[{sobject}] field(s) {', '.join(missing)} not found in describe")
        candidates = [by_lower[w.lower()] for w in wanted]
    else:
        candidates = list(describe["fields"])
    excluded = {e.lower() for e in exclude or []}
    if unknown := sorted(e for e in exclude or [] if e.lower() not in by_lower):
        # a typo here would silently extract the very field the user meant to leave out
        raise InvalidIdentifierError(
            f"[{sobject}] exclude_fields names {', '.join(unknown)}, not field(s) of {sobject} in describe"
        )
    fields, skipped = [], {}
    for f in candidates:
        if f["name"].lower() in excluded:
            skipped[f["name"]] = "excluded by configuration"
        elif f["type"] in UNQUERYABLE_TYPES:
            skipped[f["name"]] = f"{f['type']} fields cannot be queried with Bulk API 2.0"
        else:
            check_identifier(f["name"], f"field of {sobject}")
            fields.append(f)
    if skipped:
        log.info(
            "[%s] leaving out %d field(s): %s",
            sobject,
            len(skipped),
            ", ".join(f"{k} ({v})" for k, v in skipped.items()),
        )
    return FieldSelection(fields, skipped)


def soql_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def build_query(
    sobject: str,
    fields: list[str],
    cursor_field: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
) -> str:
    """``SELECT fields FROM sobject [WHERE (where) AND cursor >= since AND cursor < until]`` (half-open
    window; ``where`` is the catalog's filter for objects that need one)."""
    check_identifier(sobject, "sObject")
    for name in fields:
        check_identifier(name, f"field of {sobject}")
    return f"SELECT {', '.join(fields)} FROM {sobject}{_window(sobject, cursor_field, since, until, where)}"


def count_query(
    sobject: str,
    cursor_field: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    where: str | None = None,
) -> str:
    """``SELECT COUNT() FROM sobject [WHERE ...]`` over the same half-open window as ``build_query``."""
    check_identifier(sobject, "sObject")
    return f"SELECT COUNT() FROM {sobject}{_window(sobject, cursor_field, since, until, where)}"


def _window(
    sobject: str, cursor_field: str | None, since: datetime | None, until: datetime | None, where: str | None = None
) -> str:
    if (since or until) and not cursor_field:
        raise CatalogError(f"[{sobject}] a time window needs a cursor field")
    conditions = [f"({where})"] if where else []
    if cursor_field:
        check_identifier(cursor_field, f"cursor field of {sobject}")
        if since:
            conditions.append(f"{cursor_field} >= {soql_datetime(since)}")
        if until:
            conditions.append(f"{cursor_field} < {soql_datetime(until)}")
    return " WHERE " + " AND ".join(conditions) if conditions else ""
