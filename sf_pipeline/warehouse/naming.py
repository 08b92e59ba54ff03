"""Warehouse names for Salesforce API names: the one place that decides what a table or column is called.

Tables are dlt's snake_case of the object name (``Invoice__c`` -> ``invoice_c``); columns are what dlt
makes of an Arrow column named after the field (``normalize_path``: ``CreatedDate`` -> ``created_date``,
``Account__c`` -> ``account__c``, ``__`` kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache


@cache
def _naming():  # noqa: ANN202 - dlt's NamingConvention, imported late (the split path never needs dlt)
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention()


def table_name(sobject: str) -> str:
    """The destination table of an object: dlt's snake_case of its API name (Invoice__c -> invoice_c)."""
    from ..salesforce.soql import check_identifier

    return _naming().normalize_table_identifier(check_identifier(sobject, "sObject"))


def column_name(field: str) -> str:
    """The destination column of a field, as dlt names the Arrow column the loader gives it."""
    return _naming().normalize_path(field)


@dataclass(frozen=True)
class ColumnRecord:
    """One field's column as recorded in the dataset (``_sf_columns``): the latest record of a field wins."""

    column: str
    sf_type: str  # Salesforce's type in describe
    data_type: str  # the Arrow type it loads as: a change means a new column
    label: str = ""
    present: bool = True  # False once the field left describe (removed, or hidden by field-level security)


@dataclass
class ColumnPlan:
    columns: dict[str, str]  # API name -> column, for the fields in describe now
    records: dict[str, ColumnRecord]  # what to record: new, moved, retyped, removed or returned fields
    changes: dict[str, list] = field(default_factory=dict)  # added, removed, retyped: what an admin changed

    @property
    def changed(self) -> bool:
        return any(self.changes.values())


def plan_columns(fields: list[dict], known: dict[str, ColumnRecord], data_type: Callable[[dict], str]) -> ColumnPlan:
    """Each field's column, given every earlier assignment (``known``), and what changed since.

    A field keeps its column while its Arrow type stays (picklist to multipicklist keeps it); a field whose
    type changed gets a new column named after the new type (``amount__c_string``), so the old column keeps
    the values it holds; a new field gets dlt's name for it, or, when another field already has that column
    (``FooBar__c`` and ``Foo_Bar__c`` normalize alike), the same with ``_2``, ``_3``... A column is never
    handed to another field, even after its field was removed.
    """
    taken = {k.column for k in known.values()}
    plan = ColumnPlan({}, {}, {"added": [], "removed": [], "retyped": []})
    first_load = not known

    def free(base: str) -> str:
        column, k = base, 1
        while column in taken:
            k += 1
            column = f"{base}_{k}"
        taken.add(column)
        return column

    for f in fields:
        name, sf_type, arrow = f["name"], f.get("type", "string"), data_type(f)
        label = f.get("label") or ""
        before = known.get(name)
        if before is None:
            column = free(column_name(name))
            if not first_load:
                plan.changes["added"].append({"field": name, "type": sf_type, "column": column})
        elif before.data_type != arrow:
            column = free(f"{column_name(name)}_{sf_type.lower()}")
            plan.changes["retyped"].append(
                {"field": name, "from": before.sf_type, "to": sf_type, "old_column": before.column, "column": column}
            )
        else:
            column = before.column
            if before.sf_type != sf_type:
                plan.changes["retyped"].append(
                    {"field": name, "from": before.sf_type, "to": sf_type, "old_column": column, "column": column}
                )
            if not before.present:
                plan.changes["added"].append({"field": name, "type": sf_type, "column": column, "returned": True})
        plan.columns[name] = column
        record = ColumnRecord(column, sf_type, arrow, label)
        if record != before:
            plan.records[name] = record
    current = {f["name"] for f in fields}
    for name, before in known.items():
        if before.present and name not in current:
            plan.changes["removed"].append({"field": name, "column": before.column})
            plan.records[name] = replace(before, present=False)
    return plan


def assign_columns(fields: list[str], known: dict[str, str]) -> dict[str, str]:
    """API name -> column for text fields given earlier assignments (``plan_columns`` without types)."""
    records = {name: ColumnRecord(column, "string", "string") for name, column in known.items()}
    return plan_columns([{"name": name} for name in fields], records, lambda f: "string").columns
