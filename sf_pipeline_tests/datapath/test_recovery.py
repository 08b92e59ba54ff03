"""Crash recovery, for real: ``sf-pipeline sync`` runs in a subprocess that is SIGKILLed while it downloads,
splits or loads a chunk; the next run of the same window completes and the destination is exactly the
org's truth (no row lost, none twice), and nothing the dead run left behind is loaded.

To kill at an exact point the run stops itself there (SIGSTOP, through ``SF_PIPELINE_FAULTPOINTS``); the
test then sends SIGKILL, as the kernel's OOM killer or an evicted pod would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sf_testbed.emulator.soql import epoch_ms

from ..helpers import Emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

ROOT = Path(__file__).resolve().parents[2]
SINCE, UNTIL = "2024-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"


def sync_command(sobject: str, *, full_refresh: bool) -> list[str]:
    window = ["--full-refresh"] if full_refresh else ["--since", SINCE, "--until", UNTIL]
    return [
        sys.executable,
        "-m",
        "sf_pipeline.cli",
        "--log-level",
        "WARNING",
        "sync",
        sobject,
        *window,
        "--max-records",
        "2000",
        "--chunk-min-rows",
        "1000",
        "--chunk-target-mb",
        "1",
    ]


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def kill_when_stopped(proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not stopped(proc.pid):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before its fault point: {proc.stderr.read()}")
        assert time.monotonic() < deadline, "the run never reached its fault point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def destination_ids(db: Path, table: str) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return sorted(r[0] for r in con.execute(f"SELECT id FROM salesforce.{table}").fetchall())


@pytest.mark.parametrize(
    ("point", "full_refresh"),
    [
        ("page_written:Account@1=stop", False),  # during the download: one page on disk, the rest in flight
        ("chunk_written:Account@1=stop", False),  # during the split
        ("batch_read:Account@2=stop", False),  # during the second chunk's load: the first is in the warehouse
        ("batch_read:Account@3=stop", True),  # the same in a full refresh: the table was dropped and half refilled
    ],
    ids=["download", "split", "chunk-load", "full-refresh-chunk-load"],
)
def test_sigkill_then_rerun_gives_exactly_the_truth(
    org: Emulator, tmp_path: Path, point: str, full_refresh: bool
) -> None:
    db, work = tmp_path / "sf.duckdb", tmp_path / "work"
    env = {
        **os.environ,
        "SF_LOGIN_URL": org.url,
        "SF_PIPELINE_DUCKDB": str(db),
        "SF_PIPELINE_WORK_DIR": str(work),
        "SF_PIPELINE_FAULTPOINTS": point,
        "SF_PIPELINE_REST_MAX_RECORDS": "0",  # a Bulk job's pages to resume, whatever the window's size
    }
    cmd = sync_command("Account", full_refresh=full_refresh)
    dead = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_when_stopped(dead)
    left = sorted(p.name for p in work.iterdir())
    assert any(name.startswith("Account-") for name in left), left  # the dead run's folder is there

    del env["SF_PIPELINE_FAULTPOINTS"]
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:] + rerun.stdout[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert summary["reconciled"]
    if point.startswith("page_written"):
        assert summary["resumed_pages"] >= 1, "the extract resumed from the dead run's complete pages"
    window = () if full_refresh else (epoch_ms(SINCE), epoch_ms(UNTIL))
    truth = sorted(org.truth_ids("Account", *window))
    assert destination_ids(db, "account") == truth  # sorted lists: no row lost, none twice
    assert sorted(p.name for p in work.iterdir()) == ["Account.lock"], "nothing of either run is left behind"


def test_a_second_load_of_the_same_object_is_refused_while_one_runs(org: Emulator, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SF_LOGIN_URL": org.url,
        "SF_PIPELINE_DUCKDB": str(tmp_path / "sf.duckdb"),
        "SF_PIPELINE_WORK_DIR": str(tmp_path / "work"),
        "SF_PIPELINE_FAULTPOINTS": "split_done:Lead=stop",
    }
    cmd = sync_command("Lead", full_refresh=True)
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not stopped(first.pid):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        del env["SF_PIPELINE_FAULTPOINTS"]
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "another process is loading this object" in second.stderr
    finally:
        first.kill()
        first.wait()
