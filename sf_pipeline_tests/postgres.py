"""A throwaway PostgreSQL server for tests: its own data folder and a free port on loopback.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user (Debian's
packages create it) or, failing that, ``nobody``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sf_testbed.local_dagster import free_port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise FileNotFoundError(f"PostgreSQL's {name} is not installed (scripts/ensure-postgres installs it)")


def _as_server_user(args: list[str]) -> tuple[list[str], int | None]:
    if os.geteuid() != 0:
        return args, None
    for user in ("postgres", "nobody"):
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            continue
        return ["runuser", "-u", user, "--", *args], uid
    raise RuntimeError("running as root and no postgres or nobody user to run the server as")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields its SQLAlchemy URL (psycopg2, which dagster-postgres installs)."""
    # under /tmp itself: the server user must reach the folder (a test session's private temp dir is root-only)
    folder = Path(tempfile.mkdtemp(prefix="sf-pipeline-pg-", dir="/tmp"))
    data = folder / "data"
    port = free_port()
    _, uid = _as_server_user([])
    if uid is not None:
        os.chown(folder, uid, -1)
    initdb, _ = _as_server_user([_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
    subprocess.run(initdb, check=True, capture_output=True)
    start, _ = _as_server_user(
        [
            _binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-o",
            f"-p {port} -h 127.0.0.1 -k {folder}",
            "-w",
            "start",
        ]
    )
    subprocess.run(start, check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (folder / f".s.PGSQL.{port}").exists():
            time.sleep(0.1)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop, _ = _as_server_user([_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
