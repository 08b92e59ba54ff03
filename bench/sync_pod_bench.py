"""`sf-pipeline sync` of one object from the org into DuckDB, inside a memory cgroup (v1) with a hard limit.

Usage (root): python bench/sync_pod_bench.py [--rows 200000] [--object Account] [--limit-mb 150 190 210 280 400]

The emulator (the org) runs in this process's child, outside the pod; each sync runs in a cgroup of its own with
no size setting (it sizes itself from the limit). Prints, per limit: the exit code (137: OOM-killed; 1 with a
"give the pod at least N MiB" line: refused by name), seconds, the cgroup's peak (page cache included), the
process's peak RSS, what it held before the load (the sizing line) and the records read. Issue 32's case: a
200,000-row Account sync in a 210 MiB pod (1.5x a peer connector's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
OUT.mkdir(parents=True, exist_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--object", default="Account")
    ap.add_argument("--limit-mb", type=int, nargs="+", default=[150, 190, 210, 280, 400])
    ap.add_argument(
        "--cold",
        action="store_true",
        help="drop the page cache before each run, so the code's pages are read into (and charged to) the pod",
    )
    args = ap.parse_args()
    from sf_testbed.emulator import EmulatorConfig, make_server

    server = make_server(EmulatorConfig(port=0, rows={args.object: args.rows}, cache_dir=OUT / "emulator-cache"))
    server.start_background()
    try:
        print("| limit MiB | exit | s | cgroup peak MiB | peak RSS MB | in use before the load MiB | records read |")
        print("|---|---|---|---|---|---|---|")
        for limit_mb in args.limit_mb:
            if args.cold:
                os.sync()
                Path("/proc/sys/vm/drop_caches").write_text("3")
            print(run(server.url, args.object, limit_mb), flush=True)
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, sobject: str, limit_mb: int) -> str:
    group = CGROUP_ROOT / f"sf_pipeline_sync_{os.getpid()}_{limit_mb}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SF_")}
            env |= {"SF_LOGIN_URL": url, "SF_PIPELINE_DUCKDB": f"{tmp}/pod.duckdb", "SF_PIPELINE_WORK_DIR": tmp}
            cmd = [sys.executable, "-m", "sf_pipeline.cli", "--log-level", "INFO", "sync", sobject, "--full-refresh"]
            started = time.monotonic()
            proc = subprocess.run(
                ["/usr/bin/time", "-f", "maxrss_kb=%M", *cmd],
                env=env,
                capture_output=True,
                text=True,
                preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
            )
            seconds = time.monotonic() - started
        peak = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
    finally:
        group.rmdir()
    rss = re.search(r"maxrss_kb=(\d+)", proc.stderr)
    held = re.search(r"(\d+) MiB in use", proc.stderr)
    records = "-"
    if proc.returncode == 0:
        records = str(json.loads(proc.stdout.strip().splitlines()[-1])["records_read"])
    elif "give the pod at least" in proc.stderr:
        records = "refused: " + proc.stderr.split("give the pod at least", 1)[1].split("\n")[0].strip()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    if "Command terminated by signal 9" in proc.stderr:
        code = 137
    return (
        f"| {limit_mb} | {code} | {seconds:.1f} | {peak:.0f} | {int(rss.group(1)) / 1024 if rss else 0:.0f} | "
        f"{held.group(1) if held else '-'} | {records} |"
    )


if __name__ == "__main__":
    main()
