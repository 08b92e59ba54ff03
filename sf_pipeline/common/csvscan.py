"""Quote-aware record boundaries in CSV byte streams, without parsing fields.

A newline ends a record only outside quotes. With RFC 4180 quoting (a quote inside a value is
doubled) a position is inside a quoted field exactly when an odd number of quote bytes precede it,
so the parity of quotes between newlines is enough: no field is ever split or decoded, and a block is
scanned by a few C-level bytes operations, not a Python loop over its lines.
"""

from __future__ import annotations

QUOTE = b'"'
NL = b"\n"
_NOT_QUOTE_OR_NL = bytes(b for b in range(256) if b not in (QUOTE[0], NL[0]))


class RecordScanner:
    """Tracks quote state across blocks fed in order; counts and locates record ends."""

    __slots__ = ("inside", "records", "offset", "_at_record_end")

    def __init__(self) -> None:
        self.inside = False  # is the stream position after the last fed byte inside quotes?
        self.records = 0  # record terminators seen so far
        self.offset = 0  # bytes fed so far
        self._at_record_end = True  # did the last fed byte end a record (or nothing was fed)?

    def feed(self, block: bytes) -> int:
        """Consume ``block``; return the number of record terminators in it."""
        if not block:
            return 0
        inside = self.inside
        # Keep only quotes and newlines (one C pass), drop adjacent quote pairs (a run of quotes flips
        # the state only by its parity), and what is left is newlines separated by single quotes, each
        # flipping the state: the newlines in the even parts (odd when starting inside) end records.
        marks = block.translate(None, _NOT_QUOTE_OR_NL).replace(QUOTE + QUOTE, b"")
        parts = marks.split(QUOTE)
        found = sum(map(len, parts[1 if inside else 0 :: 2]))
        if len(parts) % 2 == 0:
            inside = not inside
        self.inside = inside
        self.records += found
        self.offset += len(block)
        self._at_record_end = block.endswith(NL) and not inside
        return found

    def first_end(self, block: bytes, start: int = 0) -> int:
        """Offset just past the first record terminator in ``block`` at or after ``start``, given the
        quote state at ``start``; -1 if none. Does not change the scanner's state."""
        inside = self.inside
        pos = start
        while True:
            nl = block.find(NL, pos)
            if nl < 0:
                return -1
            if block.count(QUOTE, pos, nl) & 1:
                inside = not inside
            if not inside:
                return nl + 1
            pos = nl + 1

    @property
    def complete_records(self) -> int:
        """Records including a final one that lacks its terminating newline."""
        return self.records + (0 if self._at_record_end or self.inside else 1)
