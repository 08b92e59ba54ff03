"""The memory this process may use, and the sizes a load derives from it.

The limit is the process's own memory cgroup's (cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``,
the smallest along its path: a pod's limit may sit on a parent group), else the machine's RAM;
a setting (``LoadSettings.memory_limit_mb``) overrides what is found. From what is left of it (the limit less what the
process already holds, less a margin for the page cache the kernel must keep and for memory outside the
caps) a load takes DuckDB's cap, its thread count, the chunk size, the CSV block size, how many blocks are
parsed ahead and how many result pages download at once. Any of them set explicitly wins.

``plan_sizes`` is pure (tested on figures); ``find_memory_limit`` reads the cgroup files (tested on a fake
tree for v2 and in a real v1 cgroup); ``size_load`` does both for this process as a load starts, logs the
outcome, and is the one place sizes come from: the load passes them down (``datapath.sync.SizedLoad``). Work
outside a load that is not handed a load's sizes (a connection check, a library call with default options)
takes the smallest sizes a load would (``UNSIZED``), never a second plan of its own.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from ..errors import PodTooSmallError

log = logging.getLogger(__name__)

MiB = 2**20
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number; anything this large is no limit
UNLIMITED = 2**60


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str  # where it was found: a cgroup file, a setting, or the machine's RAM

    @property
    def mib(self) -> float:
        return self.bytes / MiB


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of each cgroup mount in /proc/<pid>/mountinfo."""
    mounts = []
    for line in mountinfo.splitlines():
        head, _, tail = line.partition(" - ")
        fields, after = head.split(), tail.split()
        if len(fields) >= 5 and len(after) >= 3 and after[0] in ("cgroup", "cgroup2"):
            mounts.append((fields[3], fields[4], after[0], set(after[2].split(","))))
    return mounts


