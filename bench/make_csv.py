"""Salesforce-style CSV of a given size: the emulator's Account rows (every value quoted, embedded
newlines, doubled quotes, non-ASCII), with the header, plus its describe as JSON.

Shapes: ``account`` (45 columns, about 1.3 KB a row: the org's own Account rows, one Long Text Area
filled to its 131,072 characters every 509 rows), ``short`` (the same rows without the Long Text Area,
about 1 KB a row) and ``long`` (the same rows with a Long Text Area of 4 to 16 KB in every row: lines,
commas and doubled quotes). Lines end CRLF when ``crlf`` (Salesforce's ``lineEnding=CRLF``).

Usage: python bench/make_csv.py OUT.csv --mb 1024 [--shape short] [--crlf]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from sf_testbed.emulator.org import Org
from sf_testbed.emulator.results import base_fields, header_line

SHAPES = ("account", "short", "long")


def _long_text(rng: random.Random) -> str:
    line = '{} "{}", {} and more\r\n'
    words = ("pipeline", "Salesforce", "quarterly", "renewal", "Zürich", "naïve", "contract", "escalation")
    out: list[str] = []
    size, target = 0, rng.randrange(4096, 16384)
    while size < target:
        piece = line.format(*rng.choices(words, k=3))
        out.append(piece)
        size += len(piece)
    return '"' + "".join(out).replace('"', '""') + '"'


def make_csv(out: Path, mb: int, seed: int = 7, shape: str = "account", crlf: bool = False) -> Path:
    """Write ~``mb`` MB of rows of ``shape`` to ``out`` (cached: an existing file of that size is kept)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    describe_path = out.with_suffix(".describe.json")
    if out.exists() and describe_path.exists() and out.stat().st_size >= mb * 1e6 * 0.98:
        return describe_path
    org = Org(seed=seed, rows={"Account": 10**8})
    obj = org.objects["Account"]
    fields = base_fields(obj)
    notes = [f for f in fields if f.name == "Notes__c"]
    if shape != "account":
        fields = [f for f in fields if f.name != "Notes__c"]
    header_fields = fields + notes if shape == "long" else fields
    end = "\r\n" if crlf else "\n"
    rng = random.Random(seed)
    target = mb * 1_000_000
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb", buffering=1 << 20) as f:
        written = f.write(header_line(header_fields, ",", end))
        i = 0
        while written < target:
            rows = []
            for k in range(i, i + 2000):
                values = obj.quoted_row(fields, k)
                if shape == "long":
                    values.append(_long_text(rng))
                rows.append(",".join(values) + end)
            written += f.write("".join(rows).encode())
            i += 2000
    describe = obj.describe()
    describe["fields"] = [f for f in describe["fields"] if f["type"] not in ("address", "location", "base64")]
    describe_path.write_text(json.dumps(describe))
    return describe_path


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--shape", choices=SHAPES, default="account")
    ap.add_argument("--crlf", action="store_true")
    args = ap.parse_args()
    print(make_csv(args.out, args.mb, shape=args.shape, crlf=args.crlf))
