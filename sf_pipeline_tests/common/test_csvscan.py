"""The record scanner against a byte-at-a-time reference on random streams cut into random blocks."""

from __future__ import annotations

import random

import pytest

from sf_pipeline.common.csvscan import RecordScanner

PIECES = [b'"', b'""', b'"""', b"\n", b"\r\n", b",", b"a", b'"\n"', b'""\n']


def reference(data: bytes) -> tuple[int, bool]:
    """Record terminators and the final inside-quotes state, one byte at a time."""
    inside, records = False, 0
    for byte in data:
        if byte == 0x22:
            inside = not inside
        elif byte == 0x0A and not inside:
            records += 1
    return records, inside


@pytest.mark.parametrize("seed", range(4))
def test_feed_matches_the_byte_reference_whatever_the_block_cuts(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2_000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randint(0, 5))))
        scanner, prev, found = RecordScanner(), 0, 0
        for cut in [*cuts, len(data)]:
            found += scanner.feed(data[prev:cut])
            prev = cut
        records, inside = reference(data)
        assert (found, scanner.records, scanner.inside, scanner.offset) == (records, records, inside, len(data)), data
        trailing = 1 if data and not inside and not data.endswith(b"\n") else 0
        assert scanner.complete_records == records + trailing, data


def test_a_block_inside_quotes_counts_only_after_the_closing_quote() -> None:
    scanner = RecordScanner()
    assert scanner.feed(b'"Id","Note"\n"1","a\n') == 1
    assert scanner.inside
    assert scanner.feed(b'b ""x""\n"\n"2",""\n') == 2
    assert not scanner.inside and scanner.complete_records == 3
