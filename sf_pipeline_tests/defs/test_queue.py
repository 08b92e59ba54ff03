"""A real Dagster instance with the project's dagster.yaml and its daemon: object runs never overlap and
dequeue heaviest first, whichever way they were launched: the project's job with its tags (sensor,
schedules, CLI) or the implicit asset job with no tag of ours, as the asset graph's Materialize button
sends it over GraphQL (one object, several, over a partition range). Once on SQLite (the default), once
on a Postgres-backed instance with its own server, as a deployment outgrowing one machine runs it."""

from __future__ import annotations

import itertools
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from sf_pipeline.catalog import load_catalog
from sf_pipeline.defs.assets import asset_key
from sf_pipeline.defs.jobs import PRIORITY_TAG, job_name, run_tags
from sf_testbed.emulator import EmulatorConfig
from sf_testbed.local_dagster import LocalDagster

from ..helpers import TEST_ROWS
from ..postgres import postgres_server

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it

RANGE = ("2026-10-01", "2026-10-31")  # a month: every object has rows there, and a run stays short
ASSET_JOB = "__ASSET_JOB"  # the implicit job the asset graph launches


def queue_and_drain(
    tmp_path: Path, emulator_cache: Path, overrides: dict, ours: dict[str, int], ui: dict[str, list[str]]
) -> list[str]:
    """Launch ``ours`` (object -> priority, the project's job and tags) then ``ui`` (label -> objects, the
    implicit asset job), all queued before the daemon starts; return the labels in the order they ran."""
    catalog = load_catalog()
    config = EmulatorConfig(port=0, rows=TEST_ROWS, cache_dir=emulator_cache)
    db = tmp_path / "queue.duckdb"
    with LocalDagster(tmp_path / "home", db, config, instance_overrides=overrides) as stack:
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.home)))
        if "storage" in overrides:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [{"key": "dagster/code_location", "value": "sf_pipeline.definitions", "limit": 1}]
        run_ids = {}
        for name, weight in ours.items():
            entry = catalog.get(name)
            tags = {**run_tags(instance, entry, *RANGE), PRIORITY_TAG: str(weight)}
            run_ids[name] = stack.launch(job_name(entry), assets=[asset_key(name).path], tags=tags)
        # as the UI's Materialize sends it: the implicit asset job, partition tags only
        range_tags = {ASSET_PARTITION_RANGE_START_TAG: RANGE[0], ASSET_PARTITION_RANGE_END_TAG: RANGE[1]}
        for label, names in ui.items():
            run_ids[label] = stack.launch(ASSET_JOB, assets=[asset_key(n).path for n in names], tags=range_tags)
        records = [instance.get_run_record_by_id(r) for r in run_ids.values()]
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.QUEUED}, "nothing starts undequeued"
        assert all(r.dagster_run.tags.get("dagster/code_location") == "sf_pipeline.definitions" for r in records)
        stack.start_daemon()
        statuses = stack.wait(list(run_ids.values()), timeout_s=600)
        assert set(statuses.values()) == {"SUCCESS"}, statuses
        records = {name: instance.get_run_record_by_id(run_id) for name, run_id in run_ids.items()}
    spans = sorted((r.start_time, r.end_time, name) for name, r in records.items())
    for (_, e1, a), (s2, _, b) in itertools.pairwise(spans):
        assert e1 <= s2, f"runs of {a} and {b} overlapped"
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'salesforce'"
            ).fetchall()
        }
    launched = {*ours, *(n for names in ui.values() for n in names)}
    assert {n.lower() for n in launched} <= tables
    return [name for _, _, name in spans]


def test_every_launch_queues_one_object_run_at_a_time_heaviest_first(tmp_path: Path, emulator_cache: Path) -> None:
    order = queue_and_drain(
        tmp_path,
        emulator_cache,
        {},
        ours={"Case": 50, "Account": 100},  # submitted lighter first: the queue reorders them
        ui={"Lead (UI)": ["Lead"], "Contact+Task (UI)": ["Contact", "Task"]},
    )
    # heaviest first among prioritized runs; runs with no priority (0) follow in the order they came
    assert order == ["Account", "Case", "Lead (UI)", "Contact+Task (UI)"], order


def test_the_queue_on_a_postgres_backed_instance(tmp_path: Path, emulator_cache: Path) -> None:
    with postgres_server() as url:
        overrides = {"storage": {"postgres": {"postgres_url": url}}}
        order = queue_and_drain(tmp_path, emulator_cache, overrides, ours={"Case": 50}, ui={"Lead (UI)": ["Lead"]})
    assert order == ["Case", "Lead (UI)"], order
