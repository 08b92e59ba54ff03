"""The whole Dagster run of one big object inside a small pod, for real: `dagster asset materialize` of
Account over its full partition range, from the emulator (its own process, outside the pod) into DuckDB,
inside a memory cgroup (v1) with a hard limit. Needs root.

Usage: python bench/run_bench.py [--rows 3800000] [--limit-mb 384] [--alone]
No size setting is given: the run sizes itself from the cgroup's limit (its log line is printed).
Prints the exit code (137 = OOM-killed), seconds, the run's peak RSS (every process of the run summed,
sampled every 50 ms, and the largest single process), the cgroup's peak (page cache included) and the
split of the run's time between extract and load as the run reported it.

With --alone it first times the two halves on their own against the same org, in the same cgroup:
`sf-pipeline extract` (the object's pages to disk) and `sf-pipeline load` of those pages (merge), and
prints the overlap figure: the run's object step / max(extract alone, load alone).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, materialize_range_command, start_emulator, table  # noqa: E402

from sf_testbed.emulator.state import CACHE_ENV, DEFAULT_CACHE  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


class TreeSampler(threading.Thread):
    """Sums the RSS of every process in a cgroup every 50 ms and keeps the peaks."""

    def __init__(self, group: Path) -> None:
        super().__init__(daemon=True)
        self.group, self.peak_sum, self.peak_one, self.done = group, 0, 0, threading.Event()
        self.peaks: dict[str, int] = {}  # each process's command line -> its peak RSS

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            for pid in (self.group / "cgroup.procs").read_text().split():
                try:
                    process = psutil.Process(int(pid))
                    rss = process.memory_info().rss
                    name = " ".join(process.cmdline())[-90:]
                except psutil.Error:
                    continue
                total += rss
                self.peak_one = max(self.peak_one, rss)
                self.peaks[name] = max(self.peaks.get(name, 0), rss)
            self.peak_sum = max(self.peak_sum, total)
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_800_000, help="Account records in the org (~1.3 KB each)")
    ap.add_argument("--limit-mb", type=int, default=384)
    ap.add_argument("--port", type=int, default=8771)
    ap.add_argument("--alone", action="store_true", help="also time extract alone and load alone")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the memory cgroup")
    OUT.mkdir(parents=True, exist_ok=True)
    emulator = start_emulator(args.port, f"Account={args.rows}")
    group = CGROUP_ROOT / f"sf_pipeline_run_{os.getpid()}"
    group.mkdir()
    home = Path(tempfile.mkdtemp(dir=OUT, prefix="run-bench-"))
    try:
        (group / "memory.limit_in_bytes").write_text(str(args.limit_mb * 2**20))
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        sys.path.insert(0, str(ROOT))
        from sf_pipeline.catalog import load_catalog
        from sf_pipeline.defs.assets import partitions_def

        keys = partitions_def(load_catalog()).get_partition_keys()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "SF_LOGIN_URL": f"http://127.0.0.1:{args.port}",
            "SF_PIPELINE_DUCKDB": str(home / "run.duckdb"),
            "SF_PIPELINE_WORK_DIR": str(home / "work"),
        }
        alone = halves_alone(env, home, group) if args.alone else None
        packed = set(GZIP_DIR.glob("*.gz"))
        run = run_in_group(materialize_range_command("Account", keys[0], keys[-1]), env, group)
        (OUT / "run_bench.log").write_text(run.out)  # the run's own log, kept for a look
        print_run(run, args.limit_mb, group)
        print_details(run, packed, alone)
    finally:
        emulator.kill()
        group.rmdir()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Run:
    returncode: int
    out: str
    seconds: float
    sampler: TreeSampler


def run_in_group(cmd: list[str], env: dict[str, str], group: Path) -> Run:
    """The command inside the memory cgroup, its process tree sampled for RSS."""
    sampler = TreeSampler(group)
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
    )
    sampler.start()
    out, _ = proc.communicate()
    seconds = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    return Run(proc.returncode, out, seconds, sampler)


def print_run(run: Run, limit_mb: int, group: Path) -> None:
    cgroup_peak = int((group / "memory.max_usage_in_bytes").read_text()) / 2**20
    extracted = re.search(r"extracted (\d+) records in (\d+) file\(s\), ([\d.]+) MB, ([\d.]+)s", run.out)
    loaded = re.findall(r"chunk \d+(?:/\d+)? loaded: \d+ rows, [\d.]+ MB of CSV in ([\d.]+)s", run.out)
    row = [
        f"{int(extracted.group(1)):,}" if extracted else "?",
        f"{float(extracted.group(3)):,.0f}" if extracted else "?",
        limit_mb,
        f"{run.returncode}{' (OOM-killed)' if run.returncode in (137, -9) else ''}",
        round(run.seconds, 1),
        float(extracted.group(4)) if extracted else "?",
        round(sum(float(s) for s in loaded), 1),
        len(loaded),
        round(run.sampler.peak_sum / 2**20),
        round(run.sampler.peak_one / 2**20),
        round(cgroup_peak),
    ]
    header = ["records", "CSV MB", "limit MiB", "exit", "run s", "extract s", "chunk loads s", "chunks"]
    header += ["peak RSS MiB (all)", "largest process MiB", "cgroup peak MiB"]
    print(table(header, [row]))


def print_details(run: Run, packed: set[Path], alone: tuple[float, float] | None) -> None:
    for name, peak in sorted(run.sampler.peaks.items(), key=lambda item: -item[1]):
        print(f"process peak {peak / 2**20:6.0f} MiB: ...{name}")
    sized = next((line.split("] ", 1)[-1] for line in run.out.splitlines() if "] memory limit " in line), None)
    print(f"sizes the run chose: {sized or '(none logged)'}")
    print(
        f"pages the emulator compressed during the run (0: every page served from its kept gzip): "
        f"{len(set(GZIP_DIR.glob('*.gz')) - packed)}"
    )
    step = re.search(r"\] (\d+) rows loaded in ([\d.]+)s", run.out)
    if alone and step:
        extract_s, load_s = alone
        print(
            f"extract alone {extract_s:.1f} s, load alone {load_s:.1f} s, one after the other "
            f"{extract_s + load_s:.1f} s; the run's object step {float(step.group(2)):.1f} s = "
            f"{float(step.group(2)) / max(extract_s, load_s):.3f} x max(extract alone, load alone)"
        )
    if run.returncode:
        print(run.out[-3000:])


GZIP_DIR = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE) / "gz"


def halves_alone(env: dict[str, str], home: Path, group: Path) -> tuple[float, float]:
    """Seconds of `sf-pipeline extract` of the object (queryAll, as a run's window) and of `sf-pipeline load`
    of its pages (merge), each timed around the command, each alone on the machine, each in the run's
    memory cgroup (the same pod: its page cache holds what the run's would)."""

    def in_group() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    cli = str(Path(sys.executable).parent / "sf-pipeline")
    pages, db, describe = home / "alone-pages", home / "alone.duckdb", home / "account.describe.json"
    from sf_pipeline.salesforce import SalesforceClient, SalesforceSettings

    os.environ["SF_LOGIN_URL"] = env["SF_LOGIN_URL"]
    with SalesforceClient(SalesforceSettings.from_env()) as client:
        describe.write_text(json.dumps(client.describe("Account")))
    extract = [cli, "extract", "Account", "--out", str(pages), "--include-deleted"]
    # the emulator gzips a large page the first time it serves it and keeps it (a real org's gzip runs
    # on its servers, not on the cores the client shares): a first extract warms that, untimed but shown
    started = time.monotonic()
    subprocess.run(extract, env=env, check=True, capture_output=True, preexec_fn=in_group)
    print(f"extract alone, first (the emulator compressing its pages): {time.monotonic() - started:.1f} s", flush=True)
    shutil.rmtree(pages)
    started = time.monotonic()
    subprocess.run(extract, env=env, check=True, capture_output=True, preexec_fn=in_group)
    extract_s = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(
        [
            cli,
            "load",
            str(pages),
            "--object",
            "Account",
            "--describe",
            str(describe),
            "--duckdb",
            str(db),
            "--mode",
            "merge",
        ],
        env=env,
        check=True,
        capture_output=True,
        preexec_fn=in_group,
    )
    load_s = time.monotonic() - started
    shutil.rmtree(pages)
    db.unlink()
    return extract_s, load_s


if __name__ == "__main__":
    main()
