"""A small pod, for real: `sf-pipeline load` of a big CSV inside a memory cgroup (v1) with a hard limit.

Usage (root): python bench/pod_bench.py [--mb 1024] [--shape account|short|long] [--limit-mb 320 384 ...] [--merge]
--merge: the file is first loaded outside the cgroup, then merged into that full table inside it (every row
matches: DuckDB deletes and inserts them all), the heaviest thing a window load asks of DuckDB.
Over the limit the kernel SIGKILLs the process (exit 137), the field failure this project prevents.
No setting is given: the load sizes itself from the cgroup's limit. Prints, for each limit, the exit code,
seconds, the cgroup's peak usage (memory.max_usage_in_bytes, page cache included), the process's own peak
RSS and the sizes the load chose (its log line).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402
from make_csv import SHAPES, make_csv  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--shape", choices=SHAPES, default="short")
    ap.add_argument("--limit-mb", type=int, nargs="+", default=[320])
    ap.add_argument("--merge", action="store_true", help="merge into a full table (loaded first, outside the pod)")
    args = ap.parse_args()
    src = OUT / f"{args.shape}-{args.mb}mb.csv"
    describe = make_csv(src, args.mb, shape=args.shape, crlf=True)
    for limit_mb in args.limit_mb:
        run(src, describe, limit_mb, args.merge)


def run(src: Path, describe: Path, limit_mb: int, merge: bool = False) -> None:
    group = CGROUP_ROOT / f"sf_pipeline_pod_{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "sf_pipeline.cli",
                "--log-level",
                "INFO",
                "load",
                str(src),
                "--object",
                "Account",
                "--describe",
                str(describe),
                "--duckdb",
                f"{tmp}/pod.duckdb",
            ]
            if merge:  # the full table, loaded outside the pod first
                subprocess.run(cmd, check=True, capture_output=True)
                cmd += ["--mode", "merge"]
            started = time.monotonic()
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
            )
            out, _ = proc.communicate()
            seconds = time.monotonic() - started
        peak = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
        lines = out.strip().splitlines()
        sized = next(
            (line.split("] ", 1)[-1] for line in lines if "sf_pipeline.common.sizing" in line), "(no sizes logged)"
        )
        result = next((line for line in lines if " -> " in line), lines[-1] if lines else "")
        print(
            f"{src.name} ({src.stat().st_size / 1e6:.0f} MB){' merged into a full table' if merge else ''}, "
            f"limit {limit_mb} MiB: exit {proc.returncode}"
            f"{' (SIGKILL: OOM)' if proc.returncode in (137, -9) else ''}, {seconds:.1f}s, cgroup peak "
            f"{peak:.0f} MiB (page cache included)\n  sizes: {sized}\n  {result}"
        )
    finally:
        group.rmdir()


if __name__ == "__main__":
    main()
