"""The Kubernetes values carry the same queue, monitoring and retry policy as dagster.yaml, and
dagster.yaml itself loads into a real instance with run monitoring on and the process-checking launcher."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sf_pipeline.deployment.run_launcher import ProcessCheckingRunLauncher

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_yaml_monitors_runs_and_frees_dead_runs_slots(tmp_path: Path) -> None:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, ProcessCheckingRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert 0 < instance.run_monitoring_settings["free_slots_after_run_end_seconds"] <= 60
        assert 0 < instance.run_monitoring_poll_interval_seconds <= 60
        assert instance.run_monitoring_start_timeout_seconds > 0 and instance.run_monitoring_cancel_timeout_seconds > 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1


def test_helm_values_carry_the_instance_policy() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    local_limits = instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert len(local_limits) == len(queue["tagConcurrencyLimits"]) == 1, "the queue's one rule"
    # one run of the code location at a time, however launched: named after the location on each side
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    location = workspace["load_from"][0]["python_module"]["module_name"]
    assert {"key": "dagster/code_location", "value": location, "limit": 1} in local_limits
    assert {"key": "dagster/code_location", "value": deployment["name"], "limit": 1} in queue["tagConcurrencyLimits"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", location]
    assert values["postgresql"]["enabled"] is True
    monitoring = daemon["runMonitoring"]
    local = instance["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["freeSlotsAfterRunEndSeconds"] == local["free_slots_after_run_end_seconds"]
    assert monitoring["pollIntervalSeconds"] == local["poll_interval_seconds"]
    assert monitoring["startTimeoutSeconds"] == local["start_timeout_seconds"]
    assert monitoring["cancelTimeoutSeconds"] == local["cancel_timeout_seconds"]
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": instance["run_retries"]["max_retries"]}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    limits = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]["resources"]
    assert limits["limits"]["memory"] == "4Gi"


def test_a_pid_counts_only_while_it_is_the_process_that_was_named(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from sf_pipeline.deployment.run_launcher import alive

    now = time.time()
    assert alive(os.getpid(), now)
    assert not alive(os.getpid(), 0.0), "a process created after the event is a reused pid, not the run's"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not alive(child.pid, now)


def test_free_slots_frees_what_a_finished_run_still_claims(
    tmp_path: Path, emulator_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sf-pipeline free-slots` through a real webserver's GraphQL API (the command imports no Dagster
    internals). The dead run and its claimed slot are set up in the instance's storage directly (test code)."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from sf_pipeline.cli import main
    from sf_pipeline.defs.assets import POOL
    from sf_testbed.emulator import EmulatorConfig
    from sf_testbed.local_dagster import LocalDagster

    from ..helpers import TEST_ROWS

    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    with (
        LocalDagster(tmp_path / "home", tmp_path / "sf.duckdb", config) as stack,
        dg.DagsterInstance.from_config(str(stack.home)) as instance,
    ):
        dead = instance.add_run(DagsterRun(job_name="salesforce_objects", status=DagsterRunStatus.STARTED))
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        assert storage.claim_concurrency_slot(POOL, dead.run_id, "salesforce__Account").is_claimed
        assert main(["free-slots", dead.run_id, "--url", stack.url]) == 1
        assert f"run {dead.run_id} is STARTED: terminate it first" in capsys.readouterr().err
        instance.report_run_failed(dead, "killed")
        assert storage.get_concurrency_info(POOL).claimed_slots, "the failed run still holds its slot"
        assert main(["free-slots", dead.run_id, "--url", stack.url]) == 0
        assert not storage.get_concurrency_info(POOL).claimed_slots
        assert main(["free-slots", "no-such-run", "--url", stack.url]) == 1
        assert "no run no-such-run" in capsys.readouterr().err


def test_the_image_installs_the_project_as_pyproject_declares_it(tmp_path: Path) -> None:
    """The Dockerfile installs this project with pip (so exactly pyproject.toml's dependencies) and serves the
    module workspace.yaml names; the wheel pip builds carries those dependencies and the catalog. (The image
    itself is not built here: no registry for its base image on this machine.)"""
    import subprocess
    import sys
    import tomllib
    import zipfile

    from packaging.requirements import Requirement

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "FROM python:3.11" in dockerfile and ">=3.11" in project["requires-python"]
    assert "RUN pip install .\n" in dockerfile and "COPY pyproject.toml" in dockerfile
    assert '"code-server", "start"' in dockerfile and '"-m", "sf_pipeline.definitions"' in dockerfile
    # built from a copy of what the Dockerfile copies, as the image builds it (sf_pipeline/ alone)
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "sf_pipeline", source / "sf_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("sf_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    requires = {line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    runtime = {r for r in requires if "extra ==" not in r}

    def parsed(spec: str) -> tuple:
        req = Requirement(spec)
        return req.name, frozenset(req.extras), req.specifier

    assert {parsed(r) for r in runtime} == {parsed(d) for d in project["dependencies"]}
    assert "sf_pipeline/catalog.yaml" in names and "sf_pipeline/definitions.py" in names
