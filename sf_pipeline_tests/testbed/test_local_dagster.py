"""The local Dagster harness (the demo's and the end-to-end tests' deployment) prepares its home before any
process boots."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sf_testbed.local_dagster import LocalDagster


def test_the_home_holds_the_instances_storage_before_the_daemon_and_webserver_boot(tmp_path: Path) -> None:
    """The daemon and the webserver boot at once; on a home without storage each would create the SQLite
    databases and stamp their schema version, and two stamps leave "more than one head present" (seen: the
    demo's webserver never came up; two processes opening a fresh home at once failed 1 time in 10)."""
    stack = LocalDagster(
        tmp_path / "home", tmp_path / "sf.duckdb", instance_overrides={"telemetry": {"enabled": False}}
    )
    stack.prepare_home()
    databases = {p.relative_to(stack.home).as_posix(): p for p in stack.home.rglob("*.db")}
    assert set(databases) == {"history/runs.db", "history/runs/index.db", "schedules/schedules.db"}
    for name, path in databases.items():
        with sqlite3.connect(path) as con:
            assert len(con.execute("SELECT version_num FROM alembic_version").fetchall()) == 1, name
    assert (stack.home / "dagster.yaml").read_text().count("telemetry") == 1
