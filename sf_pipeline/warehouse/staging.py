"""Files dlt staged in a bucket: listed and deleted once the warehouse has loaded them, or when a dead
run left them behind.

Each blob request is a round trip to Azure on a small window's load, so the listings are few: a table's
folder once after its load, an object's folders (its table and its full refresh's shadow) in one listing
before it, and deletes of the files listed, with no existence check first."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from fsspec.asyn import sync

from .settings import StagingSettings


class StagedFiles:
    """The staged files of one table: listed and removed through adlfs (dlt leaves them in the bucket).

    dlt's default layout puts a table's files at ``<bucket>/<dataset>/<table>/<load_id>.<file_id>.<ext>``.
    """

    def __init__(self, staging: StagingSettings, dataset: str, table: str) -> None:
        self.fs = staging.filesystem()
        self.dataset_folder = staging.dataset_prefix(dataset)
        self.table = table
        self.folder = f"{self.dataset_folder}/{table}"

    def list(self, load_id: str | None = None) -> list[str]:
        names = self._names_under(self.folder + "/")
        return sorted(n for n in names if load_id is None or n.rsplit("/", 1)[-1].startswith(f"{load_id}."))

    def remove(self, load_id: str | None = None) -> int:
        """Delete the files of one load (or all of the table's); returns how many were deleted."""
        return self._delete(self.list(load_id))

    def remove_all(self, *tables: str) -> dict[str, int]:
        """Delete every file under this table's folder and under ``tables`` (folders whose names start with this
        table's), listed in one request; returns how many each folder held."""
        if not all(t.startswith(self.table) for t in tables):
            raise ValueError(f"one listing covers the folders named after {self.table} only, not {tables}")
        names = self._names_under(f"{self.dataset_folder}/{self.table}")
        found: dict[str, list[str]] = {t: [] for t in (self.table, *tables)}
        for name in names:
            folder, _, file = name[len(self.dataset_folder) + 1 :].partition("/")
            # a file in one of the folders: not a table whose name merely starts the same (Account,
            # AccountContactRelation), nor the folder's own entry (a hierarchical-namespace account lists it)
            if folder in found and file:
                found[folder].append(name)
        return {folder: self._delete(files) for folder, files in found.items()}

    def _names_under(self, prefix: str) -> list[str]:
        """Every blob whose path starts with ``prefix``, in one List Blobs request a page (adlfs's ``find`` first
        asks whether the path is a file, and asks again when nothing is found: four requests for an empty folder)."""
        container, path, _ = self.fs.split_path(prefix)
        return [f"{container}/{name}" for name in sync(self.fs.loop, self._list_blobs, container, path)]

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
