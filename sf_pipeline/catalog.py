"""The object catalog: which objects the pipeline loads, and how. It is the only list used to create,
load or drop anything (never dlt's schema).

Two layers: the discovered catalog (``sf-pipeline discover`` writes it from the org; ``discovery.py``) says
what exists and how it can load; the hand-written ``catalog.yaml`` overrides it: ``include``/``exclude`` by
name or pattern, and per-object settings (weight, owners, tags, cursor, route, filter, formula, delete and
hashing policies). Without a discovered catalog, the hand-written ``objects:`` list is the catalog.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import yaml

from .errors import CatalogError
from .salesforce.discovery import FILTER_REASON, ROUTES, DiscoveredObject, object_kind, read_discovery
from .salesforce.soql import check_identifier

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")
CATALOG_ENV = "SF_PIPELINE_CATALOG"  # the hand-written catalog; unset: DEFAULT_CATALOG
DISCOVERED_ENV = "SF_PIPELINE_DISCOVERED_CATALOG"  # the discovered catalog's file; unset: none
GRANULARITIES = ("daily", "weekly", "monthly")
HARD_DELETES = ("delete", "flag")  # what the Id sweep does to rows Salesforce no longer has
DELETES = ("remove", "flag")  # what becomes of a record Salesforce reports deleted (soft and hard alike)
# The columns a kept deleted row carries (docs/data.md): with `deletes: flag`, _sf_deleted (true once Salesforce
# reports it deleted) and _sf_deleted_at (its SystemModstamp at deletion; for a hard delete, when the Id sweep
# found it gone); with `hard_deletes: flag` alone, _sf_hard_deleted_at (when the Id sweep found it gone)
DELETED_COLUMN, DELETED_AT_COLUMN, HARD_DELETED_COLUMN = "_sf_deleted", "_sf_deleted_at", "_sf_hard_deleted_at"
# history: true keeps every version of a record (dlt's scd2 merge), each valid from one column's time to the other's
VALID_FROM_COLUMN, VALID_TO_COLUMN = "_sf_valid_from", "_sf_valid_to"
VERSION_COLUMN = "_sf_version"  # Id@SystemModstamp: a version's identity, what scd2 compares
FORMULA_FIELDS = ("exclude", "include")  # formula fields change without SystemModstamp moving
OBJECT_SETTINGS = {
    "name",
    "cursor_field",
    "include_deleted",
    "exclude_fields",
    "weight",
    "owners",
    "tags",
    "hard_deletes",
    "formula_fields",
    "route",
    "filter",
    "deletes",
    "hash_fields",
    "history",
}


@dataclass(frozen=True)
class CatalogObject:
    name: str
    cursor_field: str | None = "SystemModstamp"
    include_deleted: bool = True
    exclude_fields: tuple[str, ...] = ()
    weight: float = 1.0
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    hard_deletes: str = "delete"
    formula_fields: str = "exclude"
    route: str = "bulk"  # bulk: Bulk API 2.0 query jobs; rest: REST queryAll pages
    kind: str = "standard"  # the UI group: standard, custom, history, share, feed, external...
    filter: str | None = None  # a SOQL condition every query of the object carries
    deletes: str = "remove"  # remove | flag: a deleted record's row is removed, or kept with _sf_deleted set
    hash_fields: tuple[str, ...] = ()  # fields whose values are replaced by a keyed hash (HMAC-SHA256)
    history: bool = False  # every version of a record, valid from/to (dlt's scd2), instead of the latest only

    @property
    def inactive_column(self) -> str | None:
        """The column whose value marks a row that is not a live record now: a closed version (history), a kept
        deleted row (``deletes: flag``, ``hard_deletes: flag``). None: every row is a live record."""
        if self.history:
            return VALID_TO_COLUMN
        if self.deletes == "flag":
            return DELETED_AT_COLUMN
        return HARD_DELETED_COLUMN if self.hard_deletes == "flag" else None


@dataclass(frozen=True)
class Catalog:
    objects: tuple[CatalogObject, ...]
    partition_start: date
    partition_granularity: str = "monthly"
    skipped: tuple[tuple[str, str], ...] = ()  # (object, reason) for what discovery found and does not load

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def get(self, name: str) -> CatalogObject:
        for o in self.objects:
            if o.name.lower() == name.lower():
                return o
        for skipped, reason in self.skipped:
            if skipped.lower() == name.lower():
                raise CatalogError(f"object {skipped!r} is not loaded: discovery skipped it: {reason}")
        raise CatalogError(f"object {name!r} is not in the catalog (known: {', '.join(self.names)})")


def _patterns(raw: dict, key: str, path: Path) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{path}: {key} must be a list of object names or patterns (Account, *History)")
    return [v.lower() for v in value]


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p) for p in patterns)


def _parse_object(
    entry: dict | str, defaults: dict, path: Path, found: DiscoveredObject | None = None
) -> CatalogObject:
    """One object's settings: the override entry's, else what discovery found, else the defaults."""
    if isinstance(entry, str):
        entry = {"name": entry}
    name = entry.get("name")
    where = f"{path}: object {name!r}"
    if unknown := set(entry) - OBJECT_SETTINGS - {"primary_key"}:  # an old setting: refused below unless Id
        raise CatalogError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    try:
        check_identifier(name, "object name")
        cursor = entry.get("cursor_field", found.cursor_field if found else "SystemModstamp")
        cursor = None if cursor in (None, "none", "None", False) else check_identifier(cursor, "cursor_field")
        excluded = tuple(check_identifier(f, "exclude_fields entry") for f in entry.get("exclude_fields", []))
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    if entry.get("primary_key", "Id") != "Id":
        # every sObject's record key is Id; a merge on another field could keep two versions of one record
        raise CatalogError(
            f"{where}: primary_key {entry['primary_key']!r}: the key is always Id (the merge, the deletes and the "
            "Id sweep use it); remove the setting"
        )
    route = str(entry.get("route", found.route if found else "bulk"))
    if route not in ROUTES:
        raise CatalogError(f"{where}: route must be one of {ROUTES}, got {route!r}")
    where_clause = entry.get("filter")
    if where_clause is not None and (
        not isinstance(where_clause, str) or not where_clause.strip() or "\n" in where_clause
    ):
        raise CatalogError(f"{where}: filter must be one line of SOQL conditions, e.g. ParentId = '001...'")
    policies = _policies(entry, defaults, where, cursor)
    return CatalogObject(
        name=found.name if found else name,
        cursor_field=cursor,
        include_deleted=bool(entry.get("include_deleted", True)),
        exclude_fields=excluded,
        weight=float(entry.get("weight", 1.0)),
        owners=tuple(entry.get("owners", defaults.get("owners", []))),
        tags={str(k): str(v) for k, v in (entry.get("tags") or {}).items()},
        route=route,
        kind=found.kind if found else object_kind(name),
        filter=where_clause.strip() if where_clause else None,
        **policies,
    )


def _policies(entry: dict, defaults: dict, where: str, cursor: str | None) -> dict:
    """The object's delete, formula, history and hashing policies, checked against each other."""
    history = entry.get("history", False)
    if not isinstance(history, bool):
        raise CatalogError(f"{where}: history must be true or false, got {history!r}")
    choices = {}
    for setting, allowed in (("deletes", DELETES), ("hard_deletes", HARD_DELETES), ("formula_fields", FORMULA_FIELDS)):
        flags = choices.get("deletes") == "flag" or history
        default = "flag" if setting == "hard_deletes" and flags else allowed[0]
        choices[setting] = str(entry.get(setting, defaults.get(setting, default)))
        if choices[setting] not in allowed:
            raise CatalogError(f"{where}: {setting} must be one of {allowed}, got {choices[setting]!r}")
    if choices["deletes"] == "flag" and choices["hard_deletes"] != "flag":
        raise CatalogError(f"{where}: deletes: flag keeps hard-deleted rows too; remove hard_deletes: delete")
    if history and (choices["deletes"] == "flag" or choices["hard_deletes"] != "flag"):
        raise CatalogError(
            f"{where}: history: true closes a deleted record's version (soft or hard) and never removes a row; "
            "remove deletes and hard_deletes"
        )
    hashed = entry.get("hash_fields", [])
    if not isinstance(hashed, list):
        raise CatalogError(f"{where}: hash_fields must be a list of field names, e.g. [Email, Phone]")
    try:
        hash_fields = tuple(check_identifier(str(f), "hash_fields entry") for f in hashed)
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from exc
    for keyed in ("Id", cursor, "IsDeleted"):
        if keyed and keyed.lower() in {f.lower() for f in hash_fields}:
            raise CatalogError(f"{where}: hash_fields cannot hold {keyed}: merges, windows and deletes read it")
    return {**choices, "history": history, "hash_fields": hash_fields}


