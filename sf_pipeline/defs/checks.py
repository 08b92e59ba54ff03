"""The object asset's checks: what each one asserts, and how a load's result and Salesforce's own count
become their results. Declared on the asset (``check_specs``), evaluated after its load (``evaluate_checks``)."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from ..catalog import CatalogObject
from ..datapath.sync import SyncResult
from ..salesforce.soql import count_query
from ..warehouse import Warehouse
from .resources import SalesforceResource

RECONCILE_CHECK = "row_count_reconciliation"
EMPTY_GUARD_CHECK = "not_unexpectedly_empty"
WAREHOUSE_COUNT_CHECK = "warehouse_row_count"
SHRINK_CHECK = "not_much_smaller_than_before"
SCHEMA_CHECK = "schema_unchanged"
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
            SCHEMA_CHECK,
            asset=key,
            description=(
                "Warns when fields were added, removed (or hidden) or retyped in Salesforce since the last load; "
                "the load went on (new columns added, old ones kept): the metadata says what changed"
            ),
        ),
    ]


def salesforce_count(
    salesforce: SalesforceResource, entry: CatalogObject, since: datetime | None, until: datetime | None
) -> int:
    """Salesforce's own count of live rows in the window (REST COUNT(), cheap): the checks' truth."""
    soql = count_query(entry.name, entry.cursor_field if since else None, since, until, entry.filter)
    with salesforce.client() as client:
        return int(client.query(soql, sobject=entry.name, include_deleted=False)["totalSize"])


def evaluate_checks(
    salesforce: SalesforceResource,
    warehouse: Warehouse,
    entry: CatalogObject,
    result: SyncResult,
    since: datetime | None,
    until: datetime | None,
    *,
    rows_before: int,
) -> list[dg.AssetCheckResult]:
    truth = salesforce_count(salesforce, entry, since, until)
    in_warehouse = warehouse.count_rows(result.table, entry.cursor_field, since, until)
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
            passed=not (result.rows_loaded == 0 and truth > 0),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_loaded": result.rows_loaded, "salesforce_count": truth},
        ),
        dg.AssetCheckResult(
            check_name=WAREHOUSE_COUNT_CHECK,
            passed=in_warehouse == truth,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"warehouse_rows": in_warehouse, "salesforce_live_count": truth},
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
    ]
