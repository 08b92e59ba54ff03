"""sf_pipeline: Salesforce objects into Snowflake (or DuckDB) through Bulk API 2.0, dlt and Dagster.

The flow, one package each, every package importing only those before it:
``common`` (leaves: CSV scanning, memory, sizing) -> ``salesforce`` (SOURCE: Bulk API 2.0 to CSV files) ->
``warehouse`` (DESTINATION: dlt destination, staging, DDL, names) -> ``catalog`` (which objects, how each
loads) -> ``datapath`` (split, type, load: one object, one window) -> ``defs`` (the Dagster code location that
``definitions.py`` assembles) -> ``deployment`` (Dagster on one host) -> ``cli``. ``emulator`` is a local org
and imports none of them.
"""
