"""The explicit object catalog (``catalog.yaml``): which objects exist for the pipeline, and how each
is loaded. It is the only list used to create, load or drop anything."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from .errors import CatalogError
from .salesforce.soql import check_identifier

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")
GRANULARITIES = ("daily", "weekly", "monthly")
HARD_DELETES = ("delete", "flag")  # what the Id sweep does to rows Salesforce no longer has
FORMULA_FIELDS = ("exclude", "include")  # formula fields change without SystemModstamp moving


@dataclass(frozen=True)
class CatalogObject:
    name: str
    cursor_field: str | None = "SystemModstamp"
    primary_key: str = "Id"
    include_deleted: bool = True
    exclude_fields: tuple[str, ...] = ()
    weight: float = 1.0
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    hard_deletes: str = "delete"
    formula_fields: str = "exclude"


@dataclass(frozen=True)
class Catalog:
    objects: tuple[CatalogObject, ...]
    partition_start: date
    partition_granularity: str = "daily"

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objects]

    def get(self, name: str) -> CatalogObject:
        for o in self.objects:
            if o.name.lower() == name.lower():
                return o
        raise CatalogError(f"object {name!r} is not in the catalog (known: {', '.join(self.names)})")


def load_catalog(path: Path | str | None = None) -> Catalog:
    path = Path(path or os.environ.get("SF_PIPELINE_CATALOG") or DEFAULT_CATALOG)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot read the object catalog {path}: {exc}") from exc
    defaults = raw.get("defaults", {})
    granularity = defaults.get("partition_granularity", "daily")
    if granularity not in GRANULARITIES:
        raise CatalogError(f"{path}: partition_granularity must be one of {GRANULARITIES}, got {granularity!r}")
    try:
        start = date.fromisoformat(str(defaults.get("partition_start", "2024-01-01")))
    except ValueError as exc:
        raise CatalogError(f"{path}: partition_start is not a date: {exc}") from exc
    objects, seen = [], set()
    for entry in raw.get("objects", []):
        if isinstance(entry, str):
            entry = {"name": entry}
        name = entry.get("name")
        where = f"{path}: object {name!r}"
        try:
            check_identifier(name, "object name")
            cursor = entry.get("cursor_field", "SystemModstamp")
            cursor = None if cursor in (None, "none", "None", False) else check_identifier(cursor, "cursor_field")
            excluded = tuple(check_identifier(f, "exclude_fields entry") for f in entry.get("exclude_fields", []))
            pk = check_identifier(entry.get("primary_key", "Id"), "primary_key")
        except ValueError as exc:
            raise CatalogError(f"{where}: {exc}") from exc
        if name.lower() in seen:
            raise CatalogError(f"{where} is listed twice")
        unknown = set(entry) - {
            "name",
            "cursor_field",
            "primary_key",
            "include_deleted",
            "exclude_fields",
            "weight",
            "owners",
            "tags",
            "hard_deletes",
            "formula_fields",
        }
        if unknown:
            raise CatalogError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        choices = {}
        for setting, allowed in (("hard_deletes", HARD_DELETES), ("formula_fields", FORMULA_FIELDS)):
            choices[setting] = str(entry.get(setting, defaults.get(setting, allowed[0])))
            if choices[setting] not in allowed:
                raise CatalogError(f"{where}: {setting} must be one of {allowed}, got {choices[setting]!r}")
        seen.add(name.lower())
        objects.append(
            CatalogObject(
                name=name,
                cursor_field=cursor,
                primary_key=pk,
                include_deleted=bool(entry.get("include_deleted", True)),
                exclude_fields=excluded,
                weight=float(entry.get("weight", 1.0)),
                owners=tuple(entry.get("owners", defaults.get("owners", []))),
                tags={str(k): str(v) for k, v in (entry.get("tags") or {}).items()},
                **choices,
            )
        )
    if not objects:
        raise CatalogError(f"{path}: the catalog lists no objects")
    return Catalog(tuple(objects), start, granularity)
