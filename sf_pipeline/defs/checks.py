"""The object asset's checks: what each one asserts, and how a load's result and Salesforce's own count
become their results. Declared on the asset (``check_specs``), evaluated after its load (``evaluate_checks``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from ..catalog import CatalogObject
from ..datapath.sync import SyncResult
from ..salesforce import SalesforceClient
from ..salesforce.soql import count_query as soql_count
from .resources import SalesforceResource

RECONCILE_CHECK = "row_count_reconciliation"
EMPTY_GUARD_CHECK = "not_unexpectedly_empty"
WAREHOUSE_COUNT_CHECK = "warehouse_row_count"
SHRINK_CHECK = "not_much_smaller_than_before"
SCHEMA_CHECK = "schema_unchanged"
WHOLE_OBJECT_CHECK = "whole_object_matches_salesforce"
log = logging.getLogger(__name__)
SHRINK_RATIO = 0.5  # warn when a window (or the whole table) holds less than half the rows it held before


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            RECONCILE_CHECK,
            asset=key,
            description=("Rows Salesforce reported for the window = rows in the CSV = rows loaded"),
        ),
        dg.AssetCheckSpec(
            EMPTY_GUARD_CHECK,
            asset=key,
            description=("Fails when the load returned no rows although Salesforce counts rows in the window"),
        ),
        dg.AssetCheckSpec(
            WAREHOUSE_COUNT_CHECK,
            asset=key,
            description=(
                "Rows in the warehouse table for the window = live rows Salesforce counts for it "
                "(a warning: rows edited in Salesforce during the run can differ until the next window)"
            ),
        ),
        dg.AssetCheckSpec(
            SHRINK_CHECK,
            asset=key,
            description=(
                f"Warns when the window (or, on a full refresh, the table) holds less than {SHRINK_RATIO:.0%} "
                "of the rows it held before this load: a filter, a permission or a sharing rule may have changed"
            ),
        ),
        dg.AssetCheckSpec(
            WHOLE_OBJECT_CHECK,
            asset=key,
            description=(
                "Live rows in the whole warehouse table = Salesforce's COUNT() of every live record of the object, "
                "however old (a warning with both numbers and the likely cause; one API call, left out while the "
                "org's API budget is under the floor)"
            ),
        ),
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=key,
            description=(
                "Warns when fields were added, removed (or hidden) or retyped in Salesforce since the last load; "
                "the load went on (new columns added, old ones kept): the metadata says what changed"
            ),
        ),
    ]


def count_query(
    entry: CatalogObject, since: datetime | None = None, until: datetime | None = None, *, deletable: bool
) -> tuple[str, bool]:
    """Salesforce's own count of the live records in the window, or of the whole object: the checks' truth,
    as ``(soql, include_deleted)``. Live as a load keeps them: ``queryAll`` less the deleted records, so that
    archived activities, which only ``queryAll`` returns, count as the load loads them. ``deletable``: the
    object has ``IsDeleted`` (User, for one, has not: a plain ``query`` then)."""
    cursor = entry.cursor_field if since or until else None
    if entry.include_deleted and deletable:
        where = " AND ".join(c for c in (entry.filter and f"({entry.filter})", "IsDeleted = false") if c)
        return soql_count(entry.name, cursor, since, until, where), True
    return soql_count(entry.name, cursor, since, until, entry.filter), False


def salesforce_count(
    client: SalesforceClient,
    entry: CatalogObject,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    deletable: bool,
) -> int:
    """``count_query`` asked (REST COUNT(), one API call)."""
    soql, include_deleted = count_query(entry, since, until, deletable=deletable)
    return int(client.query(soql, sobject=entry.name, include_deleted=include_deleted)["totalSize"])


@dataclass(frozen=True)
class SalesforceTruth:
    """What Salesforce counts after a load: the window's live records and the whole object's (None: not
    counted, the org's API budget under the floor, with the usage that said so)."""

    window: int
    whole: int | None
    usage: str


def salesforce_truth(
    salesforce: SalesforceResource,
    entry: CatalogObject,
    result: SyncResult,
    since: datetime | None,
    until: datetime | None,
    budget_floor: float,
) -> SalesforceTruth:
    """The window's count and the whole object's in one Composite request (one API call); the whole object
    is not counted while the org's API budget is under the floor."""
    deletable = "IsDeleted" in result.field_info
    with salesforce.client() as client:
        usage = client.api_usage
        whole = usage is None or not usage.below(budget_floor)
        queries = [count_query(entry, since, until, deletable=deletable)]
        if whole:
            queries.append(count_query(entry, deletable=deletable))
        counts = client.counts(queries, sobject=entry.name)
    return SalesforceTruth(counts[0], counts[1] if whole else None, str(usage))


def _whole_object(
    entry: CatalogObject, truth: SalesforceTruth, in_table: int, budget_floor: float
) -> dg.AssetCheckResult:
    """The whole table against the whole object: what a window's check cannot see (history older than the
    first partition, a window never loaded, rows lost). Not counted while the org's API budget is under the
    floor: then a warning that says so (Dagster wants every planned check answered; a green one would claim
    what nobody counted)."""
    if truth.whole is None:
        reason = f"not counted: the org's API budget ({truth.usage} used) is under the floor of {budget_floor:.0%}"
        log.warning("[%s] %s %s", entry.name, WHOLE_OBJECT_CHECK, reason)
        return dg.AssetCheckResult(
            check_name=WHOLE_OBJECT_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=reason,
            metadata={"evaluated": False, "org_api_usage": truth.usage},
        )
    metadata: dict[str, object] = {
        "evaluated": True,
        "warehouse_rows": in_table,
        "salesforce_live_count": truth.whole,
    }
    if in_table < truth.whole:
        metadata["likely_cause"] = (
            "rows missing: a window never loaded (run a backfill of every partition or a full refresh), or a load "
            "that lost rows"
        )
    elif in_table > truth.whole:
        metadata["likely_cause"] = (
            "rows Salesforce no longer has: records hard-deleted (the Id sweep removes them) or hidden from the "
            "integration user, or a filter changed"
        )
    return dg.AssetCheckResult(
        check_name=WHOLE_OBJECT_CHECK,
        passed=in_table == truth.whole,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def evaluate_checks(
    entry: CatalogObject,
    result: SyncResult,
    truth: SalesforceTruth,
    *,
    rows_before: int,
    rows_in_window: int,
    rows_in_table: int,
    budget_floor: float,
) -> list[dg.AssetCheckResult]:
    """Every check of one load, from Salesforce's counts after it (``salesforce_truth``) and the table's live
    rows in the window before and after the load, and in all, as the warehouse counted them."""
    whole = _whole_object(entry, truth, rows_in_table, budget_floor)
    in_warehouse = rows_in_window
    return [
        dg.AssetCheckResult(
            check_name=RECONCILE_CHECK,
            passed=result.reconciled,
            metadata={
                "salesforce_records": result.salesforce_records,
                "csv_records": result.csv_records,
                "rows_loaded": result.rows_loaded,
            },
        ),
        dg.AssetCheckResult(
            check_name=EMPTY_GUARD_CHECK,
            passed=not (result.rows_loaded == 0 and truth.window > 0),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_loaded": result.rows_loaded, "salesforce_count": truth.window},
        ),
        dg.AssetCheckResult(
            check_name=WAREHOUSE_COUNT_CHECK,
            passed=in_warehouse == truth.window,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"warehouse_rows": in_warehouse, "salesforce_live_count": truth.window},
        ),
        dg.AssetCheckResult(
            check_name=SHRINK_CHECK,
            passed=not (rows_before and in_warehouse < rows_before * SHRINK_RATIO),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows_before": rows_before, "rows_after": in_warehouse},
        ),
        dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=not any(result.schema_changes.values()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={kind: dg.MetadataValue.json(items) for kind, items in result.schema_changes.items()},
        ),
        whole,
    ]
