"""DATA PATH: one object, one window, in plain Python. Extract to CSV (``salesforce``), split into chunk
files (``split``), read each chunk as typed Arrow batches (``arrow_types``, ``read``), load chunk by chunk
through a fresh dlt pipeline (``load``); ``sync`` puts it together (windows, full refreshes, schema drift)
with the extract running alongside the load (``overlap``) in a work folder a dead run resumes from
(``workspace``); ``reconcile`` is the Id sweep, ``formulas`` the formula refresh; ``row_policy`` applies an
object's catalog policies to each batch (deletes kept as a flag, hashed fields, history's version ids);
``settings`` declares the load's settings and ``configured`` runs the above with the settings models.

May import ``errors``, ``common``, ``salesforce``, ``warehouse`` and ``catalog``; never dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are resolved on first use, so that ``import sf_pipeline.datapath.split`` (``sf-pipeline split``) does
# not load dlt and pyarrow with the loader: each module loads what it uses.
_HOMES = {
    "DltSettings": "load",
    "ObjectLoader": "load",
    "table_name": "load",
    "SweepResult": "reconcile",
    "sweep_ids": "reconcile",
    "Chunk": "split",
    "SplitOptions": "split",
    "split_csv": "split",
    "SyncResult": "sync",
    "sync_object": "sync",
}

if TYPE_CHECKING:
    from .dlt_settings import DltSettings
    from .load import ObjectLoader, table_name
    from .reconcile import SweepResult, sweep_ids
    from .split import Chunk, SplitOptions, split_csv
    from .sync import SyncResult, sync_object


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


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
