"""A killed object run never stalls the queue, through a real webserver, daemon and the project's
dagster.yaml (run monitoring, the process-checking launcher, run retries, the object-load pool).

The run stops itself at a fault point (SIGSTOP, once across processes) so that the test can SIGKILL its
processes at exactly that moment, as the OOM killer or an evicted pod would; its retry runs through.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest
import sqlalchemy.exc
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key, partitions_def
from sf_pipeline.defs.batches import ObjectLoad, batched_requests
from sf_pipeline.defs.jobs import job_name, run_tags
from sf_pipeline.deployment.run_launcher import recorded_pids
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.emulator.soql import epoch_ms
from sf_testbed.local_dagster import LocalDagster

from ..helpers import TEST_ROWS, Emulator

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

RECOVERY_TIMEOUT_S = 300  # "within a few minutes": the retry and the next object's run both done by then
# The trailing 8 monthly partitions (about 2,500 of the test org's Accounts) keep each run short and still
# span pages.
PARTITIONS = 8


def instance_of(stack: LocalDagster) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.home)))


def object_window() -> tuple[str, str, datetime, datetime]:
    """The trailing partitions of a partitioned object: first and last keys, and the window they span."""
    parts = partitions_def(load_catalog())
    keys = parts.get_partition_keys()[-PARTITIONS:]
    since = parts.time_window_for_partition_key(keys[0]).start
    until = parts.time_window_for_partition_key(keys[-1]).end
    return keys[0], keys[-1], since, until


def submit(stack: LocalDagster, instance: dg.DagsterInstance, name: str) -> str:
    entry = load_catalog().get(name)
    first, last, _, _ = object_window()
    return stack.submit(job_name(entry), asset_key(name).path, run_tags(instance, entry, first, last))


def stopped_run_processes(instance: dg.DagsterInstance, run_id: str, timeout_s: float = 180) -> list[int]:
    """The run's processes once one of them has stopped at its fault point."""
    deadline = time.monotonic() + timeout_s
    pids: list[int] = []
    while time.monotonic() < deadline:
        # a run stopped in the middle of writing an event can hold the SQLite event log's lock until it is
        # killed ("locking protocol"): its processes were recorded long before, at its start
        with contextlib.suppress(sqlalchemy.exc.OperationalError):
            pids = list(recorded_pids(instance.all_logs(run_id)))
        if any(psutil.pid_exists(p) and psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids):
            return pids
        run = instance.get_run_by_id(run_id)
        assert run is not None and not run.is_finished, f"the run ended ({run.status}) before its fault point"
        time.sleep(0.2)
    raise AssertionError("the run never reached its fault point")


