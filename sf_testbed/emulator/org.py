"""The emulator's synthetic org: its objects (``ObjectModel``) and deterministic, streaming row generation.

Row ``i`` of an object is a pure function of (seed, object, i): nothing is held in memory, and the
same seed always gives the same org. SystemModstamp grows with ``i`` so that a time window is a
contiguous run of rows; every 50th row (by a hash) is soft-deleted and only ``queryAll`` sees it.

An org has a decade of history, as real ones do: records were last modified from 2008 on, most of them
(``OLD_SHARE``) before 2024 and untouched since, the rest a recent tail up to late 2026; a third of the
recent tail was created years before it was last modified (values.py's CreatedDate).

On top of that generated history, records can be changed *now* (``apply_changes``: insert, update,
soft-delete, undelete, hard-delete), as users and integrations change a real org: a changed record leaves
its place in the generated rows and lives in a small overlay with SystemModstamp = now. Formula fields
(``calculated``) take values that move with the org's formula clock (``formula_shift``), never with
SystemModstamp, as in Salesforce where a formula is evaluated when it is read.

schemas.py: metadata; values.py: value generation; changes.py: records changed now.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .changes import LiveRecord, RecordChanges
from .schemas import (
    BASE62,
    DEFAULT_ROWS,
    ID_PREFIX,
    OBJECT_FIELDS,
    OBJECT_LABELS,
    FieldMeta,
    _f,
    default_label,
    salesforce_id,
)
from .values import ROW_FIELDS, LazyPools, iso_ms, quote, stride, value_pool

DEFAULT_START = datetime(2008, 1, 1, tzinfo=UTC)  # the org's first record: orgs from 2008-2010 are common
RECENT_START = datetime(2024, 1, 1, tzinfo=UTC)  # the old history ends here (the catalog's default partition_start)
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
OLD_SHARE = 0.7  # of each object's records last modified before RECENT_START


@dataclass
class ObjectModel(RecordChanges):
    """One sObject of the synthetic org: its fields, its size, and how to make row ``i``."""

    name: str
    fields: list[FieldMeta]
    rows: int
    seed: int
    start: datetime = DEFAULT_START
    recent: datetime = RECENT_START
    end: datetime = DEFAULT_END
    quoted_blanks: bool = False  # write nulls as "" instead of an empty field
    _pools: dict[str, list[str]] = field(default_factory=dict, repr=False)
    live: dict[int, LiveRecord] = field(default_factory=dict, repr=False)  # records changed or inserted now
    gone: set[int] = field(default_factory=set, repr=False)  # hard-deleted: in no query, not even queryAll
    formula_shift: int = 0  # the formula clock: each step changes every calculated field's values
    # how Salesforce treats the object (the long tail of an org: longtail.py)
    kind: str = "standard"
    prefix: str = ""
    queryable: bool = True  # describeGlobal's flag
    custom: bool = False
    bulk_refused: bool = False  # Bulk API 2.0 refuses the object at job creation (INVALIDENTITY)
    query_refused: bool = False  # no query of it is answered (INVALID_TYPE ... does not support query)
    filter_fields: tuple[str, ...] = ()  # a query must filter one of these with "=" (MALFORMED_QUERY otherwise)
    lazy_pools: bool = False  # build a field's values on first use (hundreds of objects start fast)

    def __post_init__(self) -> None:
        self._original_fields = list(self.fields)
        self._index_fields()
        self.prefix = self.prefix or ID_PREFIX.get(self.name, "a0Z")
        self.custom = self.custom or self.name.endswith("__c")
        self._start_ms = int(self.start.timestamp() * 1000)
        self._recent_ms = int(self.recent.timestamp() * 1000)
        self._end_ms = int(self.end.timestamp() * 1000)
        self._old_rows = int(self.rows * OLD_SHARE)
        self.metadata_changed = time.time()  # describe's If-Modified-Since compares with this
        self._make_pools()

    def _make_pools(self) -> None:
        if self.lazy_pools:
            self._pools = LazyPools(self)
            return
        rng = random.Random(f"{self.seed}:{self.name}")
        for f in self.fields:
            if f.bulk_queryable and f.name not in ROW_FIELDS:
                self._pools[f.name] = value_pool(f, rng, self.blank)

    def _index_fields(self) -> None:
        self.by_name = {f.name.lower(): f for f in self.fields}
        self.deletable = "isdeleted" in self.by_name
        # date fields (lower case) that grow with the row number, so that a window on them is a run of rows:
        # the modstamps; CreatedDate where the object has neither (History rows are never changed)
        stamps = {"systemmodstamp", "lastmodifieddate"} & self.by_name.keys()
        self.monotone_fields = stamps or ({"createddate"} & self.by_name.keys())

    def change_schema(
        self, add: list[dict] = (), remove: list[str] = (), retype: dict[str, dict] | None = None
    ) -> None:
        """What an admin does between two runs: add fields, remove them (or hide them from the integration
        user), change their type. Deterministic: a changed field's values depend only on the seed, the
        object, the field's name and its new type."""
        gone = {name.lower() for name in remove}
        fields = [f for f in self.fields if f.name.lower() not in gone]
        for name, spec in (retype or {}).items():
            i = next((k for k, f in enumerate(fields) if f.name.lower() == name.lower()), None)
            if i is None:
                raise KeyError(f"{self.name} has no field {name}")
            fields[i] = replace(fields[i], **spec)
            self._pools[fields[i].name] = self._field_pool(fields[i])
        for spec in add:
            added = _f(
                spec["name"], spec.get("type", "string"), **{k: v for k, v in spec.items() if k not in ("name", "type")}
            )
            fields.append(added)
            self._pools[added.name] = self._field_pool(added)
        self.fields = fields
        self._index_fields()
        self.metadata_changed = time.time()

    def reset_schema(self) -> None:
        if self.fields != self._original_fields:
            self.metadata_changed = time.time()
        self.fields = list(self._original_fields)
        self._index_fields()
        self._make_pools()

    def _field_pool(self, f: FieldMeta) -> list[str]:
        return value_pool(
            f, random.Random(f"{self.seed}:{self.name}:{f.name}:{f.type}:{f.precision}:{f.scale}"), self.blank
        )

    @property
    def schema_key(self) -> str:
        """Identifies the field list (names and types) and the formula clock, for the row cache."""
        key = f"-formulas{self.formula_shift}" if self.formula_shift else ""
        if self.fields == self._original_fields:
            return key
        text = ";".join(f"{f.name}:{f.type}:{f.precision}:{f.scale}" for f in self.fields)
        return "-schema" + hashlib.sha1(text.encode()).hexdigest()[:10] + key

    @property
    def blank(self) -> str:
        return '""' if self.quoted_blanks else ""

    # -- time and deletion model ------------------------------------------------------------------
    def modstamp_ms(self, i: int) -> int:
        """SystemModstamp of row i in epoch milliseconds; non-decreasing in i: the first ``OLD_SHARE`` of the
        rows spread over the old history (``start`` to ``recent``), the rest over the recent tail."""
        old = self._old_rows
        if i < old:
            return self._start_ms + ((self._recent_ms - self._start_ms) * i) // old
        return self._recent_ms + ((self._end_ms - self._recent_ms) * (i - old)) // max(self.rows - old, 1)

    def created_ms(self, i: int) -> int:
        """CreatedDate of row i: up to 90 days before its last modification, but a third of the recent tail
        was created years before (from ``start`` on): old records edited lately. Where CreatedDate is the
        object's one clock (History rows are never changed), it is the modstamp itself."""
        modified = self.modstamp_ms(i)
        if "createddate" in self.monotone_fields:
            return modified
        if i >= self._old_rows and (i * 2654435761 + self.seed) % 3 == 1:
            return self._start_ms + (i * 7919 * 86_400_000) % max(modified - self._start_ms, 1)
        return modified - (i * 7919 % 90) * 86_400_000

    def is_deleted(self, i: int) -> bool:
        return self.deletable and (i * 2654435761 + self.seed) % 50 == 7

    def first_row_at_or_after(self, ms: int) -> int:
        """Smallest i with modstamp_ms(i) >= ms (binary search over the monotone modstamp)."""
        lo, hi = 0, self.rows
        while lo < hi:
            mid = (lo + hi) // 2
            if self.modstamp_ms(mid) < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    # -- values ---------------------------------------------------------------------------------------
    def _pool_index(self, f: FieldMeta, i: int) -> int:
        shift = self.formula_shift * 7 if f.calculated else 0
        return (i * stride(f.name) + self.seed + shift) % len(self._pools[f.name])

    def generated_value(self, f: FieldMeta, i: int) -> str | None:
        """The unquoted value of field ``f`` in generated row ``i`` (None for null)."""
        if f.name in ROW_FIELDS:
            return ROW_FIELDS[f.name](self, i)
        if f.type == "base64":  # REST answers a base64 field with the blob's URL, never its bytes
            return f"/services/data/v62.0/sobjects/{self.name}/{salesforce_id(self.prefix, i + 1)}/{f.name}"
        if not f.bulk_queryable:  # a compound field: REST sends an object, not modelled here
            return None
        quoted = self._pools[f.name][self._pool_index(f, i)]
        return None if quoted in ("", '""') else quoted[1:-1].replace('""', '"')

    def raw_value(self, f: FieldMeta, i: int) -> str | None:
        """The unquoted value of field ``f`` in row ``i`` as it stands now (None for null)."""
        record = self.live.get(i)
        if record is None:
            return self.generated_value(f, i)
        if f.calculated:
            return self.generated_value(f, i)
        if f.name in ("SystemModstamp", "LastModifiedDate"):
            return iso_ms(record.modstamp_ms)
        if f.name == "IsDeleted":
            return "true" if record.deleted else "false"
        return record.values.get(f.name)

    def generated_row(self, fields: list[FieldMeta], i: int) -> list[str]:
        """Generated row ``i`` as Salesforce-quoted CSV values for ``fields`` (what the row cache holds)."""
        pools = self._pools
        out = []
        for f in fields:
            getter = ROW_FIELDS.get(f.name)
            if getter is not None:
                out.append(quote(getter(self, i), self.blank))
            else:
                out.append(pools[f.name][self._pool_index(f, i)])
        return out

    def quoted_row(self, fields: list[FieldMeta], i: int) -> list[str]:
        """Row ``i`` as it stands now, as Salesforce-quoted CSV values for ``fields``."""
        if i not in self.live:
            return self.generated_row(fields, i)
        return [quote(self.raw_value(f, i), self.blank) for f in fields]

    def row_deleted(self, i: int) -> bool:
        record = self.live.get(i)
        return record.deleted if record is not None else self.is_deleted(i)

    def global_entry(self) -> dict:
        """The object's entry in describeGlobal (``GET sobjects``)."""
        return {
            "name": self.name,
            "label": OBJECT_LABELS.get(self.name, default_label(self.name)),
            "custom": self.custom,
            "customSetting": False,
            "deprecatedAndHidden": False,
            "queryable": self.queryable,
            "retrieveable": self.queryable,
            "replicateable": self.queryable and self.kind not in ("external", "change_event"),
            "keyPrefix": self.prefix,
        }

    def describe(self) -> dict:
        return {**self.global_entry(), "fields": [f.describe() for f in self.fields]}


