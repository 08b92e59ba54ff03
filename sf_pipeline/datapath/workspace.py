"""Each (object, window) works in a folder of its own under the work root, behind a per-object lock. A run
that dies (SIGKILL, an evicted pod) leaves it behind: the next run of the same window resumes the extract
from its complete pages and deletes the dead run's chunks and dlt packages (never loading them); the next
run of any other window of the object deletes the whole folder."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import ObjectBusyError

log = logging.getLogger(__name__)


def work_root(work_dir: Path | None = None) -> Path:
    return Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "sf_pipeline"


def window_name(since: datetime | None, until: datetime | None) -> str:
    stamp = "%Y%m%dT%H%M%S"
    return f"{since.strftime(stamp) if since else 'start'}-{until.strftime(stamp) if until else 'now'}"


@contextlib.contextmanager
def object_workspace(root: Path, sobject: str, window: str) -> Iterator[Path]:
    """Lock ``sobject``, clear what dead runs left, and yield its folder for ``window``.

    After success the folder is deleted. After a failure only the extract is kept, so that a rerun of
    the window resumes it; chunks and dlt's load packages are always deleted, never loaded again.
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{sobject}-{window}"
    lock_path = root / f"{sobject}.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ObjectBusyError(
                f"[{sobject}] another process is loading this object (it holds {lock_path})"
            ) from None
        for stale in root.glob(f"{sobject}-*"):
            if stale != folder:
                log.warning("[%s] deleting %s, left by a run that did not finish", sobject, stale)
                shutil.rmtree(stale, ignore_errors=True)
        _clear_load_state(folder, sobject)
        folder.mkdir(exist_ok=True)
        try:
            yield folder
        except BaseException:
            _clear_load_state(folder, sobject)
            raise
        shutil.rmtree(folder, ignore_errors=True)


def _clear_load_state(folder: Path, sobject: str) -> None:
    for leftover in [folder / "chunks", *folder.glob("dlt-*")]:
        if leftover.exists():
            log.warning("[%s] deleting %s, left by a run that did not finish", sobject, leftover)
            shutil.rmtree(leftover, ignore_errors=True)