def wait_for_retry(instance: dg.DagsterInstance, run_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and AUTO_RETRY_RUN_ID_TAG in run.tags:
            return run.tags[AUTO_RETRY_RUN_ID_TAG]
        time.sleep(1)
    run = instance.get_run_by_id(run_id)
    raise AssertionError(f"no retry of the killed run within {timeout_s}s; it is {run.status if run else None}")


def assert_recovered(
    stack: LocalDagster, org: Emulator, killed: str, other: str, killed_at: float, *, retry_first: bool
) -> None:
    """The killed run is failed and retried; its retry and the other object's run both succeed, one at a
    time (the retry first, when it was queued before the other run could start); the table holds
    Salesforce's rows exactly once."""
    instance = instance_of(stack)
    retry = wait_for_retry(instance, killed, RECOVERY_TIMEOUT_S)
    statuses = stack.wait([retry, other], timeout_s=RECOVERY_TIMEOUT_S)
    assert statuses == {retry: "SUCCESS", other: "SUCCESS"}, statuses
    records = {run_id: instance.get_run_record_by_id(run_id) for run_id in (killed, retry, other)}
    assert records[killed].dagster_run.status == dg.DagsterRunStatus.FAILURE
    spans = sorted((r.start_time, r.end_time, run_id) for run_id, r in records.items())
    assert spans[0][2] == killed
    if retry_first:
        assert [run_id for *_, run_id in spans] == [killed, retry, other], "heaviest first: the retry before User"
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        assert end <= start, f"runs {a} and {b} overlapped"
    print(
        f"\nqueue ran again {records[retry].start_time - killed_at:.0f}s after the kill; "
        f"retry done {records[retry].end_time - killed_at:.0f}s, User done {records[other].end_time - killed_at:.0f}s"
    )
    _, _, since, until = object_window()
    with duckdb.connect(str(stack.duckdb_path), read_only=True) as con:
        loaded = sorted(r[0] for r in con.execute("SELECT id FROM salesforce.account").fetchall())
    assert loaded == sorted(org.truth_ids("Account", epoch_ms(since.isoformat()), epoch_ms(until.isoformat())))


def kill_stack(tmp_path: Path, emulator_cache: Path, point: str) -> LocalDagster:
    # small pages and chunks so that a fault point falls between pages and between chunks
    env = {
        "SF_PIPELINE_FAULTPOINTS": point,
        "SF_PIPELINE_FAULTPOINTS_ONCE": str(tmp_path),
        "SF_PIPELINE_WORK_DIR": str(tmp_path / "work"),
        "SF_PIPELINE_PAGE_RECORDS": "500",
        "SF_PIPELINE_CHUNK_MIN_ROWS": "500",
        "SF_PIPELINE_CHUNK_TARGET_MB": "1",
        "SF_PIPELINE_REST_MAX_RECORDS": "0",  # Bulk pages to kill between, whatever the window's size
    }
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    return LocalDagster(tmp_path / "home", tmp_path / "sf.duckdb", config, extra_env=env, with_daemon=True)


@pytest.fixture
def truth(emulator: Emulator) -> Emulator:
    """The org's truth: the stack's own emulator serves the same seeded data as the session emulator."""
    return emulator


@pytest.mark.parametrize(
    "point", ["batch_read:Account@2=stop", "page_written:Account@2=stop"], ids=["mid-load", "mid-extract"]
)
def test_sigkilled_run_is_retried_and_the_queue_goes_on(
    tmp_path: Path, emulator_cache: Path, truth: Emulator, point: str
) -> None:
    with kill_stack(tmp_path, emulator_cache, point) as stack:
        instance = instance_of(stack)
        account = submit(stack, instance, "Account")
        pids = stopped_run_processes(instance, account)
        for pid in pids:  # the run worker and its step process
            os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        time.sleep(10)
        user = submit(stack, instance, "User")
        assert_recovered(stack, truth, account, user, killed_at, retry_first=True)
        retry = instance.get_run_by_id(account).tags[AUTO_RETRY_RUN_ID_TAG]
        event = instance.get_latest_materialization_event(asset_key("Account"))
        assert event is not None and event.run_id == retry
        if point.startswith("page_written"):
            resumed = event.asset_materialization.metadata["resumed_pages"].value
            assert resumed >= 2, "the retry resumed the extract from the dead run's complete pages"


def test_run_left_started_by_a_dead_process_tree_is_failed_and_retried(
    tmp_path: Path, emulator_cache: Path, truth: Emulator
) -> None:
    """The code server dies with the run: nothing reports the run's end, so only the launcher's health check
    (run monitoring) can find it dead."""
    with kill_stack(tmp_path, emulator_cache, "batch_read:Account@2=stop") as stack:
        instance = instance_of(stack)
        account = submit(stack, instance, "Account")
        stopped_run_processes(instance, account)
        stack.crash()  # webserver, daemon, code servers, run worker, step process: all SIGKILLed
        killed_at = time.time()
        time.sleep(5)
        assert instance.get_run_by_id(account).status == dg.DagsterRunStatus.STARTED, "nothing saw it die"
        stack.start_webserver()
        stack.start_daemon()
        user = submit(stack, instance, "User")
        # the restarted daemon creates the retry only once it has found the run dead and loaded the code
        # location, so User, queued first, may go first: only "one at a time" holds here
        assert_recovered(stack, truth, account, user, killed_at, retry_first=False)
        failure = instance.all_logs(account, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert any("every process of the run is gone" in (e.message or "") for e in failure), failure


def test_a_killed_batch_is_retried_for_the_objects_that_did_not_finish(
    tmp_path: Path, emulator_cache: Path, truth: Emulator
) -> None:
    """A batch of two objects (as the sensor and schedules request them), killed during the second: Account,
    the heavier, ran first and stays loaded by the killed run; the retry re-runs Contact alone."""
    with kill_stack(tmp_path, emulator_cache, "page_written:Contact@2=stop") as stack:
        instance = instance_of(stack)
        catalog = load_catalog()
        keys = partitions_def(catalog).get_partition_keys()
        (request,) = batched_requests(
            [ObjectLoad(catalog.get(name), weight) for name, weight in (("Contact", 40), ("Account", 100))],
            run_key=None,
            batch_objects=10,
            partition_range=(keys[0], keys[-1]),
        )
        batch = stack.launch_request(request)
        pids = stopped_run_processes(instance, batch)
        account = instance.get_latest_materialization_event(asset_key("Account"))
        assert account is not None and account.run_id == batch, "the heavier object ran first and is loaded"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        retry = wait_for_retry(instance, batch, RECOVERY_TIMEOUT_S)
        assert stack.wait([retry], timeout_s=RECOVERY_TIMEOUT_S) == {retry: "SUCCESS"}
        started = {e.step_key for e in instance.all_logs(retry, of_type=dg.DagsterEventType.STEP_START)}
        assert started == {"salesforce__Contact"}, "the retry re-ran only what did not finish"
        assert instance.get_latest_materialization_event(asset_key("Account")).run_id == batch
        contact = instance.get_latest_materialization_event(asset_key("Contact"))
        assert contact is not None and contact.run_id == retry
        assert contact.asset_materialization.metadata["resumed_pages"].value >= 2
        with duckdb.connect(str(stack.duckdb_path), read_only=True) as con:
            for name in ("Account", "Contact"):
                loaded = sorted(r[0] for r in con.execute(f"SELECT id FROM salesforce.{name.lower()}").fetchall())
                assert loaded == sorted(truth.truth_ids(name)), name
