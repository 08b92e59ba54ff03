"""Freed C-heap memory goes back to the OS between chunks (glibc's malloc_trim), measured on this process."""

from __future__ import annotations

import gc

from sf_pipeline.memory import release_freed_memory, rss_mb


def test_release_freed_memory_returns_freed_heap_to_the_os() -> None:
    blocks = [bytes(1000) + bytes(i % 7) for i in range(200_000)]  # ~200 MB of malloc'd (not pymalloc) objects
    held = rss_mb()
    del blocks
    gc.collect()
    freed_but_kept = rss_mb()
    release_freed_memory()
    assert rss_mb() < min(held, freed_but_kept) - 100, (held, freed_but_kept, rss_mb())
