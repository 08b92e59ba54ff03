"""DATA PATH: one object, one window, in plain Python - extract to CSV (``salesforce``), split into chunk
files (``split``), type each chunk as Arrow (``arrow_types``), load chunk by chunk through a fresh dlt pipeline
(``load``), and put it together with retries, full refreshes and schema drift (``sync``); the Id sweep
(``reconcile``). May import ``errors``, ``common``, ``salesforce``, ``warehouse`` and ``catalog``; never dagster.
"""

from .load import DltSettings, ObjectLoader, table_name
from .reconcile import SweepResult, sweep_ids
from .split import Chunk, SplitOptions, split_csv
from .sync import SyncResult, sync_object

__all__ = [
    "Chunk",
    "DltSettings",
    "ObjectLoader",
    "SplitOptions",
    "SweepResult",
    "SyncResult",
    "split_csv",
    "sweep_ids",
    "sync_object",
    "table_name",
]
