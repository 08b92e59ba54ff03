"""A local Dagster deployment for the demo and the end-to-end tests: emulator, webserver, daemon.

Runs go through the real path: submitted over GraphQL to the instance's QueuedRunCoordinator
(dagster.yaml), dequeued by the daemon under the tag limit and priorities, executed in run worker
processes that talk HTTP to the emulator and write the DuckDB file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import httpx

from .emulator import EmulatorConfig, EmulatorServer, make_server

ROOT = Path(__file__).resolve().parents[1]  # the repository: dagster.yaml, workspace.yaml
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalDagster:
    """Start with ``start()``; ``submit`` runs; ``start_daemon()`` lets the queue drain; ``stop()``."""

    home: Path
    duckdb_path: Path
    emulator_config: EmulatorConfig = field(default_factory=lambda: EmulatorConfig(port=0))
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    instance_overrides: dict = field(default_factory=dict)  # merged into dagster.yaml (e.g. Postgres storage)
    with_daemon: bool = False  # start() starts the daemon too, booting beside the webserver rather than after it

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.duckdb_path = Path(self.duckdb_path).resolve()
        self.emulator: EmulatorServer | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.port = free_port()

    @property
    def env(self) -> dict[str, str]:
        assert self.emulator is not None
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "SF_LOGIN_URL": self.emulator.url,
            "SF_PIPELINE_DUCKDB": str(self.duckdb_path),
            # a work folder of its own: the default (the system temp folder) is shared with every other stack on
            # the machine, and two stacks loading the same object would find its lock taken (ObjectBusyError)
            "SF_PIPELINE_WORK_DIR": str(self.home / "work"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def _spawn(self, name: str, args: list[str]) -> None:
        log_dir = self.log_dir or self.home
        log = open(log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start_org(self) -> None:
        """The emulator org alone (``start`` starts it too if it is not up): a caller can discover it before
        the code location loads."""
        self.emulator = make_server(self.emulator_config)
        self.emulator.start_background()

    def prepare_home(self) -> None:
        """DAGSTER_HOME with the project's dagster.yaml (and the overrides) and the instance's storage created
        once, here: a daemon and a webserver booting at once on a fresh SQLite home would each create it and
        stamp its schema version twice (alembic: "more than one head present"), and a code server would fail."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        if self.instance_overrides:
            import yaml

            config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
            (self.home / "dagster.yaml").write_text(yaml.safe_dump({**config, **self.instance_overrides}))
        with dg.DagsterInstance.from_config(str(self.home)):
            pass

    def start(self) -> LocalDagster:
        self.prepare_home()
        if self.emulator is None:
            self.start_org()
        try:
            if self.with_daemon:
                self.start_daemon()
            self.start_webserver()
        except BaseException:
            self.stop()  # no process left behind by a stack that never came up
            raise
        return self

    def start_webserver(self) -> None:
        bin_dir = Path(sys.executable).parent
        self._spawn(
            "webserver",
            [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
        )
        self.wait_for_webserver()

    def start_daemon(self) -> None:
        self._spawn("daemon", [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_webserver(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["webserver"].poll() is not None:
                raise RuntimeError(f"dagster-webserver exited; see {self.home / 'webserver.log'}")
            try:
                # the code location loads after the server answers: wait until GraphQL sees its job
                if httpx.get(f"{self.url}/server_info", timeout=2).status_code == 200 and self._has_job(
                    "salesforce_objects"
                ):
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        raise RuntimeError(f"dagster-webserver did not come up in {timeout_s}s")

    def submit(self, job: str, asset: list[str], tags: dict[str, str], run_config: dict | None = None) -> str:
        """Queue a run of ``job`` for one asset (key path) with ``tags``, as the UI launches it."""
        return self.launch(job, assets=[asset], tags=tags, run_config=run_config)

    def launch_request(self, request: dg.RunRequest) -> str:
        """Launch a sensor's or schedule's RunRequest (a batch of objects) as the UI would launch it."""
        assert request.job_name, "a batched request names its job"
        return self.launch(
            request.job_name,
            assets=[key.path for key in request.asset_selection] if request.asset_selection else None,
            checks=[(key.asset_key.path, key.name) for key in request.asset_check_keys or ()],
            tags=dict(request.tags),
            run_config=dict(request.run_config),
        )

    LOCATION = "sf_pipeline.definitions"  # workspace.yaml's python_module
    REPOSITORY = "__repository__"

    def _has_job(self, name: str) -> bool:
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
        nodes = self.graphql(query, {}).get("repositoriesOrError", {}).get("nodes", [])
        return any(job["name"] == name for node in nodes for job in node["jobs"])

    def graphql(self, query: str, variables: dict) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def launch(
        self,
        job: str,
        *,
        assets: list[list[str]] | None = None,
        checks: list[tuple[list[str], str]] | None = None,
        tags: dict[str, str] | None = None,
        run_config: dict | None = None,
    ) -> str:
        """Launch a run as the UI does (``launchRun``), with an asset and/or asset-check selection."""
        selector: dict = {"repositoryLocationName": self.LOCATION, "repositoryName": self.REPOSITORY, "jobName": job}
        if assets is not None:
            selector["assetSelection"] = [{"path": path} for path in assets]
        if checks is not None:
            selector["assetCheckSelection"] = [{"assetKey": {"path": path}, "name": name} for path, name in checks]
        data = self.graphql(
            """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
                __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
                ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }""",
            {
                "params": {
                    "selector": selector,
                    "runConfigData": run_config or {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun failed: {data}")
        return data["run"]["runId"]

    def start_sensor(self, name: str) -> None:
        """Turn a sensor on, as its toggle in the UI does."""
        self._start("Sensor", "sensor", name, "Sensor { sensorState { status } }")

    def start_schedule(self, name: str) -> None:
        """Turn a schedule on, as its toggle in the UI does."""
        self._start("Schedule", "schedule", name, "ScheduleStateResult { scheduleState { status } }")

    def _start(self, kind: str, field_prefix: str, name: str, success: str) -> None:
        mutation = f"start{kind}"
        data = self.graphql(
            f"""mutation Start($selector: {kind}Selector!) {{ {mutation}({field_prefix}Selector: $selector) {{
                __typename ... on {success} ... on PythonError {{ message }} }} }}""",
            {
                "selector": {
                    "repositoryLocationName": self.LOCATION,
                    "repositoryName": self.REPOSITORY,
                    f"{field_prefix}Name": name,
                }
            },
        )[mutation]
        if data["__typename"] != success.split()[0]:
            raise RuntimeError(f"{mutation} failed: {data}")

    def statuses(self, run_ids: list[str]) -> dict[str, str]:
        from dagster_graphql import DagsterGraphQLClient

        client = DagsterGraphQLClient("127.0.0.1", port_number=self.port)
        return {r: client.get_run_status(r).value for r in run_ids}

    def wait_for_status(self, run_id: str, status: str, timeout_s: float = 120) -> None:
        """Wait until a run reaches ``status`` (e.g. STARTED), failing if it ends another way first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.statuses([run_id])[run_id]
            if now == status:
                return
            if now in TERMINAL:
                raise RuntimeError(f"run {run_id} ended {now} before it was {status}")
            time.sleep(0.5)
        raise TimeoutError(f"run {run_id} not {status} after {timeout_s}s")

    def wait(self, run_ids: list[str], timeout_s: float = 1800) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = self.statuses(run_ids)
            if all(s in TERMINAL for s in statuses.values()):
                return statuses
            if "daemon" in self.procs and self.procs["daemon"].poll() is not None:
                raise RuntimeError(f"dagster-daemon exited; see {self.home / 'daemon.log'}")
            time.sleep(1)
        raise TimeoutError(f"runs still going after {timeout_s}s: {statuses}")

    def crash(self) -> None:
        """SIGKILL the webserver, the daemon and every process under them (code servers, run workers, step
        processes), as a host reboot or the OOM killer taking the lot would; the emulator org stays up."""
        import psutil

        doomed = []
        for proc in self.procs.values():
            try:
                doomed += [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
            except psutil.NoSuchProcess:
                pass
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.emulator is not None:
            self.emulator.shutdown()
            self.emulator.server_close()

    def __enter__(self) -> LocalDagster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def instigator_ticks(instance: dg.DagsterInstance, name: str) -> list:
    """A sensor's or schedule's ticks, oldest first."""
    state = next(s for s in instance.all_instigator_state() if s.name == name)
    return list(reversed(instance.get_ticks(state.instigator_origin_id, state.selector_id)))


def tick_log(instance: dg.DagsterInstance, tick) -> str:
    """What the tick logged, as the UI shows it in the tick's details."""
    if not tick.log_key:
        return ""
    data = instance.compute_log_manager.get_log_data(tick.log_key)
    return b"".join(part or b"" for part in (data.stdout, data.stderr)).decode()
