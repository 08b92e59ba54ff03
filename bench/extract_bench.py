"""Extract throughput and client peak RSS: one big object from the emulator over loopback.

Usage: python bench/extract_bench.py [--rows 1000000] [--repeat 3]
Each extract runs in a fresh child process (so its peak RSS is its own); the emulator runs in another.
Prints MB/s and peak RSS per mode (gzip on/off, concurrency), medians over --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, start_emulator, table  # noqa: E402

CHILD = """
import json, sys, time, resource
from pathlib import Path
from sf_pipeline.salesforce import ExtractOptions, SalesforceClient, SalesforceSettings
from sf_pipeline.salesforce.bulk import extract_object
port, out, gzip, conc = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
settings = SalesforceSettings(login_url=f"http://127.0.0.1:{port}")
with SalesforceClient(settings, max_connections=conc + 2) as c:
    c.describe("Account")
    t = time.monotonic()
    r, _ = extract_object(c, "Account", Path(out), options=ExtractOptions(gzip=gzip, concurrency=conc))
    s = time.monotonic() - t
print(json.dumps({"records": r.records, "bytes": r.bytes, "seconds": s, "files": len(r.files),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--port", type=int, default=8799)
    args = ap.parse_args()
    emu = start_emulator(args.port, f"Account={args.rows}")
    work = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    rows = []
    try:
        # warm-up: the emulator generates and caches the object once per seed
        subprocess.run(
            [sys.executable, "-c", CHILD, str(args.port), str(work / "warm"), "0", "4"], check=True, capture_output=True
        )
        for gzip, conc in [(False, 1), (False, 4), (True, 4)]:
            runs = []
            for _ in range(args.repeat):
                shutil.rmtree(work / "out", ignore_errors=True)
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(args.port), str(work / "out"), "1" if gzip else "0", str(conc)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            mb = runs[0]["bytes"] / 1e6
            secs = median([r["seconds"] for r in runs])
            rows.append(
                [
                    "gzip" if gzip else "identity",
                    conc,
                    runs[0]["records"],
                    f"{mb:.0f}",
                    runs[0]["files"],
                    secs,
                    mb / secs,
                    max(r["peak_mb"] for r in runs),
                ]
            )
    finally:
        emu.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(table(["encoding", "connections", "records", "MB", "pages", "median s", "MB/s", "max peak RSS MB"], rows))


if __name__ == "__main__":
    main()
