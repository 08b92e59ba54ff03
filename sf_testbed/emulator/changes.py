"""Records changed now, as users and integrations change a real org: insert, update, soft-delete, undelete
and hard-delete. A changed record leaves its place in the generated rows and lives in a small overlay
(``live``) with SystemModstamp = now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schemas import FieldMeta, record_number, salesforce_id
from .values import ROW_FIELDS, iso_ms


@dataclass
class LiveRecord:
    """A record as changed now: its values (raw text by field name), when, and whether it is in the bin."""

    values: dict[str, str | None]
    modstamp_ms: int
    deleted: bool


class RecordChanges:
    """``ObjectModel``'s changes made now (its ``live`` overlay and ``gone`` set)."""

    name: str
    rows: int
    prefix: str
    deletable: bool
    fields: list[FieldMeta]
    by_name: dict[str, FieldMeta]
    live: dict[int, LiveRecord]
    gone: set[int]

    @property
    def changed(self) -> set[int]:
        """Generated rows that no longer stand as generated (changed now, or hard-deleted)."""
        return {i for i in self.live if i < self.rows} | self.gone

    def row_of(self, record_id: str) -> int:
        i = record_number(record_id) - 1
        if not record_id.startswith(self.prefix) or i < 0 or i >= self.next_row or i in self.gone:
            raise KeyError(f"{self.name} has no record {record_id}")
        return i

    @property
    def next_row(self) -> int:
        """The row number the next inserted record gets (a hard-deleted record's number is never reused)."""
        return max(self.rows, max(self.live.keys() | self.gone, default=-1) + 1)

    def apply_changes(self, changes: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Insert, update, soft-delete, undelete and hard-delete records now (SystemModstamp = ``now_ms``).

        ``changes``: ``insert`` (list of {field: value}), ``update`` (list of {"Id": ..., field: value}),
        ``delete``, ``undelete`` and ``hard_delete`` (lists of Ids). Values are given as Salesforce prints them
        (text; null for blank). Returns the inserted records' Ids."""
        stamp = iso_ms(now_ms)
        inserted = []
        for values in changes.get("insert", []):
            i = self.next_row
            record = {
                f.name: ROW_FIELDS[f.name](self, i) if f.name in ("Name", "CaseNumber", "Username") else None
                for f in self.fields
                if f.bulk_queryable
            }
            record.update(self._known(values))
            record.update(Id=salesforce_id(self.prefix, i + 1), CreatedDate=stamp)
            self.live[i] = LiveRecord(record, now_ms, deleted=False)
            inserted.append(record["Id"])
        for values in changes.get("update", []):
            i = self.row_of(values["Id"])
            current = self._current(i)
            if current.deleted:
                raise ValueError(f"{values['Id']} is in the recycle bin: undelete it first")
            self.live[i] = LiveRecord({**current.values, **self._known(values)}, now_ms, deleted=False)
        for key, deleted in (("delete", True), ("undelete", False)):
            for record_id in changes.get(key, []):
                i = self.row_of(record_id)
                if deleted and not self.deletable:
                    raise ValueError(f"{self.name} records cannot be deleted")
                self.live[i] = LiveRecord(self._current(i).values, now_ms, deleted=deleted)
        for record_id in changes.get("hard_delete", []):
            i = self.row_of(record_id)
            self.live.pop(i, None)
            self.gone.add(i)
        return {"inserted": inserted, "SystemModstamp": stamp}

    def _known(self, values: dict[str, Any]) -> dict[str, str | None]:
        out = {}
        for name, value in values.items():
            f = self.by_name.get(name.lower())
            if f is None:
                raise KeyError(f"{self.name} has no field {name}")
            if f.name != "Id":
                out[f.name] = None if value is None or value == "" else str(value)
        return out

    def _current(self, i: int) -> LiveRecord:
        if i in self.live:
            return self.live[i]
        values = {f.name: self.generated_value(f, i) for f in self.fields if f.bulk_queryable}
        return LiveRecord(values, self.modstamp_ms(i), deleted=self.is_deleted(i))
