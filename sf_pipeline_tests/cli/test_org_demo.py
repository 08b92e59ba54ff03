"""A discovered org loaded whole through a real Dagster instance, its daemon and the project's dagster.yaml, as
`sf-pipeline demo --objects N` runs it: every object the discovery keeps ends SUCCESS with Salesforce's own row
count, whatever its kind or route; every skipped object has its reason; progress is printed as runs go; no load
run executes the Id sweep. Monthly partitions keep each run's bookkeeping small (issue 22 is about the daily ones).
partition_start is set in 2025 while the emulator's records go back to 2008: every record lands all the same (the
first partition is open at its start), and the long tail at this scale holds objects with no record at all."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from sf_pipeline.cli.demo import print_summary, run_org
from sf_pipeline.defs.assets import asset_key
from sf_pipeline.defs.sensors import INITIAL_LOAD_SENSOR

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it


def test_a_discovered_org_loads_every_object_through_the_daemon(
    tmp_path: Path, emulator_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    overrides = tmp_path / "catalog.yaml"
    overrides.write_text(
        "defaults: {partition_start: '2025-06-01', partition_granularity: monthly}\n"
        "objects: [{name: Account, weight: 100}, {name: Contact, weight: 40}]\n"
    )
    monkeypatch.setenv("SF_PIPELINE_CATALOG", str(overrides))
    monkeypatch.setenv("SF_EMULATOR_CACHE", str(emulator_cache))
    result = run_org(tmp_path / "demo", scale=0.002, objects=20, timeout_s=900)
    print_summary(result, tmp_path / "demo")
    out = capsys.readouterr().out

    names = [o.name for o in result.outcomes]
    assert len(names) == 17 and {n for n, _ in result.skipped} == {"OpportunityChangeEvent", "GolfYankee3__e", "Vote"}
    assert all(reason for _, reason in result.skipped)
    for outcome in result.outcomes:
        assert outcome.ok, (
            f"{outcome.name}: {outcome.status}, {outcome.rows} rows, Salesforce {outcome.salesforce_rows}"
        )
    assert sum(o.salesforce_rows for o in result.outcomes) > 1_500
    # a step's start is printed when a poll (every second) sees it: a small object's can end in between
    assert "[17/17]" in out and "loading " in out and "17/17 objects loaded with Salesforce's row count" in out
    assert "Skipped (3):" in out and "Vote: needs a filter" in out

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "demo" / "dagster_home")))
    # heaviest first: the first run started its steps in weight order (read from the run's own events, so a
    # retried step, which lands later, does not blur it)
    initial = [r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == INITIAL_LOAD_SENSOR]
    first_run = min(initial, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)
    starts = instance.all_logs(first_run.run_id, of_type=dg.DagsterEventType.STEP_START)
    steps = [e.step_key for e in sorted(starts, key=lambda e: e.timestamp)]
    assert steps[:2] == [asset_key("Account").to_python_identifier(), asset_key("Contact").to_python_identifier()]
    routes = {}
    for name in ("CaseStatus", "ContactTag", "AccountFeed", "ContractHistory", "NovemberFoxtrot2__x"):
        event = instance.get_latest_materialization_event(asset_key(name))
        routes[name] = event.asset_materialization.metadata["route"].value
    assert routes["CaseStatus"] == routes["AccountFeed"] == "rest", "routed to REST by discovery"
    # Bulk objects this small are read by REST, by size (the Bulk refusal's demotion: test_org_scale.py)
    for name in ("ContactTag", "ContractHistory", "NovemberFoxtrot2__x"):
        assert routes[name].startswith("rest (by size: "), routes[name]
    for run in instance.get_runs():
        steps = {e.step_key for e in instance.all_logs(run.run_id) if e.is_dagster_event and e.step_key}
        assert "salesforce_ids_sweep_check" not in steps, f"{run.run_id} ran the Id sweep"
