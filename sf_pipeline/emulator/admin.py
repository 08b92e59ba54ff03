"""The emulator's own admin endpoints: faults and request statistics."""

from __future__ import annotations

import json
import logging

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
        if path == "/__emulator__/stats" and method == "GET":
            with st.lock:
                return self._json(200, {"requests": dict(st.requests), "jobs": len(st.jobs)})
        if path == "/__emulator__/stats" and method == "DELETE":
            with st.lock:
                st.requests.clear()
            return self._json(200, {})
        raise ApiError(404, "NOT_FOUND", path)
