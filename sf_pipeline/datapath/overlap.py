"""The extract in a thread of its own while the loader takes the chunks its pages complete (``ChunkStream``),
so a big object's run takes about as long as the slower of the two; a loader that fails stops the extract."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..common.faultpoints import faultpoint
from ..errors import SfPipelineError
from ..salesforce import ExtractResult
from .split import Chunk, ChunkStream

log = logging.getLogger(__name__)


STOP_WAIT_S = 120.0


class OverlappedExtract:
    """Runs an extract in a thread and hands its pages, cut into chunks, to the loader as they land.

    ``chunks()`` yields each chunk as soon as its pages are on disk and raises the extract's error if it
    fails; if the loader stops early (an error, a termination), the extract is told to stop and joined
    before the exception goes on, so nothing keeps writing into a folder being cleaned up."""

    _DONE = object()

    def __init__(
        self,
        sobject: str,
        extract: Callable[[Callable[[Path, int, int], None]], ExtractResult],
        stream: ChunkStream,
    ) -> None:
        self.sobject = sobject
        self._extract = extract
        self._stream = stream
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._result: ExtractResult | None = None
        self._thread: threading.Thread | None = None
        self.records = 0
        self.split_seconds = 0.0
        self.waited_seconds = 0.0  # the loader idle, waiting for pages

    @property
    def result(self) -> ExtractResult:
        assert self._result is not None, "chunks() not consumed"
        return self._result

    def _on_page(self, path: Path, records: int, job_records: int) -> None:
        if self._stop.is_set():
            raise ExtractStopped(f"[{self.sobject}] extract stopped: the load failed")
        self._events.put((path, records, job_records))

    def _run(self) -> None:
        try:
            self._events.put((self._DONE, self._extract(self._on_page)))
        except BaseException as exc:  # noqa: BLE001 - handed to the loader's thread, raised there
            self._events.put((self._DONE, exc))

    def start(self) -> None:
        """Start the extract's thread now rather than at the first chunk asked for, so that the caller's own
        work before its load (a count in the warehouse) overlaps the extract's first requests; whoever calls
        it calls ``stop()`` if it then does not consume ``chunks()``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"extract-{self.sobject}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Tell the extract to stop and wait for it (the pages in flight finish: each is resumable); a query
        job still running is not waited for long: its thread writes nothing but complete pages and the
        manifest a rerun resumes from."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(timeout=STOP_WAIT_S)
        if self._thread.is_alive():
            log.warning("[%s] the extract is still running %.0fs after the load stopped", self.sobject, STOP_WAIT_S)

    def chunks(self) -> Iterator[Chunk]:
        self.start()
        try:
            while True:
                started = time.monotonic()
                event = self._events.get()
                self.waited_seconds += time.monotonic() - started
                if event[0] is self._DONE:
                    if isinstance(event[1], BaseException):
                        raise event[1]
                    self._result = event[1]
                    break
                yield from self._cut(lambda e=event: self._stream.add(*e))
            last = self._cut(self._stream.finish)
            faultpoint("split_done", self.sobject)
            yield from last
        finally:
            self.stop()

    def _cut(self, step: Callable[[], list[Chunk]]) -> list[Chunk]:
        started = time.monotonic()
        chunks = step()
        self.split_seconds += time.monotonic() - started
        for chunk in chunks:
            self.records += chunk.rows
            log.info(
                "[%s] chunk of %d record(s), %.1f MB (%d file(s)) ready to load",
                self.sobject,
                chunk.rows,
                chunk.bytes / 1e6,
                len(chunk.files),
            )
        return chunks


class ExtractStopped(SfPipelineError):
    """Raised in the extract's thread when the loader has given up; never reaches the caller."""
