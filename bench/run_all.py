"""Runs every bench script in turn, each in its own process, and prints their tables.

Usage: python bench/run_all.py [--quick]   (--quick: small sizes, minutes instead of an hour)
Figures go to bench/README.md by hand, with the date and the machine; see that file for the latest.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# script -> (full arguments, quick arguments)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "extract_bench.py": (["--rows", "1000000"], ["--rows", "100000"]),
    "load_bench.py": (["--mb", "1024"], ["--mb", "128"]),
    "dlt_steps.py": (["--mb", "1024"], ["--mb", "128"]),
    "pod_bench.py": (["--mb", "1024", "--limit-mb", "320", "256"], ["--mb", "128", "--limit-mb", "256"]),
    "run_bench.py": (["--rows", "3800000", "--limit-mb", "384"], ["--rows", "200000", "--limit-mb", "384"]),
    "kill_bench.py": (["--kills", "10"], ["--kills", "2", "--rows", "20000"]),
    "freshness_bench.py": (
        ["--interval", "30", "--rounds", "3"],
        ["--interval", "10", "--rounds", "2", "--rows", "20000"],
    ),
    "sweep_bench.py": (["--rows", "5000000"], ["--rows", "500000"]),
    "history_bench.py": ([], ["--granularity", "monthly"]),
    "fixed_cost_bench.py": (["--objects", "6"], ["--objects", "3", "--profile", "loopback"]),
    "org_bench.py": (
        ["--objects", "300"],
        ["--objects", "30", "--scale", "0.01", "--edits", "10", "--idle-minutes", "1"],
    ),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(
        f"# sf_pipeline benchmarks, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        flush=True,
    )
    failed = []
    for script, (full, quick) in SCRIPTS.items():
        argv = quick if args.quick else full
        print(f"\n## {script} {' '.join(argv)}", flush=True)
        if script in ("pod_bench.py", "run_bench.py") and os.geteuid() != 0:
            print("skipped: needs root for the memory cgroup")
            continue
        started = time.monotonic()
        rc = subprocess.call([sys.executable, str(BENCH / script), *argv], cwd=BENCH.parent)
        print(f"({script}: exit {rc}, {time.monotonic() - started:.0f}s)", flush=True)
        if rc:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
