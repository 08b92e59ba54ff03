"""DESTINATION: the warehouse side of a load - the dlt destination and staging area it uses, the DDL the
pipeline owns (a full refresh drops only catalog objects' tables), row counts for checks, Id comparisons,
table and column names, and the cleanup of staged files once loaded. Plain Python, no Dagster.

May import ``errors``, ``common`` and (for identifier checks only) ``salesforce.soql``; never ``datapath``,
``defs`` or dagster.

Destinations: ``duckdb`` (the embedded default, a local file) or ``snowflake``. Staging: none, a local folder
(Snowflake then receives files by ``PUT`` into the table's internal stage), or ``az://container/prefix``
through adlfs, from which Snowflake runs ``COPY INTO``.

client.py: ``Warehouse``; settings.py: the settings; staging.py: staged files; ddl.py: DDL and counts;
naming.py: Salesforce names to table and column names.
"""

from ..errors import WarehouseConfigError
from .client import RunColumnMaps, Warehouse, duckdb_config, duckdb_connection, duckdb_destination
from .ddl import IdComparison, count_spans, drop_object_table, normalize, qualified, table_exists
from .settings import FILE_FORMATS, DestinationKind, FileFormat, SnowflakeSettings, StagingSettings
from .staging import StagedFiles

__all__ = [
    "FILE_FORMATS",
    "DestinationKind",
    "FileFormat",
    "IdComparison",
    "RunColumnMaps",
    "SnowflakeSettings",
    "StagedFiles",
    "StagingSettings",
    "Warehouse",
    "WarehouseConfigError",
    "count_spans",
    "drop_object_table",
    "duckdb_config",
    "duckdb_connection",
    "duckdb_destination",
    "normalize",
    "qualified",
    "table_exists",
]
