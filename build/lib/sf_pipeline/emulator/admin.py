"""The emulator's own admin endpoints: faults, schema and record changes made now, the API budget, the formula
clock, and request statistics."""

from __future__ import annotations

import json
import logging
import time

from .faults import Fault
from .state import ApiError, EmulatorState

log = logging.getLogger(__name__)


class AdminEndpoints:
    state: EmulatorState

    def _admin(self, method: str, path: str) -> None:
        st = self.state
        if path == "/__emulator__/faults" and method == "POST":
            body = json.loads(self._body() or b"{}")
            for spec in body if isinstance(body, list) else [body]:
                try:
                    st.faults.add(Fault(**spec))
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, "INVALID_FAULT", str(exc)) from exc
            return self._json(200, st.faults.describe())
        if path == "/__emulator__/faults" and method == "DELETE":
            st.faults.clear()
            return self._json(200, [])
        if path == "/__emulator__/faults" and method == "GET":
            return self._json(200, st.faults.describe())
        if path == "/__emulator__/schema" and method == "POST":
            body = json.loads(self._body() or b"{}")
            model = st.obj(body.get("object", ""))
            try:
                with st.lock:
                    model.change_schema(body.get("add", []), body.get("remove", []), body.get("retype", {}))
            except (KeyError, TypeError, ValueError) as exc:
                raise ApiError(400, "INVALID_SCHEMA_CHANGE", str(exc)) from exc
            return self._json(200, model.describe())
        if path == "/__emulator__/schema" and method == "DELETE":
            with st.lock:
                for model in st.org.objects.values():
                    model.reset_schema()
            return self._json(200, {})
        if path == "/__emulator__/records" and method == "POST":
            body = json.loads(self._body() or b"{}")
            model = st.obj(body.get("object", ""))
            now_ms = int(body.get("at_ms") or time.time() * 1000)
            try:
                with st.lock:
                    return self._json(200, model.apply_changes(body, now_ms))
            except (KeyError, TypeError, ValueError) as exc:
                raise ApiError(400, "INVALID_RECORD_CHANGE", str(exc)) from exc
        if path == "/__emulator__/records" and method == "DELETE":
            with st.lock:
                for model in st.org.objects.values():
                    model.live.clear()
                    model.gone.clear()
                    model.formula_shift = 0
            return self._json(200, {})
        if path == "/__emulator__/limits" and method == "POST":
            body = json.loads(self._body() or b"{}")
            with st.lock:
                st.api_used = int(body.get("used", st.api_used))
                st.api_limit = int(body.get("limit", st.api_limit))
                return self._json(200, {"used": st.api_used, "limit": st.api_limit})
        if path == "/__emulator__/formulas" and method == "POST":
            body = json.loads(self._body() or b"{}")
            with st.lock:
                for model in st.org.objects.values():
                    model.formula_shift += int(body.get("advance", 1))
                return self._json(200, {"formula_shift": model.formula_shift})
        if path == "/__emulator__/stats" and method == "GET":
            with st.lock:
                return self._json(200, {"requests": dict(st.requests), "jobs": len(st.jobs)})
        if path == "/__emulator__/stats" and method == "DELETE":
            with st.lock:
                st.requests.clear()
            return self._json(200, {})
        raise ApiError(404, "NOT_FOUND", path)
