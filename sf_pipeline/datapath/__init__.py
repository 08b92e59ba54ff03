"""DATA PATH: one object, one window, in plain Python. Extract to CSV (``salesforce``), split into chunk
files (``split``), read each chunk as typed Arrow batches (``arrow_types``, ``read``), load chunk by chunk
through a fresh dlt pipeline (``load``); ``sync`` puts it together (windows, full refreshes, schema drift)
with the extract running alongside the load (``overlap``) in a work folder a dead run resumes from
(``workspace``); ``reconcile`` is the Id sweep.

May import ``errors``, ``common``, ``salesforce``, ``warehouse`` and ``catalog``; never dagster.
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
