"""A real Dagster instance with the project's dagster.yaml and its daemon: object runs submitted at
once never overlap and dequeue heaviest first."""

from __future__ import annotations

import itertools
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.instance.ref import InstanceRef

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key
from sf_pipeline.defs.jobs import PRIORITY_TAG, job_name, run_tags
from sf_pipeline.emulator import EmulatorConfig
from sf_pipeline.local_dagster import LocalDagster

from .helpers import TEST_ROWS


def test_object_runs_queue_one_at_a_time_heaviest_first(tmp_path: Path, emulator_cache: Path) -> None:
    catalog = load_catalog()
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    weights = {"Lead": 5, "Account": 100, "Case": 50, "User": 20}
    db = tmp_path / "queue.duckdb"
    with LocalDagster(tmp_path / "home", db, config) as stack:
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.home)))
        assert instance.get_concurrency_config().run_queue_config.tag_concurrency_limits == [
            {"key": "sf_pipeline/object_load", "limit": 1}
        ]
        keys = ("2024-01-01", "2026-11-01")
        run_ids = {}
        for name, weight in weights.items():  # submitted in an order that is not the priority order
            entry = catalog.get(name)
            tags = {**run_tags(instance, entry, *keys), PRIORITY_TAG: str(weight)}
            run_ids[name] = stack.submit(job_name(entry), asset_key(name).path, tags)
        queued = {r.dagster_run.status for r in instance.get_run_records()}
        assert queued == {dg.DagsterRunStatus.QUEUED}, "nothing starts before the daemon dequeues"
        stack.start_daemon()
        statuses = stack.wait(list(run_ids.values()), timeout_s=900)
        assert set(statuses.values()) == {"SUCCESS"}, statuses
        records = {name: instance.get_run_record_by_id(run_id) for name, run_id in run_ids.items()}
    spans = sorted((r.start_time, r.end_time, name) for name, r in records.items())
    for (_, e1, a), (s2, _, b) in itertools.pairwise(spans):
        assert e1 <= s2, f"runs of {a} and {b} overlapped"
    started_order = [name for _, _, name in spans]
    assert started_order == sorted(weights, key=lambda n: -weights[n]), started_order
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'salesforce'"
            ).fetchall()
        }
        assert {"account", "lead", "case", "user"} <= tables
        assert con.execute("SELECT count(*) FROM salesforce.lead").fetchone()[0] > 0