def _overlay(raw: dict, defaults: dict, path: Path, discovered_path: Path) -> tuple[list[CatalogObject], list]:
    """The discovered objects, filtered by include/exclude and tuned by the override entries."""
    discovery = read_discovery(discovered_path)
    include, exclude = _patterns(raw, "include", path), _patterns(raw, "exclude", path)
    overrides = {}
    for entry in raw.get("objects") or []:
        entry = {"name": entry} if isinstance(entry, str) else entry
        name = str(entry.get("name", ""))
        if name.lower() in overrides:
            raise CatalogError(f"{path}: object {name!r} is listed twice")
        if discovery.get(name) is None:
            raise CatalogError(
                f"{path}: object {name!r} is not in the discovered catalog {discovered_path} "
                "(not in the org, or discovery is older than the object: run `sf-pipeline discover` again)"
            )
        overrides[name.lower()] = entry
    objects, skipped = [], []
    for found in discovery.objects:
        entry = overrides.get(found.name.lower(), {"name": found.name})
        if (include and not _matches(found.name, include)) or _matches(found.name, exclude):
            continue
        if found.reason == FILTER_REASON and entry.get("filter"):
            found = replace(found, reason=None)
        if found.reason is not None:
            skipped.append((found.name, found.reason))
            continue
        objects.append(_parse_object(entry, defaults, path, found))
    return objects, skipped


