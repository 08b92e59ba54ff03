"""Reachability checks for ``sf-pipeline check-connections``: is the org, the staging area and the warehouse
reachable and authorised? Nothing is loaded; the bucket check writes one small probe file and deletes it.

Each check returns a ``Check`` whose detail names what was tried and, on failure, why, without secrets.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..salesforce import SalesforceClient, SalesforceError, SalesforceSettings
from ..warehouse import StagingSettings, Warehouse, WarehouseConfigError


@dataclass(frozen=True)
class Check:
    part: str
    target: str
    ok: bool
    detail: str


def _run(part: str, target: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(part, target, True, probe())
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is raised
        return Check(part, target, False, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return text.splitlines()[0][:400]


def check_salesforce(settings: SalesforceSettings, objects: Sequence[str]) -> Check:
    """Logs in, lists sObjects, and confirms that every catalog object exists and is queryable."""

    def probe() -> str:
        with SalesforceClient(settings) as client:
            listed = {o["name"]: o for o in client.sobjects()}
        missing = [name for name in objects if name not in listed]
        unqueryable = [name for name in objects if name in listed and not listed[name].get("queryable", True)]
        if missing or unqueryable:
            raise SalesforceError(
                "catalog object(s) "
                + ", ".join([f"{n} (not in the org)" for n in missing] + [f"{n} (not queryable)" for n in unqueryable])
            )
        return f"logged in; {len(listed)} sObjects, all {len(objects)} catalog objects queryable"

    return _run("salesforce", settings.login_url, probe)


def check_staging(staging: StagingSettings, destination: str) -> Check:
    """A bucket: write, list and delete a probe file under the prefix. A local folder: the same on disk."""

    def probe() -> str:
        staging.validate(destination)  # type: ignore[arg-type]
        if staging.kind == "none":
            return "no staging: dlt's load files stay in the run's working folder"
        if staging.kind == "local":
            folder = staging.local_dir
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            marker = folder / f".sf-pipeline-check-{uuid.uuid4().hex}"
            marker.write_bytes(b"ok")
            marker.unlink()
            return f"local folder {folder} is writable"
        fs = staging.filesystem()
        url = staging.bucket_url or ""
        container = url.split("://", 1)[1].split("/", 1)[0]
        if not fs.exists(container):
            raise WarehouseConfigError(
                f"container {container!r} does not exist in account {staging.azure_account_name!r}"
            )
        path = f"{staging.dataset_prefix('_sf_pipeline_check')}/{uuid.uuid4().hex}.txt"
        fs.pipe_file(path, b"ok")
        fs.invalidate_cache()
        found = fs.exists(path)
        fs.rm(path)
        if not found:
            raise WarehouseConfigError(f"wrote {path} but could not list it back")
        return f"wrote, listed and deleted a probe file under {url}"

    return _run("staging", staging.location or "none", probe)


def check_warehouse(warehouse: Warehouse) -> Check:
    """Connects with the pipeline's own settings and runs a trivial query."""

    def probe() -> str:
        with warehouse.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchone()
        where = (
            warehouse.duckdb_path
            if warehouse.kind == "duckdb"
            else (
                f"database {warehouse.snowflake.database}, role {warehouse.snowflake.role or '(default)'}, "
                f"warehouse {warehouse.snowflake.warehouse or '(default)'}"
            )
        )
        return f"connected to {warehouse.kind} ({where}); dataset {warehouse.dataset}"

    target = str(warehouse.duckdb_path) if warehouse.kind == "duckdb" else (warehouse.snowflake.account or "?")
    return _run("warehouse", f"{warehouse.kind}:{target}", probe)


def check_all(salesforce: SalesforceSettings, warehouse: Warehouse, objects: Sequence[str]) -> list[Check]:
    return [
        check_salesforce(salesforce, objects),
        check_staging(warehouse.staging, warehouse.kind),
        check_warehouse(warehouse),
    ]


def format_checks(checks: Sequence[Check]) -> str:
    width = max(len(c.part) for c in checks)
    return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.part.ljust(width)}  {c.target}: {c.detail}" for c in checks)
