"""Query results for the emulator: which rows a query selects, and their CSV bytes on disk.

Every object has a cached base file (all bulk-queryable fields in describe order, comma, LF, no header)
with a row-offset index, written once per seed. A job whose layout matches it is served straight from
that file (byte ranges, ``sendfile``); any other layout (a field subset, another delimiter or line
ending) gets its own file written when the job runs. Rows are always generated streaming.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

from .org import ObjectModel
from .schemas import FieldMeta
from .soql import Condition, Query, SoqlError, compare, epoch_ms
from .values import ROW_FIELDS

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
CACHE_VERSION = 6  # bumped whenever generated values change (6: a history from 2008, old records edited lately)
_cache_locks: dict[Path, threading.Lock] = {}
_cache_locks_guard = threading.Lock()


class RowFile:
    """A headerless CSV file plus an index of row start offsets (n + 1 int64s, memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idx_file = open(path.with_suffix(".idx"), "rb")
        size = os.fstat(self._idx_file.fileno()).st_size
        self._map = mmap.mmap(self._idx_file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self.rows = max(size // 8 - 1, 0)

    def offset(self, row: int) -> int:
        if self._map is None:
            return 0
        return struct.unpack_from("<q", self._map, row * 8)[0]

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._idx_file.close()


def write_rows(path: Path, rows, line_ending: str, delimiter: str) -> None:
    """Write rows (lists of quoted values) to ``path`` and its offset index, atomically."""
    tmp = path.with_suffix(".csv.tmp")
    idx_tmp = path.with_suffix(".idx.tmp")
    offset = 0
    with open(tmp, "wb", buffering=1 << 20) as out, open(idx_tmp, "wb", buffering=1 << 16) as idx:
        pack = struct.Struct("<q").pack
        idx.write(pack(0))
        batch: list[bytes] = []
        offsets: list[int] = []
        for values in rows:
            line = (delimiter.join(values) + line_ending).encode()
            offset += len(line)
            batch.append(line)
            offsets.append(offset)
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                idx.write(struct.pack(f"<{len(offsets)}q", *offsets))
                batch.clear()
                offsets.clear()
        out.write(b"".join(batch))
        if offsets:
            idx.write(struct.pack(f"<{len(offsets)}q", *offsets))
    os.replace(idx_tmp, path.with_suffix(".idx"))
    os.replace(tmp, path)


def base_fields(obj: ObjectModel) -> list[FieldMeta]:
    return [f for f in obj.fields if f.bulk_queryable]


def base_file(obj: ObjectModel, cache_dir: Path) -> RowFile:
    """The object's cached base file, generated on first use (once per seed and row count)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    blanks = "-quotedblanks" if obj.quoted_blanks else ""
    path = cache_dir / f"v{CACHE_VERSION}-seed{obj.seed}-{obj.name}-{obj.rows}{blanks}{obj.schema_key}.csv"
    with _cache_locks_guard:
        lock = _cache_locks.setdefault(path, threading.Lock())
    with lock:
        if not path.exists() or not path.with_suffix(".idx").exists():
            fields = base_fields(obj)
            write_rows(path, (obj.generated_row(fields, i) for i in range(obj.rows)), "\n", ",")
    return RowFile(path)


@dataclass
class Selection:
    """Rows a query selects, as runs of consecutive rows of a RowFile."""

    file: RowFile
    runs: list[tuple[int, int]]  # [start, stop) row numbers in ``file``
    header: bytes

    def __post_init__(self) -> None:
        self.cumulative = [0]
        for start, stop in self.runs:
            self.cumulative.append(self.cumulative[-1] + stop - start)

    @property
    def count(self) -> int:
        return self.cumulative[-1]

    def byte_ranges(self, first: int, n: int) -> list[tuple[int, int]]:
        """(offset, length) ranges for records [first, first + n) of the selection, merged."""
        out: list[tuple[int, int]] = []
        end = min(first + n, self.count)
        k = bisect_right(self.cumulative, first) - 1
        pos = first
        while pos < end and k < len(self.runs):
            start, stop = self.runs[k]
            row_lo = start + (pos - self.cumulative[k])
            row_hi = min(stop, start + (end - self.cumulative[k]))
            lo, hi = self.file.offset(row_lo), self.file.offset(row_hi)
            if out and out[-1][0] + out[-1][1] == lo:
                out[-1] = (out[-1][0], out[-1][1] + hi - lo)
            else:
                out.append((lo, hi - lo))
            pos += row_hi - row_lo
            k += 1
        return out

    def byte_count(self, first: int, n: int) -> int:
        return sum(length for _, length in self.byte_ranges(first, n))


GZIP_CACHE_MIN_BYTES = 8 << 20  # smaller pages compress in well under a second: not worth a file


def gzip_page_path(selection: Selection, ranges: list[tuple[int, int]]) -> Path | None:
    """Where the gzip of a page (the header, then ``ranges`` of the selection's file) is kept once
    compressed, next to the file it comes from; None for pages too small to be worth keeping."""
    if sum(length for _, length in ranges) < GZIP_CACHE_MIN_BYTES:
        return None
    key = hashlib.sha1(selection.header + repr(ranges).encode()).hexdigest()[:20]
    path = selection.file.path
    return path.parent / "gz" / f"{path.stem}-{key}.gz"


def resolve_fields(obj: ObjectModel, query: Query, bulk: bool) -> list[FieldMeta]:
    """The describe entries for the SELECT list, with Salesforce's errors for bad names."""
    fields: list[FieldMeta] = []
    for item in query.items:
        if item.field is None:
            continue
        f = obj.by_name.get(item.field.lower())
        if f is None:
            if "." in item.field:
                raise SoqlError("INVALID_FIELD", f"the emulator does not serve relationship fields: {item.field}")
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{item.field}' on entity '{obj.name}'. If you are attempting to use a custom "
                "field, be sure to append the '__c' after the custom field name.",
            )
        if bulk and f.type in ("address", "location"):
            raise SoqlError(
                "FUNCTIONALITY_NOT_ENABLED", f"Selecting compound data not supported in Bulk Query: {f.name}"
            )
        if bulk and f.type == "base64":
            raise SoqlError("INVALIDJOB", f"Bulk API does not support base64 fields: {f.name}")
        fields.append(f)
    return fields


def check_access(obj: ObjectModel, query: Query, bulk: bool) -> None:
    """What Salesforce refuses about the object itself, before any row: objects no query answers, Bulk API
    2.0's unsupported entities, and objects that need a filter on a key field."""
    if obj.query_refused:
        raise SoqlError("INVALID_TYPE", f"entity type {obj.name} does not support query")
    if bulk and obj.bulk_refused:
        raise SoqlError("INVALIDENTITY", f"Entity '{obj.name}' is not supported by the Bulk API.")
    keys = {k.lower() for k in obj.filter_fields}
    if keys and not any(c.field.lower() in keys and c.op == "=" for c in query.conditions):
        raise SoqlError(
            "MALFORMED_QUERY",
            f"Implementation restriction: {obj.name} requires a filter by a single Id on "
            f"{' or '.join(obj.filter_fields)} using the equals operator",
        )


def validate_bulk(query: Query) -> None:
    if query.is_aggregate:
        raise SoqlError("INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0 query jobs")
    if query.offset is not None:
        raise SoqlError("INVALIDJOB", "OFFSET is not supported by Bulk API 2.0 query jobs")
    if query.has_typeof:
        raise SoqlError("INVALIDJOB", "TYPEOF is not supported by Bulk API 2.0 query jobs")
    if query.has_subquery:
        raise SoqlError("INVALIDJOB", "Parent-to-child subqueries are not supported by Bulk API 2.0 query jobs")


def _typed(f: FieldMeta, raw: str | None, cond: Condition) -> object:
    if raw is None:
        return None
    if cond.kind == "datetime":
        return epoch_ms(raw)
    if cond.kind == "number":
        return float(raw)
    if cond.kind == "bool":
        return raw == "true"
    return raw


def select_rows(obj: ObjectModel, query: Query, include_deleted: bool) -> list[tuple[int, int]]:
    """Runs of row numbers that satisfy the query's WHERE clause (and deletion rule): generated rows first,
    then records changed now, each a run of one."""
    base = _select_generated(obj, query, include_deleted)
    live = [(i, i + 1) for i in _select_live(obj, query, include_deleted)]
    return _truncate(base + live, query.limit)


def _select_generated(obj: ObjectModel, query: Query, include_deleted: bool) -> list[tuple[int, int]]:
    lo, hi = 0, obj.rows
    residual: list[Condition] = []
    for cond in query.conditions:
        f = obj.by_name.get(cond.field.lower())
        if f is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{cond.field}' on entity '{obj.name}'.")
        if cond.field.lower() in obj.monotone_fields and cond.kind == "datetime" and cond.op in ("<", "<=", ">", ">="):
            ms = int(cond.value)  # type: ignore[arg-type]
            if cond.op == ">":
                lo = max(lo, obj.first_row_at_or_after(ms + 1))
            elif cond.op == ">=":
                lo = max(lo, obj.first_row_at_or_after(ms))
            elif cond.op == "<":
                hi = min(hi, obj.first_row_at_or_after(ms))
            else:
                hi = min(hi, obj.first_row_at_or_after(ms + 1))
        else:
            residual.append(cond)
    checks = [(obj.by_name[c.field.lower()], c) for c in residual]
    if include_deleted and not checks:
        runs = [(lo, hi)] if hi > lo else []
    else:
        runs = []
        run_start = None
        for i in range(lo, hi):
            ok = include_deleted or not obj.is_deleted(i)
            for f, cond in checks if ok else ():
                if not compare(_typed(f, obj.generated_value(f, i), cond), cond.op, cond.value):
                    ok = False
                    break
            if ok and run_start is None:
                run_start = i
            elif not ok and run_start is not None:
                runs.append((run_start, i))
                run_start = None
        if run_start is not None:
            runs.append((run_start, hi))
    return _without(runs, sorted(obj.changed))


def _select_live(obj: ObjectModel, query: Query, include_deleted: bool) -> list[int]:
    """Records changed now that the query selects, oldest change first."""
    out = []
    for i, record in sorted(obj.live.items(), key=lambda item: (item[1].modstamp_ms, item[0])):
        if record.deleted and not include_deleted:
            continue
        for cond in query.conditions:
            f = obj.by_name[cond.field.lower()]
            if not compare(_typed(f, obj.raw_value(f, i), cond), cond.op, cond.value):
                break
        else:
            out.append(i)
    return out


def _without(runs: list[tuple[int, int]], rows: list[int]) -> list[tuple[int, int]]:
    """``runs`` with the (sorted) row numbers ``rows`` taken out."""
    if not rows:
        return runs
    out = []
    for start, stop in runs:
        pos = start
        for i in rows[bisect_left(rows, start) : bisect_left(rows, stop)]:
            if i > pos:
                out.append((pos, i))
            pos = i + 1
        if pos < stop:
            out.append((pos, stop))
    return out


def _truncate(runs: list[tuple[int, int]], limit: int | None) -> list[tuple[int, int]]:
    if limit is None:
        return runs
    out: list[tuple[int, int]] = []
    for start, stop in runs:
        if limit <= 0:
            break
        out.append((start, min(stop, start + limit)))
        limit -= out[-1][1] - start
    return out


def header_line(fields: list[FieldMeta], delimiter: str, line_ending: str) -> bytes:
    return (delimiter.join(f'"{f.name}"' for f in fields) + line_ending).encode()


def materialize(
    obj: ObjectModel,
    query: Query,
    fields: list[FieldMeta],
    include_deleted: bool,
    delimiter_name: str,
    line_ending_name: str,
    cache_dir: Path,
    job_path: Path,
) -> Selection:
    """Run a query: the selected rows, served from the base file or from a job file written now."""
    delimiter = DELIMITERS[delimiter_name]
    line_ending = LINE_ENDINGS[line_ending_name]
    runs = select_rows(obj, query, include_deleted)
    header = header_line(fields, delimiter, line_ending)
    generated_only = all(stop <= obj.rows and start not in obj.live for start, stop in runs)
    if generated_only and fields == base_fields(obj) and delimiter == "," and line_ending == "\n":
        return Selection(base_file(obj, cache_dir), runs, header)

    def rows():
        for start, stop in runs:
            for i in range(start, stop):
                yield obj.quoted_row(fields, i)

    job_path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(job_path, rows(), line_ending, delimiter)
    total = sum(stop - start for start, stop in runs)
    return Selection(RowFile(job_path), [(0, total)] if total else [], header)


def value_rows(obj: ObjectModel, fields: list[FieldMeta], runs: list[tuple[int, int]], first: int, n: int):
    """Raw (unquoted) values for records [first, first + n) of the runs: the REST query's records."""
    seen = 0
    for start, stop in runs:
        size = stop - start
        if seen + size <= first:
            seen += size
            continue
        begin = start + max(0, first - seen)
        for i in range(begin, stop):
            if n <= 0:
                return
            yield {f.name: obj.raw_value(f, i) for f in fields}
            n -= 1
        seen += size


__all__ = [
    "ROW_FIELDS",
    "Selection",
    "check_access",
    "materialize",
    "resolve_fields",
    "select_rows",
    "validate_bulk",
    "value_rows",
]
