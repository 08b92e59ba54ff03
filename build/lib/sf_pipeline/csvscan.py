"""Quote-aware record boundaries in CSV byte streams, without parsing fields.

A newline ends a record only outside quotes. With RFC 4180 quoting (a quote inside a value is
doubled) a position is inside a quoted field exactly when an odd number of quote bytes precede it,
so counting quotes per line is enough: no field is ever split or decoded.
"""

from __future__ import annotations

QUOTE = b'"'
NL = b"\n"


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
        found = 0
        inside = self.inside
        if QUOTE not in block:
            if not inside:
                found = block.count(NL)
        else:
            lines = block.split(NL)
            last = len(lines) - 1
            odd = [k for k, line in enumerate(lines) if line.count(QUOTE) & 1]
            if not odd:
                found = 0 if inside else last
            else:
                # the state flips at each odd line; newline k (after line k) is a terminator iff
                # the state after line k is outside
                prev = 0
                for k in odd:
                    if not inside:
                        found += min(k, last) - prev
                    inside = not inside
                    prev = k
                if not inside:
                    found += last - prev
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
