"""Files dlt staged in a bucket: listed and deleted once the warehouse has loaded them, or when a dead
run left them behind."""

from __future__ import annotations

from .settings import StagingSettings


class StagedFiles:
    """The staged files of one table: listed and removed through adlfs (dlt leaves them in the bucket).

    dlt's default layout puts a table's files at ``<bucket>/<dataset>/<table>/<load_id>.<file_id>.<ext>``.
    """

    def __init__(self, staging: StagingSettings, dataset: str, table: str) -> None:
        self.fs = staging.filesystem()
        self.folder = f"{staging.dataset_prefix(dataset)}/{table}"

    def list(self, load_id: str | None = None) -> list[str]:
        self.fs.invalidate_cache()
        try:
            names = self.fs.find(self.folder)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if load_id is None or n.rsplit("/", 1)[-1].startswith(f"{load_id}."))

    def remove(self, load_id: str | None = None) -> int:
        """Delete the files of one load (or all of the table's); returns how many were deleted."""
        names = self.list(load_id)
        if names:
            self.fs.rm(names)
        return len(names)
