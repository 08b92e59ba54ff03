"""What a load does to each record batch on its way to dlt, by the object's catalog policies: a deleted record
kept with a flag (``deletes: flag``), chosen fields replaced by a keyed hash (``hash_fields``), and each
record's version identity for history (``history: true``). Pure
functions over Arrow batches, run in the read-ahead thread; the key is used by ``hmac`` and nowhere else.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog import DELETED_AT_COLUMN, DELETED_COLUMN, VERSION_COLUMN, CatalogObject
from ..errors import CatalogError, SettingsError

HASH_KEY_VARIABLE = "SF_PIPELINE_HASH_KEY"
HASH_LENGTH = 64  # hex digits of a SHA-256 HMAC
DELETED_AT_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class RowPolicy:
    """The per-batch transforms of one object's load (none by default)."""

    keep_deleted: bool = False  # deleted records stay, with _sf_deleted / _sf_deleted_at
    deleted_at_from: str | None = None  # the field whose value is the deletion time (SystemModstamp)
    hash_fields: tuple[str, ...] = ()
    hash_key: bytes = field(default=b"", repr=False)
    version_of: tuple[str, str] | None = None  # history: (Id, SystemModstamp), joined as each row's version

    @classmethod
    def of(cls, entry: CatalogObject, hash_key: str | None, fields: list[str]) -> RowPolicy:
        """``entry``'s policy for a load that reads ``fields``; a hashed field the object does not have, or
        hashing without a key, is refused naming the object, the field or the setting."""
        if entry.hash_fields and not hash_key:
            raise SettingsError(f"[{entry.name}] hash_fields {list(entry.hash_fields)} need {HASH_KEY_VARIABLE} set")
        by_lower = {f.lower(): f for f in fields}
        missing = [f for f in entry.hash_fields if f.lower() not in by_lower]
        if missing:
            raise CatalogError(f"[{entry.name}] hash_fields {missing}: not fields the load reads (excluded, or absent)")
        modstamp = next((by_lower[f] for f in ("systemmodstamp", "lastmodifieddate") if f in by_lower), None)
        if entry.history and modstamp is None:
            raise CatalogError(
                f"[{entry.name}] history: true needs SystemModstamp or LastModifiedDate to tell versions"
            )
        return cls(
            version_of=(by_lower["id"], modstamp) if entry.history and modstamp else None,
            keep_deleted=entry.deletes == "flag",
            deleted_at_from=modstamp,
            hash_fields=tuple(by_lower[f.lower()] for f in entry.hash_fields),
            hash_key=(hash_key or "").encode(),
        )

    @property
    def active(self) -> bool:
        return self.keep_deleted or bool(self.hash_fields) or self.version_of is not None

    def apply(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if self.hash_fields:
                batch = hash_columns(batch, self.hash_fields, self.hash_key)
            if self.keep_deleted:
                batch = flag_deleted(batch, self.deleted_at_from)
            if self.version_of:
                batch = with_version(batch, *self.version_of)
            yield batch


def as_hashed(describe_field: dict) -> dict:
    """A field's describe entry as its hashed column is typed and labelled: text of 64 hex digits."""
    label = describe_field.get("label") or describe_field["name"]
    return {**describe_field, "type": "string", "length": HASH_LENGTH, "label": f"{label} (HMAC-SHA256, hex)"}


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of the UTF-8 value, hex: the same value hashes the same in every table (joins still work)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def hash_columns(batch: pa.RecordBatch, names: tuple[str, ...], key: bytes) -> pa.RecordBatch:
    """``batch`` with each named column's values replaced by their keyed hash (nulls stay null)."""
    columns = list(batch.columns)
    for name in names:
        at = batch.schema.get_field_index(name)
        if at < 0:
            continue
        values = batch.column(at).cast(pa.string()).to_pylist()
        columns[at] = pa.array([None if v is None else keyed_hash(v, key) for v in values], type=pa.string())
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if f.name in names else f for f in batch.schema], metadata=batch.schema.metadata
    )
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def with_version(batch: pa.RecordBatch, id_field: str, stamp_field: str) -> pa.RecordBatch:
    """``batch`` with ``_sf_version`` = ``Id@SystemModstamp``: one value per version of a record. Salesforce moves
    SystemModstamp whenever it changes a record, so a replayed window brings the same versions (nothing new) and
    a field added by schema drift does not make one (the hash of every value would); formula values, which
    change without it, make none either."""
    stamp = pc.cast(batch.column(stamp_field), pa.string())
    version = pc.binary_join_element_wise(batch.column(id_field), stamp, "@")
    return batch.append_column(VERSION_COLUMN, version)


def flag_deleted(batch: pa.RecordBatch, deleted_at_from: str | None) -> pa.RecordBatch:
    """``batch`` with ``_sf_deleted`` (Salesforce's IsDeleted; false where the object has none) and
    ``_sf_deleted_at`` (the record's ``deleted_at_from`` time where it is deleted, else null). A record
    undeleted in Salesforce comes back with IsDeleted false, and its merged row is live again."""
    at = batch.schema.get_field_index("IsDeleted")
    if at >= 0:
        deleted = pc.fill_null(batch.column(at), False)
    else:
        deleted = pa.array([False] * batch.num_rows, type=pa.bool_())
    when = batch.schema.get_field_index(deleted_at_from) if deleted_at_from else -1
    if when >= 0:
        stamp = batch.column(when).cast(DELETED_AT_TYPE)
        deleted_at = pc.if_else(deleted, stamp, pa.scalar(None, DELETED_AT_TYPE))
    else:
        deleted_at = pa.nulls(batch.num_rows, DELETED_AT_TYPE)
    return batch.append_column(DELETED_COLUMN, deleted).append_column(DELETED_AT_COLUMN, deleted_at)
