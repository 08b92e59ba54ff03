"""dlt's destination factories, answering their capabilities once.

dlt asks a destination factory for its capabilities some thirty times in one ``pipeline.run`` (normalize, the
loader's storage, each job's staging check, ...), and each question without a configuration resolves the
factory's whole configuration again from every provider (environment, TOML files, every section): ~5 ms
each, for the destination and for its staging, or most of dlt's own work in a one-row window's load
(docs/performance.md: "dlt's own work, once a factory"). A factory's explicit arguments are fixed when it is
built, so its answer for a naming convention cannot change while it lives; the first one is kept and a copy
handed out (dlt's callers extend the lists in it). Asked with a configuration, dlt's own path runs unchanged.

The classes keep dlt's names, so dlt's configuration sections (``destination.filesystem``, ...) are the same.
"""

from __future__ import annotations

import copy
from typing import Any

from dlt.common.destination import DestinationCapabilitiesContext
from dlt.destinations import duckdb as _duckdb
from dlt.destinations import filesystem as _filesystem
from dlt.destinations import snowflake as _snowflake


class CapabilitiesOnce:
    """A mixin for a dlt destination factory: ``capabilities()`` without a configuration resolved once per
    naming convention."""

    def capabilities(self, config: Any = None, naming: Any = None) -> DestinationCapabilitiesContext:
        if config is not None:
            return super().capabilities(config, naming)  # type: ignore[misc]
        key = None if naming is None else (type(naming), naming.max_length)
        known: dict[Any, DestinationCapabilitiesContext] = self.__dict__.setdefault("_capabilities_once", {})
        if key not in known:
            known[key] = super().capabilities(None, naming)  # type: ignore[misc]
        return copy.deepcopy(known[key])


class filesystem(CapabilitiesOnce, _filesystem):  # noqa: N801 - dlt's destination factories are lower case
    """``dlt.destinations.filesystem`` (the staging bucket), capabilities resolved once."""


class duckdb(CapabilitiesOnce, _duckdb):  # noqa: N801
    """``dlt.destinations.duckdb``, capabilities resolved once."""


class snowflake(CapabilitiesOnce, _snowflake):  # noqa: N801
    """``dlt.destinations.snowflake``, capabilities resolved once."""
