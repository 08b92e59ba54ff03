"""A few rows of one object's table under each catalog policy (docs/data.md, issue 33's closing note).

Starts the emulator org in this process, loads Lead through Dagster runs of its asset into a DuckDB file once
per policy (remove, deletes: flag with hash_fields, history), edits, soft-deletes, undeletes and hard-deletes
a few records, loads the window again, runs the Id sweep, and prints those records' rows as markdown.

    .venv/bin/python scripts/policy_tables.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf_pipeline.catalog import load_catalog  # noqa: E402
from sf_pipeline.defs.assets import asset_key, build_assets, partitions_def  # noqa: E402
from sf_pipeline.defs.resources import PipelineSettings, SalesforceResource, WarehouseResource  # noqa: E402
from sf_pipeline.defs.sweep import ID_SWEEP_CHECK, SWEEP_JOB, build_id_sweep  # noqa: E402
from sf_pipeline_tests.helpers import running_emulator  # noqa: E402
from sf_testbed.emulator import EmulatorConfig  # noqa: E402

POLICIES = {
    "deletes: remove (default)": "",
    "deletes: flag, hash_fields: [Email]": "    deletes: flag\n    hash_fields: [Email]\n",
    "history: true": "    history: true\n",
}
COLUMNS = {
    "deletes: remove (default)": "id, company, email, is_deleted",
    "deletes: flag, hash_fields: [Email]": "id, company, left(email, 16) || '...' AS email, is_deleted, _sf_deleted, "
    "strftime(_sf_deleted_at, '%H:%M:%S') AS _sf_deleted_at",
    "history: true": "id, company, strftime(_sf_valid_from, '%H:%M:%S') AS _sf_valid_from, "
    "strftime(_sf_valid_to, '%H:%M:%S') AS _sf_valid_to",
}


def run(work: Path, policy: str, lines: str) -> None:
    with running_emulator(EmulatorConfig(port=0, rows={"Lead": 300}, cache_dir=work / "cache")) as org:
        path = work / "catalog.yaml"
        path.write_text(f'defaults:\n  partition_start: "2024-01-01"\nobjects:\n  - name: Lead\n{lines}')
        catalog = load_catalog(path)
        asset = next(a for a in build_assets(catalog) if asset_key("Lead") in a.keys)
        db = work / "sf.duckdb"
        resources = {
            "salesforce": SalesforceResource(login_url=org.url),
            "warehouse": WarehouseResource(duckdb_path=str(db)),
            "pipeline_settings": PipelineSettings(work_dir=str(work / "w"), hash_key="docs-example-key"),
        }
        keys = partitions_def(catalog).get_partition_keys()

        def load(span: list[str]) -> None:
            tags = {ASSET_PARTITION_RANGE_START_TAG: span[0], ASSET_PARTITION_RANGE_END_TAG: span[-1]}
            with dg.instance_for_test() as instance:
                assert dg.materialize([asset], instance=instance, resources=resources, tags=tags).success

        load(keys)
        live = sorted(org.truth_ids("Lead"))
        deleted_before = sorted(set(org.truth_ids("Lead", include_deleted=True)) - set(live))
        edited, soft, hard, undeleted = live[0], live[1], live[2], deleted_before[0]
        org.change("Lead", update=[{"Id": edited, "Company": "Renamed Inc"}], delete=[soft], undelete=[undeleted])
        org.change("Lead", hard_delete=[hard])
        load(keys[-1:])
        checks, _ = build_id_sweep(catalog)
        job = dg.define_asset_job(
            SWEEP_JOB, selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset_key("Lead"), ID_SWEEP_CHECK))
        )
        defs = dg.Definitions(assets=[asset], asset_checks=[checks], jobs=[job], resources=resources)
        with dg.instance_for_test() as instance:
            assert defs.resolve_job_def(SWEEP_JOB).execute_in_process(instance=instance).success
        role = {edited: "edited", soft: "soft-deleted", hard: "hard-deleted", undeleted: "undeleted"}
        ids = ", ".join(f"'{i}'" for i in role)
        with duckdb.connect(str(db), read_only=True) as con:
            cur = con.execute(f"SELECT {COLUMNS[policy]} FROM salesforce.lead WHERE id IN ({ids}) ORDER BY 1, 3")
            names = [d[0] for d in cur.description]
            found = cur.fetchall()
    print(f"\n**{policy}**\n\n| record | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1))
    for row in found:
        print(f"| {role[row[0]]} | " + " | ".join("null" if v is None else str(v) for v in row) + " |")
    missing = sorted(set(role) - {r[0] for r in found})
    if missing:
        print(f"| ({', '.join(role[i] for i in missing)}: no row) |" + " |" * len(names))


def main() -> None:
    for policy, lines in POLICIES.items():
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), policy, lines)


if __name__ == "__main__":
    main()