@dataclass
class Org:
    """The whole synthetic org: a seed, row counts per object, and the models built from them."""

    seed: int = 42
    rows: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ROWS))
    scale: float = 1.0
    quoted_blanks: bool = False
    objects_total: int = len(OBJECT_FIELDS)  # more than the 8 demo objects: the long tail fills the rest

    def __post_init__(self) -> None:
        from .longtail import long_tail

        self.objects: dict[str, ObjectModel] = {}
        for name, fields in OBJECT_FIELDS.items():
            # an object given 0 rows stays empty (real orgs hold many); a scaled one keeps at least a record
            n = 0 if self.rows.get(name) == 0 else max(1, int(self.rows.get(name, DEFAULT_ROWS[name]) * self.scale))
            self.objects[name] = ObjectModel(name, fields, n, self.seed, quoted_blanks=self.quoted_blanks)
        extra = long_tail(max(0, self.objects_total - len(OBJECT_FIELDS)), self.seed, set(self.objects))
        for k, spec in enumerate(extra):
            self.objects[spec.name] = ObjectModel(
                spec.name,
                spec.fields,
                int(self.rows.get(spec.name, spec.rows) * self.scale),
                self.seed,
                quoted_blanks=self.quoted_blanks,
                kind=spec.kind,
                prefix="x" + BASE62[k // 62 % 62] + BASE62[k % 62],
                queryable=spec.queryable,
                custom=spec.custom,
                bulk_refused=spec.bulk_refused,
                query_refused=spec.query_refused,
                filter_fields=spec.filter_fields,
                lazy_pools=True,
            )
        self._lower = {name.lower(): model for name, model in self.objects.items()}

    def get(self, name: str) -> ObjectModel | None:
        return self._lower.get(name.lower())

    def iter_rows(self, obj: ObjectModel, fields: list[FieldMeta], start: int, stop: int) -> Iterator[list[str]]:
        for i in range(start, stop):
            yield obj.quoted_row(fields, i)
