"""The run launcher of a single-host deployment: Dagster's default launcher plus a run-worker health check.

Dagster's ``DefaultRunLauncher`` starts run workers as processes of the code server and has no health
check, so a run whose whole process tree died (the code server too: a host reboot, ``kill -9`` of
``dagster dev``, the OOM killer taking the lot) stays STARTED for ever and keeps its pool slot: every
later object load waits behind it. With this launcher, the daemon's run monitoring (``run_monitoring`` in
dagster.yaml) asks every poll whether the run's processes still exist, fails the run when none does,
the run-retry policy queues a retry, and ``free_slots_after_run_end_seconds`` gives its slot back.

The processes of a run are the ones its own engine events name: the run worker ("Started process for
run"), the multiprocess executor's parent (also what ``dagster asset materialize`` runs in) and each step
worker. A pid counts as the run's only if that process already existed when the event was written, so a
pid the kernel reused later is not mistaken for the run.

Only for run workers on the daemon's own host (the local deployment in this repo's dagster.yaml). On
Kubernetes use ``K8sRunLauncher``, whose health check asks the cluster (deploy/helm/values.yaml).
"""

from __future__ import annotations

import psutil
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

# what a run launcher's check_run_worker_health returns: part of the RunLauncher interface, with no public module
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# A process is the run's if it was created no later than the event naming it (plus clock granularity).
_CREATE_TIME_SLACK_S = 2.0
_PID_EVENTS = {DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_WORKER_STARTED}


def recorded_pids(events: list) -> dict[int, float]:
    """pid -> timestamp of the first event of the run that names it (run worker, executor, step workers)."""
    pids: dict[int, float] = {}
    for record in events:
        event = record.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        metadata = getattr(data, "metadata", None) or {}
        if "pid" not in metadata:
            continue
        try:
            pid = int(metadata["pid"].value)
        except (TypeError, ValueError):
            continue
        pids.setdefault(pid, record.timestamp)
    return pids


def alive(pid: int, named_at: float) -> bool:
    """Whether ``pid`` is still the process that was named at ``named_at`` (not a zombie, not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= named_at + _CREATE_TIME_SLACK_S
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may not look at it


class ProcessCheckingRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose runs the daemon's run monitoring can find dead."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        events = self._instance.all_logs(run.run_id, of_type=_PID_EVENTS)
        pids = recorded_pids(events)
        if not pids:
            # STARTED but no process named yet: too early to judge, and "not RUNNING" would fail the run
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run process recorded yet")
        living = sorted(pid for pid, named_at in pids.items() if alive(pid, named_at))
        if living:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run processes alive: {living}")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"every process of the run is gone (pids {sorted(pids)}): killed with its code server, "
            "by the OOM killer, or by a restart of the host",
        )
