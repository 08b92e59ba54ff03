"""Freed C-heap memory goes back to the OS between chunks (glibc's malloc_trim), measured on this process."""

from __future__ import annotations

import gc

import pytest

from sf_pipeline.common.memory import release_freed_memory, rss_mb

pytestmark = pytest.mark.e2e  # a Dagster instance with its daemon, processes or a pod: make test-fast skips it


def test_release_freed_memory_returns_freed_heap_to_the_os() -> None:
    blocks = [bytes(4000) + bytes(i % 7) for i in range(50_000)]  # ~200 MB of malloc'd (not pymalloc) objects
    kept = blocks[::20]  # a few survivors all over the heap: it cannot shrink from its top
    del blocks
    gc.collect()
    freed_but_held = rss_mb()
    release_freed_memory()
    released = rss_mb()
    assert released < freed_but_held - 100, (freed_but_held, released)
    assert len(kept) == 2_500
