"""``sync_object``, ``sweep_ids`` and ``refresh_formulas`` run with the settings models: the object asset, the
Id sweep, the formula refresh and the ``sf-pipeline`` commands all call these, so a setting means the same
wherever it is read.
Takes any holder of the fields (the Dagster resources inherit them); imports no Dagster."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..catalog import CatalogObject
from ..salesforce import ExtractOptions, SalesforceClient
from ..salesforce.settings import ExtractSettings, OrgSettings
from ..warehouse import Warehouse
from .formulas import FormulaResult, refresh_formulas
from .load import ChunkRunner
from .reconcile import SweepResult, sweep_ids
from .settings import LoadSettings
from .sync import SyncResult, sync_object


class OrgAccess(Protocol):
    """The org's settings and a client for them (``SalesforceResource`` shares the run's client)."""

    def client(self) -> AbstractContextManager[SalesforceClient]: ...

    def extract_options(self) -> ExtractOptions: ...


@dataclass(frozen=True)
class PlainOrg:
    """``OrgAccess`` outside Dagster: a client of its own, from the org's settings."""

    org: OrgSettings
    extract: ExtractSettings

    @classmethod
    def from_env(cls) -> PlainOrg:
        return cls(OrgSettings.from_env(), ExtractSettings.from_env())

    def client(self) -> AbstractContextManager[SalesforceClient]:
        return SalesforceClient(self.org.salesforce_settings())

    def extract_options(self) -> ExtractOptions:
        return self.extract.extract_options()


def sync_with(
    org: OrgAccess,
    load: LoadSettings,
    entry: CatalogObject,
    target: Warehouse,
    *,
    file_format: str,
    since: datetime | None,
    until: datetime | None,
    full_refresh: bool,
    extract_overrides: dict[str, Any] | None = None,
    split_overrides: dict[str, Any] | None = None,
    run_chunk: ChunkRunner | None = None,
) -> SyncResult:
    """``sync_object`` with these settings."""
    extract = dataclasses.replace(org.extract_options(), **(extract_overrides or {}))
    split = dataclasses.replace(load.split_options(), **(split_overrides or {}))
    with org.client() as client:
        return sync_object(
            client,
            entry,
            target,
            since=since,
            until=until,
            full_refresh=full_refresh,
            work_dir=load.work_path(),
            extract_options=extract,
            split_options=split,
            dlt_settings=load.dlt_settings(file_format),
            run_chunk=run_chunk,
            memory_limit_mb=load.memory_limit_mb,
            overlap=load.window_overlap,
            hash_key=load.hash_key,
        )


def _scratch_options(org: OrgAccess, load: LoadSettings, file_format: str) -> dict[str, Any]:
    """What the Id sweep and the formula refresh (each a scratch table loaded beside the object's) take from
    the settings."""
    return {
        "work_dir": load.work_path(),
        "extract_options": org.extract_options(),
        "split_options": load.split_options(),
        "dlt_settings": load.dlt_settings(file_format),
        "memory_limit_mb": load.memory_limit_mb,
    }


def sweep_with(
    org: OrgAccess, load: LoadSettings, entry: CatalogObject, target: Warehouse, file_format: str = "parquet"
) -> SweepResult:
    """``sweep_ids`` with these settings."""
    with org.client() as client:
        return sweep_ids(client, entry, target, **_scratch_options(org, load, file_format))


def refresh_formulas_with(
    org: OrgAccess, load: LoadSettings, entry: CatalogObject, target: Warehouse, file_format: str = "parquet"
) -> FormulaResult:
    """``refresh_formulas`` with these settings."""
    with org.client() as client:
        return refresh_formulas(
            client, entry, target, hash_key=load.hash_key, **_scratch_options(org, load, file_format)
        )