def load_catalog(path: Path | str | None = None, discovered: Path | str | None = None) -> Catalog:
    """The catalog: the hand-written file (``path``, ``SF_PIPELINE_CATALOG``, or the packaged one) over the
    discovered one (``discovered``, ``SF_PIPELINE_DISCOVERED_CATALOG``, or none)."""
    path = Path(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)
    discovered = discovered or os.environ.get(DISCOVERED_ENV) or None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read the object catalog {path}: {exc}") from exc
    defaults = raw.get("defaults", {})
    granularity = defaults.get("partition_granularity", "monthly")
    if granularity not in GRANULARITIES:
        raise CatalogError(f"{path}: partition_granularity must be one of {GRANULARITIES}, got {granularity!r}")
    try:
        start = date.fromisoformat(str(defaults.get("partition_start", "2024-01-01")))
    except ValueError as exc:
        raise CatalogError(f"{path}: partition_start is not a date: {exc}") from exc
    if discovered:
        objects, skipped = _overlay(raw, defaults, path, Path(discovered))
    else:
        objects, skipped, seen = [], [], set()
        for entry in raw.get("objects", []):
            obj = _parse_object(entry, defaults, path)
            if obj.name.lower() in seen:
                raise CatalogError(f"{path}: object {obj.name!r} is listed twice")
            seen.add(obj.name.lower())
            objects.append(obj)
    if not objects:
        raise CatalogError(f"{path}: the catalog lists no objects" + (f" (over {discovered})" if discovered else ""))
    return Catalog(tuple(objects), start, granularity, tuple(skipped))
