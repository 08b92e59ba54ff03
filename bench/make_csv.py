"""Salesforce-style CSV of a given size: the emulator's Account rows (45 columns, every value quoted,
embedded newlines, doubled quotes, non-ASCII), with the header, plus its describe as JSON.

Usage: python bench/make_csv.py OUT.csv --mb 1024
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sf_pipeline.emulator.org import Org
from sf_pipeline.emulator.results import base_fields, header_line


def make_csv(out: Path, mb: int, seed: int = 7) -> Path:
    """Write ~``mb`` MB of Account rows to ``out`` (cached: an existing file of that size is kept)."""
    describe_path = out.with_suffix(".describe.json")
    if out.exists() and describe_path.exists() and out.stat().st_size >= mb * 1e6 * 0.98:
        return describe_path
    org = Org(seed=seed, rows={"Account": 10**8})
    obj = org.objects["Account"]
    fields = base_fields(obj)
    target = mb * 1_000_000
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb", buffering=1 << 20) as f:
        written = f.write(header_line(fields, ",", "\n"))
        i = 0
        while written < target:
            batch = b"".join((",".join(obj.quoted_row(fields, k)) + "\n").encode() for k in range(i, i + 2000))
            written += f.write(batch)
            i += 2000
    describe = obj.describe()
    describe["fields"] = [f for f in describe["fields"] if f["type"] not in ("address", "location", "base64")]
    describe_path.write_text(json.dumps(describe))
    return describe_path


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=int, default=1024)
    args = ap.parse_args()
    print(make_csv(args.out, args.mb))
