"""The emulator's own admin endpoints: faults, schema and record changes made now, the API budget, the formula
clock, and request statistics. ``ROUTES`` maps each (method, path) to the handler that serves it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .faults import Fault
from .state import ApiError, EmulatorState

PREFIX = "/__emulator__/"


class AdminEndpoints:
    state: EmulatorState

    def _admin(self, method: str, path: str) -> None:
        handler = ROUTES.get((method, path.removeprefix(PREFIX)))
        if handler is None:
            raise ApiError(404, "NOT_FOUND", path)
        status, body = handler(self.state, json.loads(self._body() or b"{}") if method == "POST" else {})
        return self._json(status, body)


Reply = tuple[int, Any]


def advance_clock(st: EmulatorState, body: dict) -> Reply:
    """Move the org's clock on by ``advance_s`` seconds (never back): what the org answers about "now" (the
    replication resources' covered minute, a change's SystemModstamp) follows it, so a test need not wait."""
    step = float(body.get("advance_s", 0))
    if step < 0:
        raise ApiError(400, "INVALID_CLOCK", "the clock only moves on")
    with st.lock:
        st.clock_offset_s += step
    return 200, {"now_ms": int(st.now() * 1000)}


def add_faults(st: EmulatorState, body: Any) -> Reply:
    for spec in body if isinstance(body, list) else [body]:
        try:
            st.faults.add(Fault(**spec))
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "INVALID_FAULT", str(exc)) from exc
    return 200, st.faults.describe()


def clear_faults(st: EmulatorState, _: Any) -> Reply:
    """No more faults, and none still holding: a job kept InProgress by ``slow_job`` is done at its next poll
    (a test holds a run in progress for as long as it needs, then lets it go)."""
    st.faults.clear()
    with st.lock:
        for job in st.jobs.values():
            job.slow_polls = 0
    return 200, []


def list_faults(st: EmulatorState, _: Any) -> Reply:
    return 200, st.faults.describe()


def change_schema(st: EmulatorState, body: dict) -> Reply:
    model = st.obj(body.get("object", ""))
    try:
        with st.lock:
            model.change_schema(body.get("add", []), body.get("remove", []), body.get("retype", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "INVALID_SCHEMA_CHANGE", str(exc)) from exc
    return 200, model.describe()


def reset_schemas(st: EmulatorState, _: Any) -> Reply:
    with st.lock:
        for model in st.org.objects.values():
            model.reset_schema()
    return 200, {}


def change_records(st: EmulatorState, body: dict) -> Reply:
    model = st.obj(body.get("object", ""))
    now_ms = int(body.get("at_ms") or st.now() * 1000)
    try:
        with st.lock:
            return 200, model.apply_changes(body, now_ms)
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "INVALID_RECORD_CHANGE", str(exc)) from exc


def reset_records(st: EmulatorState, _: Any) -> Reply:
    with st.lock:
        for model in st.org.objects.values():
            model.live.clear()
            model.gone.clear()
            model.formula_shift = 0
    return 200, {}


def set_limits(st: EmulatorState, body: dict) -> Reply:
    """The org's daily API requests (``used``, ``limit``) and Bulk API 2.0 query jobs (``bulk_jobs_used``,
    ``bulk_jobs_limit``) as of now."""
    with st.lock:
        st.api_used = int(body.get("used", st.api_used))
        st.api_limit = int(body.get("limit", st.api_limit))
        st.bulk_jobs_used = int(body.get("bulk_jobs_used", st.bulk_jobs_used))
        st.config.bulk_jobs_limit = int(body.get("bulk_jobs_limit", st.config.bulk_jobs_limit))
        return 200, {"used": st.api_used, "limit": st.api_limit, "bulk_jobs_used": st.bulk_jobs_used}


def advance_formulas(st: EmulatorState, body: dict) -> Reply:
    with st.lock:
        for model in st.org.objects.values():
            model.formula_shift += int(body.get("advance", 1))
        return 200, {"formula_shift": model.formula_shift}


def request_stats(st: EmulatorState, _: Any) -> Reply:
    with st.lock:
        return 200, {"requests": dict(st.requests), "jobs": len(st.jobs)}


def clear_stats(st: EmulatorState, _: Any) -> Reply:
    with st.lock:
        st.requests.clear()
    return 200, {}


ROUTES: dict[tuple[str, str], Callable[[EmulatorState, Any], Reply]] = {
    ("POST", "faults"): add_faults,
    ("DELETE", "faults"): clear_faults,
    ("GET", "faults"): list_faults,
    ("POST", "schema"): change_schema,
    ("DELETE", "schema"): reset_schemas,
    ("POST", "records"): change_records,
    ("DELETE", "records"): reset_records,
    ("POST", "limits"): set_limits,
    ("POST", "formulas"): advance_formulas,
    ("POST", "clock"): advance_clock,
    ("GET", "stats"): request_stats,
    ("DELETE", "stats"): clear_stats,
}
