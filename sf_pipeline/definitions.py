"""The code location: assembles the catalog's assets, jobs, sensor, schedules and resources."""

from __future__ import annotations

import dagster as dg

from .catalog import load_catalog
from .defs.assets import build_assets
from .defs.automation import AutomationSettings
from .defs.discovery import salesforce_discovery, salesforce_weekly_discovery
from .defs.formulas import build_formula_refresh
from .defs.jobs import build_jobs
from .defs.resources import default_resources
from .defs.schedules import build_schedules
from .defs.sensors import build_change_sensor, build_initial_load_sensor
from .defs.sweep import build_id_sweep

catalog = load_catalog()
automation = AutomationSettings.from_env()
id_sweep, sweep_job = build_id_sweep(catalog)
load_jobs = build_jobs(catalog)
jobs = [*load_jobs, sweep_job]
formula_job, formula_schedule = build_formula_refresh(catalog, automation)

defs = dg.Definitions(
    assets=build_assets(catalog, automation.api_budget_floor),
    asset_checks=[id_sweep],
    jobs=[*jobs, salesforce_discovery, formula_job],
    sensors=[
        build_change_sensor(catalog, load_jobs, automation),
        build_initial_load_sensor(catalog, load_jobs, automation),
    ],
    schedules=[*build_schedules(catalog, jobs, automation), salesforce_weekly_discovery, formula_schedule],
    resources=default_resources(),
    # one process a run: an object run is one step at a time anyway, and a step process of its own would
    # hold a second copy of Dagster, dlt and pyarrow (~200 MB measured by bench/run_bench.py)
    executor=dg.in_process_executor,
)