def _read_limit(path: Path) -> int | None:
    """A limit file's value; None for "max", an absurdly large value, or a file that is not there."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max" or not text.isdigit() or int(text) >= UNLIMITED:
        return None
    return int(text)


def cgroup_memory_limit(proc: Path = Path("/proc/self")) -> MemoryLimit | None:
    """The tightest memory limit on the process's own cgroup and its ancestors, or None if none is set.

    A v1 memory controller is used where one is mounted (hybrid hosts mount both), else the v2 hierarchy.
    Inside a cgroup namespace the process's path is relative to the mount's root, as read here."""
    try:
        groups = (proc / "cgroup").read_text().splitlines()
        mounts = _mounts((proc / "mountinfo").read_text())
    except OSError:
        return None
    v1 = next((line.split(":", 2)[2] for line in groups if "memory" in line.split(":")[1].split(",")), None)
    v2 = next((line.split(":", 2)[2] for line in groups if line.startswith("0::")), None)
    if v1 is not None:
        mount = next((m for m in mounts if m[2] == "cgroup" and "memory" in m[3]), None)
        path, filename, version = v1, "memory.limit_in_bytes", "v1"
    else:
        mount = next((m for m in mounts if m[2] == "cgroup2"), None)
        path, filename, version = v2, "memory.max", "v2"
    if mount is None or path is None:
        return None
    root, mount_point = mount[0], Path(mount[1])
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    group = (mount_point / relative).resolve() if relative != "." else mount_point
    best: MemoryLimit | None = None
    while True:
        value = _read_limit(group / filename)
        if value is not None and (best is None or value < best.bytes):
            best = MemoryLimit(value, f"cgroup {version} {group / filename}")
        if group == mount_point or mount_point not in group.parents:
            return best
        group = group.parent


def find_memory_limit(setting_mb: int | None = None, proc: Path = Path("/proc/self")) -> MemoryLimit:
    """The limit a load sizes itself by: the setting, else the cgroup's, else the machine's RAM."""
    ram = MemoryLimit(psutil.virtual_memory().total, "the machine's RAM (no cgroup limit found)")
    if setting_mb:
        return MemoryLimit(setting_mb * MiB, "SF_PIPELINE_MEMORY_LIMIT_MB")
    found = cgroup_memory_limit(proc)
    return found if found is not None and found.bytes < ram.bytes else ram


@dataclass(frozen=True)
class SizeSettings:
    """What a user set explicitly (``LoadSettings.size_settings``); None for each size derived from the limit."""

    memory_limit_mb: int | None = None  # overrides the limit found
    duckdb_memory_limit: str | None = None  # e.g. "192MB"
    chunk_bytes: int | None = None
    download_concurrency: int | None = None  # result pages in flight


@dataclass(frozen=True)
class LoadSizes:
    """The sizes one load runs with, and where they came from."""

    limit: MemoryLimit
    in_use_mb: float  # what the process held when the load started
    spare_mb: float  # what the sizes below were cut from
    duckdb_memory_limit: str  # DuckDB's cap, as DuckDB reads it ("160MB")
    duckdb_threads: int
    chunk_bytes: int  # the chunk size aimed at
    read_block: int  # bytes of CSV per Arrow batch
    read_ahead: int  # batches parsed ahead of the one being written
    pages_in_flight: int  # result pages downloading at once
    explicit: tuple[str, ...] = ()  # which of them a setting gave

    def describe(self) -> str:
        given = f"; set explicitly: {', '.join(self.explicit)}" if self.explicit else ""
        return (
            f"memory limit {self.limit.mib:.0f} MiB ({self.limit.source}), {self.in_use_mb:.0f} MiB in use, "
            f"{self.spare_mb:.0f} MiB to size by: DuckDB {self.duckdb_memory_limit} with {self.duckdb_threads} "
            f"thread(s), chunks of {self.chunk_bytes / MiB:.0f} MiB, {self.read_block // 1024} KiB CSV blocks "
            f"{self.read_ahead} ahead, {self.pages_in_flight} page(s) in flight{given}"
        )


# The shape of the plan, each share measured in bench/ (bench/README "Fitting the pod"):
MARGIN_SHARE = 0.15  # of the limit: page cache the kernel must keep (dirty pages of files written), allocator slack
MARGIN_MIN_MB = 32
DUCKDB_SHARE = 0.45  # of the spare memory
DUCKDB_MIN_MB, DUCKDB_MAX_MB = 48, 1024
CHUNK_PER_DUCKDB_MB = 2.5  # chunk MiB per MiB of DuckDB cap (a merge's join spills to disk beyond it)
CHUNK_MIN_MB, CHUNK_MAX_MB = 64, 1024
BLOCK_SMALL, BLOCK_LARGE = 1 * MiB, 2 * MiB
PAGES_SMALL, PAGES_LARGE = 2, 4  # result pages downloading at once
LARGE_AT_MB = 256  # spare memory from which blocks are 2 MiB and parsed two ahead
# A load is refused when the limit leaves less than this beyond the process's private memory and the margin.
# Private (anonymous) memory, not RSS: RSS also counts the code's file-backed pages, whose resident share follows
# the page cache's state (109 to 141 MiB for the same command here), and the refusal must not. Measured
# (bench/sync_pod_bench.py, a 200,000-row Account sync, 64 MiB private before the load): SIGKILLed at 180 MiB
# (84 spare), passed at 190 (94), with the page cache cold or warm.
MIN_SPARE_MB = 90


def plan_sizes(limit: MemoryLimit, in_use_bytes: int, cpus: int, given: SizeSettings | None = None) -> LoadSizes:
    """The sizes for a load that starts with ``in_use_bytes`` held, under ``limit``, on ``cpus`` cores."""
    given = given or SizeSettings()
    margin = max(MARGIN_MIN_MB, limit.mib * MARGIN_SHARE)
    in_use = in_use_bytes / MiB
    spare = max(0.0, limit.mib - in_use - margin)
    duckdb_mb = int(min(DUCKDB_MAX_MB, max(DUCKDB_MIN_MB, spare * DUCKDB_SHARE)))
    large = spare >= LARGE_AT_MB
    sizes = LoadSizes(
        limit=limit,
        in_use_mb=in_use,
        spare_mb=spare,
        duckdb_memory_limit=f"{duckdb_mb}MB",
        duckdb_threads=max(1, min(cpus, 4)) if large else 1,
        chunk_bytes=int(min(CHUNK_MAX_MB, max(CHUNK_MIN_MB, duckdb_mb * CHUNK_PER_DUCKDB_MB)) * MiB),
        read_block=BLOCK_LARGE if large else BLOCK_SMALL,
        read_ahead=2 if large else 1,
        pages_in_flight=PAGES_LARGE if large else PAGES_SMALL,
    )
    explicit = {
        "duckdb_memory_limit": given.duckdb_memory_limit,
        "chunk_bytes": given.chunk_bytes,
        "pages_in_flight": given.download_concurrency,
    }
    explicit = {k: v for k, v in explicit.items() if v}
    return replace(sizes, **explicit, explicit=tuple(explicit))


def minimum_limit_mb(private_mb: float) -> int:
    """The smallest limit under which a load that starts holding ``private_mb`` of private memory still has
    ``MIN_SPARE_MB`` beyond the margin (the margin grows with the limit, so this solves for it)."""
    needed = private_mb + MIN_SPARE_MB
    return math.ceil(max(needed + MARGIN_MIN_MB, needed / (1 - MARGIN_SHARE)))


def size_load(sobject: str, given: SizeSettings | None = None) -> LoadSizes:
    """The sizes for a load starting now in this process, logged with the limit they come from; a limit too
    small for any load fails now, naming the minimum, rather than be SIGKILLed by the kernel mid-load."""
    given = given or SizeSettings()
    limit = find_memory_limit(given.memory_limit_mb)
    memory = psutil.Process().memory_info()
    sizes = plan_sizes(limit, memory.rss, os.cpu_count() or 1, given)
    private_mb = (memory.rss - memory.shared) / MiB
    log.info("[%s] %s; %.0f MiB of what is in use private", sobject, sizes.describe(), private_mb)
    margin = max(MARGIN_MIN_MB, limit.mib * MARGIN_SHARE)
    if limit.mib - private_mb - margin < MIN_SPARE_MB:
        raise PodTooSmallError(
            f"[{sobject}] memory limit {limit.mib:.0f} MiB ({limit.source}) is too small to load: the process "
            f"already holds {private_mb:.0f} MiB of its own and a load needs {MIN_SPARE_MB} MiB more beyond a "
            f"margin of {margin:.0f} MiB; give the pod at least {minimum_limit_mb(private_mb)} MiB"
        )
    return sizes


@dataclass(frozen=True)
class Unsized:
    """What work outside a sized load takes where no load's sizes reach it: the smallest a load would."""

    duckdb_memory_limit: str = f"{DUCKDB_MIN_MB}MB"
    chunk_bytes: int = CHUNK_MIN_MB * MiB
    pages_in_flight: int = PAGES_SMALL


UNSIZED = Unsized()
