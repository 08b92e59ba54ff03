"""REST endpoints: sObject list, describe, and REST query/queryAll with nextRecordsUrl."""

from __future__ import annotations

import logging
import secrets
from email.utils import formatdate, parsedate_to_datetime

from .org import ObjectModel
from .results import (
    check_access,
    resolve_fields,
    select_rows,
    value_rows,
)
from .soql import parse
from .state import REST_QUERY_BATCH, ApiError, EmulatorState

log = logging.getLogger(__name__)


def json_value(sf_type: str, raw: str | None) -> object:
    """A value as the REST API sends it: JSON booleans and numbers, text for the rest, null for blanks."""
    if raw is None:
        return None
    if sf_type == "boolean":
        return raw == "true"
    if sf_type in ("int", "long"):
        return int(raw)
    if sf_type in ("double", "currency", "percent"):
        return float(raw)
    return raw


class RestEndpoints:
    state: EmulatorState

    def _route(self, method: str, version: str, rest: str, params: dict[str, str], token: str) -> None:
        st = self.state
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if parts == ["sobjects"] and method == "GET":
            if self._fault("sobjects", None, token):
                return
            models = list(st.org.objects.values())
            changed = max(o.metadata_changed for o in models)
            if self._not_modified(changed):
                return
            entries = [
                {**o.global_entry(), "urls": {"describe": f"/services/data/v{version}/sobjects/{o.name}/describe"}}
                for o in models
            ]
            payload = {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": entries}
            return self._json(200, payload, headers={"Last-Modified": formatdate(changed, usegmt=True)})
        if len(parts) == 3 and parts[0] == "sobjects" and parts[2] == "describe" and method == "GET":
            model = st.obj(parts[1])
            if self._fault("describe", model.name, token):
                return
            if self._not_modified(model.metadata_changed):
                return
            headers = {"Last-Modified": formatdate(model.metadata_changed, usegmt=True)}
            return self._json(200, model.describe(), headers=headers)
        if parts == ["limits"] and method == "GET":
            with st.lock:
                used, limit = st.api_used, st.api_limit
            return self._json(
                200,
                {
                    "DailyApiRequests": {"Max": limit, "Remaining": max(limit - used, 0)},
                    "DailyBulkV2QueryJobs": {"Max": st.config.bulk_jobs_limit, "Remaining": st.bulk_jobs_left()},
                },
            )
        if len(parts) == 3 and parts[0] == "sobjects" and parts[2] in ("updated", "deleted") and method == "GET":
            return self._replicated(parts[1], parts[2], params)
        if parts == ["composite"] and method == "POST":
            return self._composite(token)
        if parts and parts[0] in ("query", "queryAll") and method == "GET":
            return self._rest_query(version, parts, params, token)
        if parts[:2] == ["jobs", "query"]:
            return self._jobs(method, version, parts[2:], params, token)
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {rest}")

    def _not_modified(self, changed: float) -> bool:
        """Answer 304 with no body when the metadata has not changed since the request's If-Modified-Since
        (describeGlobal and describe honour it; HTTP dates have whole seconds)."""
        since = self.headers.get("If-Modified-Since")
        if not since:
            return False
        try:
            unchanged = int(changed) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        if unchanged:
            self.send_response(304)
            self.send_header("Content-Length", "0")
            self.end_headers()
        return unchanged

    def _rest_query(self, version: str, parts: list[str], params: dict[str, str], token: str) -> None:
        st = self.state
        if len(parts) == 2:  # nextRecordsUrl
            with st.lock:
                cursor = st.cursors.get(parts[1])
            if cursor is None:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            model, fields, runs, first = cursor
            return self._rest_records(version, model, fields, runs, first)
        soql = params.get("q")
        if not soql:
            raise ApiError(400, "MALFORMED_QUERY", "The q parameter is required")
        query = parse(soql)
        model = st.obj(query.sobject)
        if self._fault("query", model.name, token):
            return
        check_access(model, query, bulk=False)
        if query.offset:
            raise ApiError(400, "MALFORMED_QUERY", "the emulator does not support OFFSET")
        runs = select_rows(model, query, include_deleted=parts[0] == "queryAll")
        total = sum(b - a for a, b in runs)
        if query.is_aggregate:
            record: dict[str, object] = {"attributes": {"type": "AggregateResult"}}
            if len(query.items) == 1 and query.items[0].aggregate == "count" and query.items[0].field is None:
                return self._json(200, {"totalSize": total, "done": True, "records": []})
            for k, item in enumerate(query.items):
                agg = item.aggregate
                if agg == "count":
                    record[f"expr{k}"] = total
                elif agg in ("max", "min") and item.field:
                    f = model.by_name.get(item.field.lower())
                    if f is None:
                        raise ApiError(400, "INVALID_FIELD", f"No such column '{item.field}' on entity '{model.name}'.")
                    if not runs:
                        record[f"expr{k}"] = None
                    elif f.name in ("SystemModstamp", "LastModifiedDate", "Id", "Name", "CaseNumber"):
                        # these grow with the row number: the extreme is at an end of the selection
                        i = runs[-1][1] - 1 if agg == "max" else runs[0][0]
                        record[f"expr{k}"] = model.raw_value(f, i)
                    else:
                        values = [model.raw_value(f, i) for a, b in runs for i in range(a, b)]
                        values = [v for v in values if v is not None]
                        record[f"expr{k}"] = (max if agg == "max" else min)(values) if values else None
                else:
                    raise ApiError(400, "MALFORMED_QUERY", f"the emulator does not support {agg}()")
            return self._json(200, {"totalSize": 1, "done": True, "records": [record]})
        fields = resolve_fields(model, query, bulk=False)
        return self._rest_records(version, model, fields, runs, 0)

    def _rest_records(self, version: str, model: ObjectModel, fields: list, runs: list, first: int) -> None:
        total = sum(b - a for a, b in runs)
        types = {f.name: f.type for f in fields}
        records = [
            {"attributes": {"type": model.name}, **{k: json_value(types[k], v) for k, v in row.items()}}
            for row in value_rows(model, fields, runs, first, REST_QUERY_BATCH)
        ]
        payload: dict[str, object] = {"totalSize": total, "done": first + len(records) >= total, "records": records}
        if not payload["done"]:
            key = f"01g5g{secrets.token_hex(6)}-{first + len(records)}"
            with self.state.lock:
                self.state.cursors[key] = (model, fields, runs, first + len(records))
            payload["nextRecordsUrl"] = f"/services/data/v{version}/query/{key}"
        self._json(200, payload)
