"""Real emulators the warehouse tests start and stop: Azurite (Azure Blob Storage, from the npm
registry via scripts/ensure-azurite) and fakesnow's Snowflake HTTP server (with the shims in
fakesnow_server.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from sf_testbed.local_dagster import free_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's published development account (https://learn.microsoft.com/azure/storage/common/storage-use-azurite)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def wait_for_port(port: int, proc: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on {port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Azurite:
    port: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def connection_string(self, key: str = AZURITE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def service(self):  # noqa: ANN201 - azure.storage.blob.BlobServiceClient
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def blobs(self, container: str, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.service().get_container_client(container).list_blobs(prefix or None))


@contextmanager
def run_azurite(workdir: Path) -> Iterator[Azurite]:
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: run scripts/ensure-azurite (make test does)")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(AZURITE_BIN),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ],
        stdout=open(workdir / "azurite.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, "Azurite")
        yield Azurite(port)
    finally:
        stop(proc)


@dataclass
class Fakesnow:
    port: int
    copy_log: Path
    statement_log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def copies(self) -> list[dict]:
        import json

        if not self.copy_log.exists():
            return []
        return [json.loads(line) for line in self.copy_log.read_text().splitlines()]

    def statements(self) -> list[dict]:
        """Every login and statement the server has served: ``kind`` login, statement or information_schema."""
        import json

        if not self.statement_log.exists():
            return []
        return [json.loads(line) for line in self.statement_log.read_text().splitlines()]


@contextmanager
def run_fakesnow(
    workdir: Path, azure_connection_string: str | None = None, latency: str | None = None
) -> Iterator[Fakesnow]:
    """fakesnow's server with the project's shims; ``latency``: the production profile's waits
    (``login=0.4,statement=0.12,information_schema=0.6``, seconds), none by default."""
    port = free_port()
    copy_log, statement_log = workdir / "fakesnow-copies.jsonl", workdir / "fakesnow-statements.jsonl"
    env = {**os.environ, "FAKESNOW_COPY_LOG": str(copy_log), "FAKESNOW_STATEMENT_LOG": str(statement_log)}
    if latency:
        env["FAKESNOW_LATENCY"] = latency
    if azure_connection_string:
        env["AZURE_STORAGE_CONNECTION_STRING"] = azure_connection_string
    proc = subprocess.Popen(
        [sys.executable, "-m", "sf_pipeline_tests.fakesnow_server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=open(workdir / "fakesnow.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, "fakesnow")
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        yield Fakesnow(port, copy_log, statement_log)
    finally:
        stop(proc)
