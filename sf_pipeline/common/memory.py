"""Peak memory of this process (and its children): what the pipeline reports and benchmarks print."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import threading

import psutil


def peak_rss_mb() -> float:
    """The process's high-water RSS since it started (ru_maxrss, kilobytes on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class PeakRss:
    """Samples RSS in a thread while a block runs: the peak of the block, not of the whole process."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="peak-rss")

    def _sample(self) -> None:
        process = psutil.Process()
        while True:
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


def lean_arrow_allocator(decay_ms: int = 100) -> str:
    """Make Arrow hand freed memory back to the OS quickly.

    Measured on a 1 GB load (bench/): Arrow's default mimalloc pool kept the process at ~550 MB peak;
    jemalloc with a 100 ms decay peaked at ~430 MB at the same speed. Returns the pool in use.
    """
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow build without jemalloc keeps its default
        return pa.default_memory_pool().backend_name
    if pa.default_memory_pool().backend_name != "jemalloc":
        pa.set_memory_pool(pool)
    pa.jemalloc_set_decay_ms(decay_ms)
    return "jemalloc"


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``), e.g. between two chunks: a
    chunk's freed Python objects and buffers otherwise stay in the process's arenas and the next chunk's
    peak stacks on them. Does nothing where the C library has no ``malloc_trim``."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_libc = _load_libc()
