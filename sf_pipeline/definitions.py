"""The code location: assembles the catalog's assets, jobs, sensor, schedules and resources."""

from __future__ import annotations

import dagster as dg

from .catalog import load_catalog
from .defs.assets import build_assets
from .defs.jobs import build_jobs
from .defs.resources import default_resources
from .defs.schedules import build_schedules
from .defs.sensors import build_change_sensor

catalog = load_catalog()
jobs = build_jobs(catalog)

defs = dg.Definitions(
    assets=build_assets(catalog),
    jobs=jobs,
    sensors=[build_change_sensor(catalog, jobs)],
    schedules=build_schedules(catalog, jobs),
    resources=default_resources(),
)
