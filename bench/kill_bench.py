"""A killed run never stalls the queue: SIGKILL one object's run at random moments, N times in a row.

Usage: python bench/kill_bench.py [--kills 10] [--rows 100000] [--seed 7] [--partitions 240]

A real webserver and daemon with this repo's dagster.yaml. Each round queues an Account run over its trailing
``--partitions`` partitions (the catalog's, monthly by default; all of them: the whole history), SIGKILLs the
run worker and its step process after a random delay (anywhere from the extract to the last chunk's load),
queues a User run right after, and waits for the daemon to fail, free, retry and drain. Prints per round: when
the kill fell, seconds until the queue started the next object run, seconds until both were done, and whether
the table then held Salesforce's rows exactly once.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, table  # noqa: E402

from sf_pipeline.catalog import load_catalog  # noqa: E402
from sf_pipeline.defs.assets import asset_key, partitions_def  # noqa: E402
from sf_pipeline.defs.jobs import job_name, run_tags  # noqa: E402
from sf_pipeline.deployment.run_launcher import recorded_pids  # noqa: E402
from sf_testbed.emulator import EmulatorConfig  # noqa: E402
from sf_testbed.emulator.soql import epoch_ms  # noqa: E402
from sf_testbed.local_dagster import LocalDagster  # noqa: E402


def truth_ids(stack: LocalDagster, since: datetime | None, until: datetime) -> list[str]:
    """Account's live rows in [since, until); ``since`` None: the first partition, open at its start."""
    obj = stack.emulator.state.org.get("Account")
    lo, hi = epoch_ms(since.isoformat()) if since else -1, epoch_ms(until.isoformat())
    id_field = obj.by_name["id"]
    return sorted(
        obj.raw_value(id_field, i) for i in range(obj.rows) if lo <= obj.modstamp_ms(i) < hi and not obj.is_deleted(i)
    )


def loaded_ids(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return sorted(r[0] for r in con.execute("SELECT id FROM salesforce.account").fetchall())


def first_step_pid_time(instance: dg.DagsterInstance, run_id: str, timeout_s: float = 300) -> float:
    """When the run's object step started (the run's one process runs it: in_process_executor)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if events:
            return time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} never started its step")


HEADER = ["round", "kill at step +s", "retry and User", "queue ran again s", "both done s", "exact"]


def one_kill(
    stack: LocalDagster,
    instance: dg.DagsterInstance,
    submit: Callable[[str], str],
    delay_s: float,
    truth: list[str],
) -> list[str]:
    """An Account run SIGKILLed ``delay_s`` into its step with a User run queued behind it: when the queue ran
    again, when both were done, and whether the table then holds exactly Salesforce's rows."""
    run_id = submit("Account")
    started = first_step_pid_time(instance, run_id)
    time.sleep(max(0.0, started + delay_s - time.monotonic()))
    if instance.get_run_by_id(run_id).is_finished:
        return ["finished before the kill", "-", "-", "-"]
    for pid in list(recorded_pids(instance.all_logs(run_id))):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed_at = time.time()
    other = submit("User")
    deadline = time.monotonic() + 600
    while AUTO_RETRY_RUN_ID_TAG not in instance.get_run_by_id(run_id).tags:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no retry of {run_id}")
        time.sleep(0.5)
    retry = instance.get_run_by_id(run_id).tags[AUTO_RETRY_RUN_ID_TAG]
    statuses = stack.wait([retry, other], timeout_s=900)
    records = [instance.get_run_record_by_id(r) for r in (retry, other)]
    next_start = min(r.start_time for r in records) - killed_at
    done = max(r.end_time for r in records) - killed_at
    exact = loaded_ids(stack.duckdb_path) == truth
    return ["/".join(sorted(set(statuses.values()))), f"{next_start:.0f}", f"{done:.0f}", "yes" if exact else "NO"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--rows", type=int, default=100_000, help="Account rows in the emulator's org")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--partitions", type=int, default=240, help="trailing partitions each run loads (one event each)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    catalog = load_catalog()
    parts = partitions_def(catalog)
    keys = parts.get_partition_keys()[-args.partitions :]
    first = keys[0] == parts.get_first_partition_key()
    since = None if first else parts.time_window_for_partition_key(keys[0]).start
    until = parts.time_window_for_partition_key(keys[-1]).end
    work = Path(tempfile.mkdtemp(prefix="kill-bench-"))
    env = {
        "SF_PIPELINE_WORK_DIR": str(work / "work"),
        "SF_PIPELINE_PAGE_RECORDS": str(max(1, args.rows // 8)),
        "SF_PIPELINE_CHUNK_MIN_ROWS": str(max(1, args.rows // 8)),
        "SF_PIPELINE_CHUNK_TARGET_MB": "8",
    }
    config = EmulatorConfig(port=0, rows={"Account": args.rows, "User": 300})
    rows = []
    with LocalDagster(work / "home", work / "sf.duckdb", config, extra_env=env, with_daemon=True) as stack:
        instance = dg.DagsterInstance.from_config(str(stack.home))

        def submit(name: str) -> str:
            entry = catalog.get(name)
            return stack.submit(
                job_name(entry), asset_key(entry.name).path, run_tags(instance, entry, keys[0], keys[-1])
            )

        clean = submit("Account")  # one undisturbed run: how long the step takes, to aim the kills
        stepped = first_step_pid_time(instance, clean)
        stack.wait([clean], timeout_s=900)
        step_s = time.monotonic() - stepped
        print(
            f"undisturbed Account run: step {step_s:.0f}s; {args.kills} kills at random moments in it "
            f"(seed {args.seed}, work in {work})",
            flush=True,
        )
        truth = truth_ids(stack, since, until)
        for round_no in range(1, args.kills + 1):
            delay_s = rng.uniform(0.5, max(1.0, step_s * 0.95))
            rows.append([round_no, f"{delay_s:.1f}", *one_kill(stack, instance, submit, delay_s, truth)])
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(HEADER, rows))
    again = [float(r[3]) for r in rows if r[3] != "-"]
    if again:
        print(
            f"\nqueue ran again after a kill: median {median(again):.0f}s, max {max(again):.0f}s over "
            f"{len(again)} kills; exact tables: {sum(r[5] == 'yes' for r in rows)}/{len(again)}"
        )


if __name__ == "__main__":
    main()
