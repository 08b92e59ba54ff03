"""Split and load benchmarks: our path against pyarrow, DuckDB's read_csv and the naive dlt pipeline.

Usage: python bench/load_bench.py [--mb 1024] [--shapes short,long] [--repeat 3] [--objects 50]
Each shape is a file of make_csv.py (short: ~1 KB rows; long: a 4-16 KB Long Text Area in every row).
Every measurement runs in its own child process, so each peak RSS (ru_maxrss) is that step's alone, and
each ends with the DuckDB file closed (checkpointed): `ours` is `sf-pipeline load` (sized by the memory the
machine has, as with no setting), `duckdb` is DuckDB's own `read_csv` into a file database.
Medians over --repeat runs; ratios are computed from figures of this same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, median, table  # noqa: E402
from make_csv import SHAPES, make_csv  # noqa: E402

STEPS = {
    "split": """
from sf_pipeline.datapath.split import split_csv, SplitOptions
chunks = split_csv(SRC, WORK / "chunks")
rows = sum(c.rows for c in chunks)
for c in chunks: c.remove()
extra = {"chunks": len(chunks)}
""",
    "pyarrow": """
import pyarrow.csv as pacsv
from sf_pipeline.datapath.read import arrow_batches
rows = sum(b.num_rows for b in arrow_batches([SRC], FIELDS, "Account"))
extra = {}
""",
    "ours": """
import contextlib, io
from sf_pipeline.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["--log-level", "WARNING", "load", str(SRC), "--object", "Account", "--describe", str(DESCRIBE),
          "--duckdb", str(WORK / "ours.duckdb")])
line = out.getvalue()
rows = int(line.split("rows ")[1].split(",")[0])
extra = {"chunks": int(line.split("chunks ")[1].split(",")[0])}
""",
    "split+load": """
from sf_pipeline.datapath.split import split_csv
from sf_pipeline.datapath.load import ObjectLoader
from sf_pipeline.warehouse import duckdb_destination
chunks = split_csv(SRC, WORK / "chunks")
res = ObjectLoader("Account", duckdb_destination(WORK / "ours.duckdb")).load(chunks, FIELDS, mode="replace")
rows = res.rows
extra = {"chunks": res.chunks}
""",
    "duckdb": """
import duckdb
con = duckdb.connect(str(WORK / "duck.duckdb"))
con.execute(f"CREATE OR REPLACE TABLE account AS SELECT * FROM read_csv('{SRC}', header=true, quote='\\"', escape='\\"')")
rows = con.execute("SELECT count(*) FROM account").fetchone()[0]
con.close()
extra = {}
""",
    "duckdb-capped": """
import duckdb
from sf_pipeline.common.sizing import size_load
from sf_pipeline.warehouse import duckdb_config
sizes = size_load("account")
con = duckdb.connect(str(WORK / "duck.duckdb"), config=duckdb_config(sizes.duckdb_memory_limit, sizes.duckdb_threads))
con.execute(f"CREATE OR REPLACE TABLE account AS SELECT * FROM read_csv('{SRC}', header=true, quote='\\"', escape='\\"')")
rows = con.execute("SELECT count(*) FROM account").fetchone()[0]
con.close()
extra = {}
""",
    "naive": """
