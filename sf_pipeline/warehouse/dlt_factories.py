"""dlt's destination factories, answering their capabilities once.

dlt asks a destination factory for its capabilities some thirty times in one ``pipeline.run`` (normalize, the
loader's storage, each job's staging check, ...), and each question without a configuration resolves the
factory's whole configuration again from every provider (environment, TOML files, every section): ~5 ms
each, for the destination and for its staging, or most of dlt's own work in a one-row window's load
(docs/performance.md: "dlt's own work, once a factory"). A factory's explicit arguments are fixed when it is
built, so its answer for a naming convention cannot change while it lives; the first one is kept and a copy
handed out (dlt's callers extend the lists in it). Asked with a configuration, dlt's own path runs unchanged.

The staging bucket's client (``StagingBucketClient``) also checks a dataset's ``init`` file once a process, not
once a load (each load's pipeline is a fresh one, and the check is three blob requests).

The classes keep dlt's names, so dlt's configuration sections (``destination.filesystem``, ...) are the same.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

from dlt.common.destination import DestinationCapabilitiesContext
from dlt.destinations import duckdb as _duckdb
from dlt.destinations import filesystem as _filesystem
from dlt.destinations import snowflake as _snowflake
from dlt.destinations.impl.filesystem.filesystem import FilesystemClient


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


class StagingBucketClient(FilesystemClient):
    """dlt's filesystem client for a staging bucket, whose dataset storage is initialized once a process.

    dlt initializes it before every load: a HEAD of the dataset's ``init`` file (its layout version), then a
    HEAD and a GET to read it, or the folder and the file written on a first load. A staging bucket's version
    matters to dlt only there (its load jobs read it for a destination bucket alone), and once one load of the
    process has seen or written it, it stays: the later loads skip the three requests. A truncation (the
    tables' files deleted) still runs every time."""

    _initialized: ClassVar[set[tuple[str, str]]] = set()  # (account URL, init file); two threads may both check

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        key = (self.fs_client.service_client.url, self.init_file_path)
        if truncate_tables or not self.config.as_staging_destination or key not in self._initialized:
            super().initialize_storage(truncate_tables)
            self._initialized.add(key)


class filesystem(CapabilitiesOnce, _filesystem):  # noqa: N801 - dlt's destination factories are lower case
    """``dlt.destinations.filesystem`` (the staging bucket), capabilities resolved once, its dataset initialized
    once a process (``StagingBucketClient``)."""

    @property
    def client_class(self) -> type[FilesystemClient]:
        return StagingBucketClient


class duckdb(CapabilitiesOnce, _duckdb):  # noqa: N801
    """``dlt.destinations.duckdb``, capabilities resolved once."""


class snowflake(CapabilitiesOnce, _snowflake):  # noqa: N801
    """``dlt.destinations.snowflake``, capabilities resolved once."""
