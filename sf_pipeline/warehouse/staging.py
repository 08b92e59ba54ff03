"""Files dlt staged in a bucket: deleted once the warehouse has loaded them, or when a dead run left them
behind.

Each blob request is a round trip to Azure on a small window's load, so they are few and off the load's path
where they can be: an object's folders (its table and its full refresh's shadow) listed once before its load,
each staged file deleted by name as soon as the warehouse has copied it (while the merge that follows runs),
the rest of what dlt reports it staged deleted after the load (no listing), and no existence check before a
delete."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from fsspec.core import strip_protocol

from .settings import StagingSettings


class StagedFiles:
    """The staged files of one dataset: listed and removed through adlfs (dlt leaves them in the bucket).

    dlt's default layout puts a table's files at ``<bucket>/<dataset>/<table>/<load_id>.<file_id>.<ext>``.
    """

    def __init__(self, staging: StagingSettings, dataset: str) -> None:
        self.fs = staging.filesystem()
        self.dataset_folder = staging.dataset_prefix(dataset)
        self._deleting: dict[str, Future[Any]] = {}  # files deleted once copied, by name

    @contextlib.contextmanager
    def deleted_once_copied(self, destination: Any) -> Iterator[None]:
        """While dlt loads into ``destination``: each file the warehouse copies from the bucket is deleted at once,
        on adlfs's event loop, while the load goes on (a merge reads the staging table, not the file), where the
        destination tells (the run's Snowflake session, ``snowflake_session.SnowflakeSession.on_copied``)."""
        session = getattr(destination, "session", None)
        if session is None:
            yield
            return
        session.on_copied = self._delete_soon
        try:
            yield
        finally:
            session.on_copied = None

    def remove_loaded(self, info: Any) -> int:
        """Delete the files a load staged, by the URLs dlt reports for its jobs (``LoadInfo.metrics``: a staging
        job reports where it put its file, the warehouse's COPY job none), once the deletions begun as they were
        copied are done; returns how many."""
        names = [
            strip_protocol(job.remote_url)
            for step in info.metrics.values()
            for metrics in step
            for job in metrics["job_metrics"].values()
            if job.remote_url
        ]
        begun = {name: self._deleting.pop(name) for name in names if name in self._deleting}
        for deletion in begun.values():
            deletion.result()
        return len(begun) + self._delete([name for name in names if name not in begun])

    def _delete_soon(self, url: str) -> None:
        name = strip_protocol(url)
        self._deleting[name] = asyncio.run_coroutine_threadsafe(self.fs._rm([name], expand_path=False), self.fs.loop)

    def removing_all(self, table: str, *others: str) -> Future[dict[str, int]]:
        """Begin deleting every file in the folders of ``table`` and ``others`` (tables whose names start with
        ``table``'s), listed in one request, on adlfs's event loop (the caller goes on: its extract); the
        future says how many each folder held."""
        if not all(t.startswith(table) for t in others):
            raise ValueError(f"one listing covers the folders named after {table} only, not {others}")
        return asyncio.run_coroutine_threadsafe(self._remove_all(table, (table, *others)), self.fs.loop)

    async def _remove_all(self, table: str, folders: tuple[str, ...]) -> dict[str, int]:
        # every blob under the table's prefix, in one List Blobs request a page (adlfs's ``find`` first asks
        # whether the path is a file, and asks again when nothing is found: four requests for an empty folder)
        container, path, _ = self.fs.split_path(f"{self.dataset_folder}/{table}")
        found: dict[str, list[str]] = {folder: [] for folder in folders}
        for name in [f"{container}/{blob}" for blob in await self._list_blobs(container, path)]:
            folder, _, file = name[len(self.dataset_folder) + 1 :].partition("/")
            # a file in one of the folders: not a table whose name merely starts the same (Account,
            # AccountContactRelation), nor the folder's own entry (a hierarchical-namespace account lists it)
            if folder in found and file:
                found[folder].append(name)
        for files in found.values():
            if files:
                await self.fs._rm(files, expand_path=False)  # the names were just listed: no HEAD for each first
        return {folder: len(files) for folder, files in found.items()}

    async def _list_blobs(self, container: str, path: str) -> list[str]:
        async with self.fs.service_client.get_container_client(container) as client:
            try:
                return [blob.name async for blob in client.list_blobs(name_starts_with=path)]
            except ResourceNotFoundError:  # no container: nothing staged (dlt's own error names it when it stages)
                return []

    def _delete(self, names: list[str]) -> int:
        if names:
            self.fs.rm(names, expand_path=False)  # the names are files just listed: no HEAD for each first
        return len(names)
