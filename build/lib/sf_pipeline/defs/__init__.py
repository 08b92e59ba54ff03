"""Dagster glue: resources, assets, checks, jobs, sensors and schedules over the plain data path."""