import csv, dlt, os, itertools
os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
with open(SRC, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    records = list(itertools.islice(reader, NAIVE_ROWS))
p = dlt.pipeline("naive", pipelines_dir=str(WORK / "naive"), destination=dlt.destinations.duckdb(str(WORK / "naive.duckdb")),
                 dataset_name="salesforce", progress=None)
import time
t0 = time.monotonic()
p.run(records, table_name="account", write_disposition="replace")
rows = len(records)
SIZE = sum(len(",".join(r.values())) + 1 for r in records)
extra = {}
""",
}

PRELUDE = """
import json, resource, sys, time
from pathlib import Path
SRC, WORK, DESCRIBE = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
FIELDS = json.loads(DESCRIBE.read_text())["fields"]
NAIVE_ROWS = int(sys.argv[4])
SIZE = SRC.stat().st_size
t = time.monotonic()
"""
EPILOGUE = """
s = time.monotonic() - t
print(json.dumps({"rows": rows, "seconds": s, "bytes": SIZE, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""

MANY = """
import gc, json, sys, tempfile
from pathlib import Path
from sf_testbed.emulator.org import Org
from sf_testbed.emulator.results import base_fields, header_line
from sf_pipeline.datapath.load import ObjectLoader
from sf_pipeline.warehouse import duckdb_destination
from sf_pipeline.common.memory import rss_mb
from sf_pipeline.datapath.split import Chunk
n = int(sys.argv[1]); work = Path(sys.argv[2])
obj = Org(seed=3, rows={"Account": 20000}).objects["Account"]
fields = base_fields(obj)
src = work / "obj.csv"
with open(src, "wb") as f:
    f.write(header_line(fields, ",", "\\n"))
    for i in range(20000):
        f.write((",".join(obj.quoted_row(fields, i)) + "\\n").encode())
describe = [f.describe() for f in fields]
dest = duckdb_destination(work / "many.duckdb")
after = []
for k in range(n):
    name = f"Obj{k:02d}__c"
    ObjectLoader(name, dest).load([Chunk([src], 20000, src.stat().st_size)], describe, mode="replace")
    gc.collect()
    after.append(rss_mb())
print(json.dumps(after))
"""


def run_step(step: str, src: Path, work: Path, describe: Path, naive_rows: int) -> dict:
    code = PRELUDE + STEPS[step] + EPILOGUE
    out = subprocess.run(
        [sys.executable, "-c", code, str(src), str(work), str(describe), str(naive_rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--shapes", default="short,long", help=f"files of make_csv.py: {', '.join(SHAPES)}")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--naive-rows", type=int, default=20_000, help="rows fed to the naive dict pipeline")
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--steps", default="split,pyarrow,duckdb,duckdb-capped,ours,split+load,naive")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="load-bench-", dir=OUT) as tmp:
        work = Path(tmp)
        for shape in args.shapes.split(","):
            src = OUT / f"{shape}-{args.mb}mb.csv"
            bench_file(src, make_csv(src, args.mb, shape=shape, crlf=True), work, args)
        if args.objects:
            many_objects(args.objects, work)


def bench_file(src: Path, describe: Path, work: Path, args: argparse.Namespace) -> None:
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for step in args.steps.split(","):
            results.setdefault(step, []).append(run_step(step, src, work, describe, args.naive_rows))
            for f in work.glob("*.duckdb*"):
                f.unlink()
    rows = []
    mbs = {}
    for step, runs in results.items():
        secs = median([r["seconds"] for r in runs])
        mb = runs[0]["bytes"] / 1e6
        mbs[step] = mb / secs
        row = [step, runs[0]["rows"], f"{mb:.0f}", secs, mb / secs, runs[0]["rows"] / secs]
        rows.append([*row, max(r["peak_mb"] for r in runs), runs[0].get("chunks", "")])
    print(f"input: {src.name}, {src.stat().st_size / 1e6:.0f} MB, medians of {args.repeat} runs")
    print(table(["step", "rows", "MB", "median s", "MB/s", "rows/s", "max peak RSS MB", "chunks"], rows))
    ratios = [
        ("ours", "duckdb", "ours (sf-pipeline load) / duckdb read_csv into a file"),
        ("ours", "duckdb-capped", "ours / duckdb read_csv with our DuckDB settings"),
        ("split+load", "duckdb", "split+load (chunk files) / duckdb read_csv"),
        ("split", "pyarrow", "split / pyarrow streaming read"),
    ]
    for a, b, label in ratios:
        if a in mbs and b in mbs:
            print(f"{label}: {mbs[a] / mbs[b]:.2f}")
    if "ours" in mbs and "naive" in mbs:
        print(f"ours / naive dict pipeline: {mbs['ours'] / mbs['naive']:.0f}x")


def many_objects(n: int, work: Path) -> None:
    out = subprocess.run([sys.executable, "-c", MANY, str(n), str(work)], check=True, capture_output=True, text=True)
    after = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"RSS after object 1: {after[0]:.0f} MB, after object {len(after)}: {after[-1]:.0f} MB "
        f"({(after[-1] / after[0] - 1) * 100:+.1f}%); every 10th: " + ", ".join(f"{a:.0f}" for a in after[::10])
    )


if __name__ == "__main__":
    main()
