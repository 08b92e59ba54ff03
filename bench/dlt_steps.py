"""Where the load's time goes: Arrow's typed CSV read alone, then dlt's extract, normalize and load steps
of one fresh pipeline over the same file (unsplit), into DuckDB, and the checkpoint when the connection
closes; DuckDB sized as a load on this machine sizes it.

Usage: python bench/dlt_steps.py [--mb 1024] [--shape short|long|account]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import dlt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402
from make_csv import SHAPES, make_csv  # noqa: E402

from sf_pipeline.common.memory import lean_arrow_allocator  # noqa: E402
from sf_pipeline.common.sizing import size_load  # noqa: E402
from sf_pipeline.datapath.dlt_settings import DltSettings  # noqa: E402
from sf_pipeline.datapath.read import arrow_batches  # noqa: E402
from sf_pipeline.warehouse import Warehouse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--shape", choices=SHAPES, default="short")
    args = ap.parse_args()
    src = OUT / f"{args.shape}-{args.mb}mb.csv"
    fields = json.loads(make_csv(src, args.mb, shape=args.shape, crlf=True).read_text())["fields"]
    fields = [f for f in fields if f["type"] not in ("address", "location", "base64")]
    lean_arrow_allocator()
    timings = {}
    t = time.monotonic()
    sum(b.num_rows for b in arrow_batches([src], fields, "Account"))
    timings["arrow typed CSV read"] = time.monotonic() - t
    DltSettings().configure()
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        work = Path(tmp)
        sizes = size_load("Account")
        with Warehouse(duckdb_path=work / "x.duckdb").sized(sizes).load_destination() as destination:
            pipeline = dlt.pipeline(
                "steps", pipelines_dir=str(work), destination=destination, dataset_name="salesforce", progress=None
            )
            resource = dlt.resource(
                arrow_batches([src], fields, "Account"), name="account", write_disposition="replace"
            )
            for step, call in (
                ("dlt extract (Arrow to Parquet)", lambda: pipeline.extract(resource, loader_file_format="parquet")),
                ("dlt normalize", pipeline.normalize),
                ("dlt load (DuckDB reads Parquet)", pipeline.load),
            ):
                t = time.monotonic()
                call()
                timings[step] = time.monotonic() - t
            t = time.monotonic()
        timings["DuckDB checkpoint (close)"] = time.monotonic() - t
    print(f"DuckDB {sizes.duckdb_memory_limit}, {sizes.duckdb_threads} thread(s)")
    print(f"input: {src.name}, {src.stat().st_size / 1e6:.0f} MB")
    for step, seconds in timings.items():
        print(f"{step:34s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
