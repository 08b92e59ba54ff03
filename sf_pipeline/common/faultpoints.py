"""Named points on the data path where a test can make a run fail or stop, to prove recovery.

Off unless ``SF_PIPELINE_FAULTPOINTS`` is set (never in production): a comma-separated list of
``point[:object][@n]=action``, where the point is one of ``POINTS``, ``@n`` picks the n-th time the
point is reached in this process (default: the first), and the action is ``raise`` (an ``InjectedFault``)
or ``stop`` (the process sends itself SIGSTOP, so that a test can SIGKILL it at exactly that point).

With ``SF_PIPELINE_FAULTPOINTS_ONCE`` naming a folder, each rule fires once across all processes (a file
there marks it fired), so the retry of a run killed at a point runs through it.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections import Counter

from ..errors import InjectedFault, SettingsError

ENV = "SF_PIPELINE_FAULTPOINTS"
ONCE_ENV = "SF_PIPELINE_FAULTPOINTS_ONCE"
POINTS = {
    "page_written",  # an extract page is complete on disk (others may still be downloading)
    "chunk_written",  # the splitter has written a chunk file
    "split_done",  # every chunk is on disk, nothing loaded yet
    "batch_read",  # a chunk is being loaded: one of its record batches went to dlt
    "chunk_loaded",  # a chunk is in the warehouse, its staged files not yet deleted
}
ACTIONS = {"raise", "stop"}
_hits: Counter[tuple[str, str]] = Counter()
_hits_lock = threading.Lock()  # download threads reach page_written at once


@functools.lru_cache(maxsize=8)
def _parse(spec: str) -> tuple[tuple[str, str | None, int, str], ...]:
    rules = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, _, action = item.partition("=")
        target, _, nth = target.partition("@")
        point, _, sobject = target.partition(":")
        if point not in POINTS or action not in ACTIONS:
            raise SettingsError(
                f"{ENV}: {item!r} is not point[:object][@n]=action with a point in {sorted(POINTS)} "
                f"and an action in {sorted(ACTIONS)}"
            )
        rules.append((point, sobject or None, int(nth or 1), action))
    return tuple(rules)


def faultpoint(point: str, sobject: str) -> None:
    """Off (one environment lookup) unless a test set ``SF_PIPELINE_FAULTPOINTS``."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    with _hits_lock:
        _hits[(point, sobject)] += 1
        hit = _hits[(point, sobject)]
    for rule_point, rule_object, nth, action in _parse(spec):
        if rule_point == point and rule_object in (None, sobject) and hit == nth:
            if not _first_time(f"{rule_point}-{rule_object}-{nth}-{action}"):
                continue
            if action == "stop":
                os.kill(os.getpid(), signal.SIGSTOP)
                # the stop reaches the process's other threads a moment later (seen on a loaded machine: the
                # extract finished and deleted its job first); this thread must never go past the point
                threading.Event().wait()
            else:
                raise InjectedFault(f"[{sobject}] injected fault at {point} (hit {nth}, {ENV})")


def _first_time(rule: str) -> bool:
    folder = os.environ.get(ONCE_ENV)
    if not folder:
        return True
    try:
        with open(os.path.join(folder, rule), "x"):
            return True
    except FileExistsError:
        return False


def reset() -> None:
    with _hits_lock:
        _hits.clear()
