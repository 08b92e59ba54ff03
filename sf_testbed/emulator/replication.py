"""Composite requests and the replication resources, as the change sensor uses them.

- ``POST composite``: up to 25 subrequests, at most 5 of them queries, answered together and counted as ONE
  API call (Salesforce REST API guide, "Composite"). Subrequests run in order; each gets its own status.
- ``GET sobjects/<name>/updated/?start=&end=`` and ``.../deleted/``: Ids changed (``SystemModstamp``, else
  ``LastModifiedDate``) or deleted in a window; seconds are ignored (the window is cut to whole minutes) and
  ``latestDateCovered`` says where the answer ends; starts more than 30 days back (15 for deletes, the
  recycle bin's span) are refused with ``INVALID_REPLICATION_DATE``; more than 600,000 Ids:
  ``EXCEEDED_ID_LIMIT``; objects that are not replicateable are refused."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from .results import select_rows
from .soql import parse
from .state import VERSION_PATH, ApiError, EmulatorState

MAX_SUBREQUESTS = 25
MAX_QUERIES = 5
ID_LIMIT = 600_000
UPDATED_DAYS, DELETED_DAYS = 30, 15
QUERY_URL = re.compile(r"/(query|queryAll)(/|$)")


def _sf_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _param_time(params: dict[str, str], name: str) -> datetime:
    raw = params.get(name)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"{name} must be a UTC date and time, got {raw!r}")
    return value.astimezone(UTC).replace(second=0, microsecond=0)  # seconds are ignored


class ReplicationEndpoints:
    state: EmulatorState

    def _composite(self, token: str) -> None:
        try:
            subrequests = json.loads(self._body() or b"{}").get("compositeRequest") or []
        except (ValueError, AttributeError):
            raise ApiError(400, "JSON_PARSER_ERROR", "the composite request body is not JSON") from None
        if not subrequests or len(subrequests) > MAX_SUBREQUESTS:
            raise ApiError(
                400, "INVALID_BATCH_REQUEST", f"a composite request holds 1 to {MAX_SUBREQUESTS} subrequests"
            )
        if sum(bool(QUERY_URL.search(urlsplit(s.get("url", "")).path)) for s in subrequests) > MAX_QUERIES:
            raise ApiError(400, "INVALID_BATCH_REQUEST", f"at most {MAX_QUERIES} subrequests may be queries")
        answers = []
        for sub in subrequests:
            status, body, headers = self._captured_answer(lambda sub=sub: self._subrequest(sub, token))
            answers.append(
                {
                    "body": json.loads(body) if body else None,
                    "httpHeaders": headers,
                    "httpStatusCode": status,
                    "referenceId": sub.get("referenceId"),
                }
            )
        self._json(200, {"compositeResponse": answers})

    def _subrequest(self, sub: dict, token: str) -> None:
        url = urlsplit(sub.get("url", ""))
        m = VERSION_PATH.match(url.path)
        if not m:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {url.path}")
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        rest = (m.group("rest") or "/").rstrip("/")
        self._route(sub.get("method", "GET").upper(), m.group("version"), rest, params, token)

    def _replicated(self, name: str, kind: str, params: dict[str, str]) -> None:
        model = self.state.obj(name)
        if not model.global_entry()["replicateable"]:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{model.name}' is not replicateable")
        stamp = next((f for f in ("SystemModstamp", "LastModifiedDate") if f.lower() in model.by_name), None)
        if stamp is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{model.name}' is not replicateable")
        start, end = _param_time(params, "start"), _param_time(params, "end")
        now = datetime.fromtimestamp(self.state.now(), UTC)
        days = UPDATED_DAYS if kind == "updated" else DELETED_DAYS
        if start < now - timedelta(days=days):
            raise ApiError(400, "INVALID_REPLICATION_DATE", f"start must be within the last {days} days")
        if end < start:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "end is before start")
        end = min(end, now.replace(second=0, microsecond=0))
        soql = f"SELECT Id FROM {model.name} WHERE {stamp} >= {start.isoformat()} AND {stamp} < {end.isoformat()}"
        query = parse(soql.replace("+00:00", "Z"))
        live = {i for a, b in select_rows(model, query, include_deleted=False) for i in range(a, b)}
        rows = live
        if kind == "deleted":
            if not model.deletable:
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{model.name}' does not support deletes")
            every = [i for a, b in select_rows(model, query, include_deleted=True) for i in range(a, b)]
            rows = {i for i in every if i not in live}
        if len(rows) > ID_LIMIT:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "too many Ids: choose start and end closer together")
        id_field, stamp_field = model.by_name["id"], model.by_name[stamp.lower()]
        covered = _sf_time(end)
        if kind == "updated":
            return self._json(
                200, {"ids": [model.raw_value(id_field, i) for i in sorted(rows)], "latestDateCovered": covered}
            )
        records = [
            {"id": model.raw_value(id_field, i), "deletedDate": model.raw_value(stamp_field, i)} for i in sorted(rows)
        ]
        earliest = _sf_time(now - timedelta(days=DELETED_DAYS))
        self._json(200, {"deletedRecords": records, "earliestDateAvailable": earliest, "latestDateCovered": covered})
