"""The Id sweep of a big object: seconds and peak RSS of ``sf-pipeline sweep`` on an N-row object.

Usage: python bench/sweep_bench.py [--rows 5000000] [--hard-deletes 1000]

The emulator (its own process) serves Lead with ``--rows`` records; the DuckDB table is built directly
with the same Ids (setup, not measured); ``--hard-deletes`` of them are then hard-deleted in the org. The
sweep runs as the CLI in its own process: Bulk query of Id, dlt load of the Ids into a scratch table,
anti-join and delete inside DuckDB. Prints wall seconds, the process's peak RSS (ru_maxrss), the counts,
and whether the table then held exactly the org's Ids.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, start_emulator, table  # noqa: E402

from sf_testbed.emulator.org import Org  # noqa: E402
from sf_testbed.emulator.schemas import ID_PREFIX, salesforce_id  # noqa: E402
from sf_testbed.local_dagster import free_port  # noqa: E402


def build_table(db: Path, rows: int, scratch: Path) -> None:
    ids_csv = scratch / "ids.csv"
    prefix = ID_PREFIX["Lead"]
    model = Org(rows={"Lead": rows}).get("Lead")  # the org's live Ids: window loads leave out the recycle bin
    assert model is not None
    with open(ids_csv, "w") as out:
        out.write("id\n")
        for start in range(0, rows, 100_000):
            stop = min(rows, start + 100_000)
            out.write(
                "".join(salesforce_id(prefix, i + 1) + "\n" for i in range(start, stop) if not model.is_deleted(i))
            )
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS salesforce")
        con.execute(f"CREATE TABLE salesforce.lead AS SELECT id FROM read_csv('{ids_csv}', header=true)")
    ids_csv.unlink()


def run_sweep(env: dict[str, str]) -> tuple[float, float, dict]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sf_pipeline.cli", "--log-level", "WARNING", "sweep", "Lead"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sweep failed with exit {proc.returncode}: {output}")
    return seconds, usage.ru_maxrss / 1024, json.loads(output.strip().splitlines()[-1])


HEADER = ["rows", "hard deletes", "sweep s", "peak RSS MB", "sweep's own peak MB", "removed", "not loaded"]
HEADER += ["API calls", "exact"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--hard-deletes", type=int, default=1_000)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    db = scratch / "sf.duckdb"
    port = free_port()
    emulator = start_emulator(port, f"Lead={args.rows}")
    try:
        t0 = time.monotonic()
        build_table(db, args.rows, scratch)
        setup_s = time.monotonic() - t0
        model = Org(rows={"Lead": args.rows}).get("Lead")
        assert model is not None
        live = (i for i in random.Random(7).sample(range(args.rows), 2 * args.hard_deletes) if not model.is_deleted(i))
        doomed = [salesforce_id(ID_PREFIX["Lead"], i + 1) for i in itertools.islice(live, args.hard_deletes)]
        httpx.post(
            f"http://127.0.0.1:{port}/__emulator__/records", json={"object": "Lead", "hard_delete": doomed}, timeout=60
        ).raise_for_status()
        env = {
            **os.environ,
            "SF_LOGIN_URL": f"http://127.0.0.1:{port}",
            "SF_PIPELINE_DUCKDB": str(db),
            "SF_PIPELINE_WORK_DIR": str(scratch / "work"),
        }
        seconds, peak_mb, out = run_sweep(env)
        with duckdb.connect(str(db), read_only=True) as con:
            left = con.execute("SELECT count(*) FROM salesforce.lead").fetchone()[0]
            survivors = con.execute(
                "SELECT count(*) FROM salesforce.lead WHERE id IN (SELECT unnest(?))", [doomed]
            ).fetchone()[0]
        live_rows = sum(1 for i in range(args.rows) if not model.is_deleted(i))
        exact = left == live_rows - args.hard_deletes and survivors == 0 and out["gone_from_salesforce"] == len(doomed)
        print(f"setup (table of {args.rows:,} Ids built in DuckDB): {setup_s:.0f}s, not measured")
        row = [f"{args.rows:,}", args.hard_deletes, seconds, peak_mb, out["peak_rss_mb"]]
        row += [out["gone_from_salesforce"], out["missing_in_table"], out["api_calls"], "yes" if exact else "NO"]
        print(table(HEADER, [row]))
        return 0 if exact else 1
    finally:
        emulator.terminate()
        emulator.wait()


if __name__ == "__main__":
    sys.exit(main())
