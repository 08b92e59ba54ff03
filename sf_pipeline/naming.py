"""Warehouse names for Salesforce API names: the one place that decides what a table or column is called.

Tables are dlt's snake_case of the object name (``Invoice__c`` -> ``invoice_c``); columns are what dlt
makes of an Arrow column named after the field (``normalize_path``: ``CreatedDate`` -> ``created_date``,
``Account__c`` -> ``account__c``, ``__`` kept).
"""

from __future__ import annotations

from functools import cache


@cache
def _naming():  # noqa: ANN202 - dlt's NamingConvention, imported late (the split path never needs dlt)
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention()


def table_name(sobject: str) -> str:
    """The destination table of an object: dlt's snake_case of its API name (Invoice__c -> invoice_c)."""
    from .salesforce.soql import check_identifier

    return _naming().normalize_table_identifier(check_identifier(sobject, "sObject"))


def column_name(field: str) -> str:
    """The destination column of a field, as dlt names the Arrow column the loader gives it."""
    return _naming().normalize_path(field)


def assign_columns(fields: list[str], known: dict[str, str]) -> dict[str, str]:
    """API name -> column for ``fields``: a field keeps the column it was given before (``known``); a new
    field gets ``column_name`` of its API name, or, when another field already has that column (two API
    names that normalize alike, ``FooBar__c`` and ``Foo_Bar__c``), the same with ``_2``, ``_3``...

    Deterministic, and stable across runs once ``known`` holds every earlier assignment: the field that
    had a column first keeps it, whichever of the two is added later.
    """
    taken = set(known.values())
    out: dict[str, str] = {}
    for field in fields:
        if field in known:
            out[field] = known[field]
            continue
        base = column = column_name(field)
        k = 1
        while column in taken:
            k += 1
            column = f"{base}_{k}"
        taken.add(column)
        out[field] = column
    return out
