"""The emulator's HTTP server: OAuth, sObject metadata, REST query and Bulk API 2.0 query jobs.

Plain ``http.server`` with one thread per connection: results are sent with ``sendfile`` from the
cached CSV (or gzip-compressed on the fly when asked), so serving runs near disk speed.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .faults import Fault, FaultPlan
from .org import DEFAULT_ROWS, ObjectModel, Org
from .results import (
    DELIMITERS,
    LINE_ENDINGS,
    Selection,
    materialize,
    resolve_fields,
    select_rows,
    validate_bulk,
    value_rows,
)
from .soql import SoqlError, parse

log = logging.getLogger(__name__)

HTML_LOGIN_PAGE = b"""<!DOCTYPE html><html><head><title>Login | Salesforce</title></head>
<body><form id="login_form" method="post" action="/login"><input id="username" name="username">
<input id="password" name="pw" type="password"><input type="submit" value="Log In"></form></body></html>
"""
VERSION_PATH = re.compile(r"^/services/data/v(?P<version>\d+\.\d)(?P<rest>/.*)?$")
REST_QUERY_BATCH = 2000


@dataclass
class EmulatorConfig:
    """Everything about one emulated org; the defaults are the documented demo org."""

    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 42
    scale: float = 1.0
    rows: dict[str, int] = field(default_factory=dict)
    cache_dir: Path = field(
        default_factory=lambda: Path(
            os.environ.get("SF_EMULATOR_CACHE", Path.home() / ".cache" / "sf_pipeline" / "emulator")
        )
    )
    client_id: str = "demo-client-id"
    client_secret: str = "demo-client-secret"
    username: str = "demo@example.com"
    password: str = "demo-password"
    refresh_token: str = "demo-refresh-token"
    default_page_records: int = 250_000
    token_lifetime_s: float = 7200.0
    faults: list[Fault] = field(default_factory=list)


@dataclass
class Job:
    id: str
    operation: str
    sobject: str
    query: str
    api_version: str
    column_delimiter: str
    line_ending: str
    created: str
    state: str = "UploadComplete"
    records: int = 0
    error: str | None = None
    selection: Selection | None = None
    slow_polls: int = 0
    job_path: Path | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def info(self) -> dict:
        out = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": "0055g000000DEMOAAA",
            "createdDate": self.created,
            "systemModstamp": self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": self.records,
            "retries": 0,
            "totalProcessingTime": int(((self.finished or time.monotonic()) - self.started) * 1000),
        }
        if self.error:
            out["errorMessage"] = self.error
        return out


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class EmulatorState:
    """The org, issued tokens, jobs and faults shared by all request threads."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        rows = {**DEFAULT_ROWS, **config.rows}
        self.org = Org(seed=config.seed, rows=rows, scale=config.scale)
        self.faults = FaultPlan(config.faults)
        self.tokens: dict[str, float] = {}
        self.jobs: dict[str, Job] = {}
        self.cursors: dict[str, tuple[ObjectModel, list, list, int]] = {}
        self.lock = threading.Lock()
        self.job_dir = Path(tempfile.mkdtemp(prefix="sf-emulator-jobs-"))
        self.counter = itertools.count(1)
        self.requests: dict[str, int] = {}

    def issue_token(self) -> str:
        token = "00D5g000000DEMO!" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.config.token_lifetime_s
        return token

    def check_token(self, header: str | None) -> str:
        token = (header or "").removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None or expiry < time.monotonic():
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return token

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def obj(self, name: str) -> ObjectModel:
        model = self.org.get(name)
        if model is None:
            raise ApiError(
                404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}' is not supported."
            )
        return model

    def new_job_id(self) -> str:
        return f"7505g{next(self.counter):010d}AAA"

    def close(self) -> None:
        shutil.rmtree(self.job_dir, ignore_errors=True)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except Exception as exc:  # noqa: BLE001 - any garbage locator is the same client error
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from exc


def _run_job(state: EmulatorState, job: Job, fail: Fault | None) -> None:
    job.state = "InProgress"
    try:
        if fail is not None:
            raise SoqlError("API_ERROR", fail.message)
        model = state.obj(job.sobject)
        query = parse(job.query)
        fields = resolve_fields(model, query, bulk=True)
        job.job_path = state.job_dir / f"{job.id}.csv"
        selection = materialize(
            model,
            query,
            fields,
            job.operation == "queryAll",
            job.column_delimiter,
            job.line_ending,
            state.config.cache_dir,
            job.job_path,
        )
        if job.state == "Aborted":
            return
        job.selection = selection
        job.records = selection.count
        job.state = "JobComplete"
    except (SoqlError, ApiError) as exc:
        job.error = getattr(exc, "message", str(exc))
        job.state = "Failed"
    except Exception as exc:  # noqa: BLE001 - a crashed job is reported as Failed, like Salesforce does
        log.exception("job %s crashed", job.id)
        job.error = f"Internal emulator error: {exc}"
        job.state = "Failed"
    finally:
        job.finished = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "sf-pipeline-emulator/1.0"
    state: EmulatorState  # set on the subclass made by make_server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ---------------------------------------------------------------------------------
    def _body(self) -> bytes:
        return self._request_body

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json;charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _error(self, err: ApiError) -> None:
        self._json(err.status, [{"errorCode": err.code, "message": err.message}], headers=err.headers)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        # read the whole body first: an answer sent before it was read (a fault, an early error) would leave
        # it on the keep-alive connection, where it would be parsed as the next request
        length = int(self.headers.get("Content-Length") or 0)
        self._request_body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        st = self.state
        with st.lock:
            st.requests[f"{method} {re.sub(r'7505g[0-9]+AAA', '{id}', url.path)}"] = (
                st.requests.get(f"{method} {re.sub(r'7505g[0-9]+AAA', '{id}', url.path)}", 0) + 1
            )
        try:
            if url.path.startswith("/__emulator__/"):
                return self._admin(method, url.path)
            if url.path == "/services/oauth2/token" and method == "POST":
                return self._token()
            if url.path in ("/services/data", "/services/data/"):
                return self._json(200, [{"version": f"{v}.0", "url": f"/services/data/v{v}.0"} for v in range(50, 67)])
            m = VERSION_PATH.match(url.path)
            if not m:
                raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {url.path}")
            version, rest = m.group("version"), (m.group("rest") or "/").rstrip("/")
            token = st.check_token(self.headers.get("Authorization"))
            self._route(method, version, rest, params, token)
        except ApiError as err:
            self._error(err)
        except SoqlError as err:
            self._error(ApiError(400, err.code, err.message))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _fault(self, stage: str, sobject: str | None, token: str | None) -> Fault | None:
        """Apply a request-level fault if one matches; return the fault when it was answered here."""
        fault = self.state.faults.take(
            stage, sobject, {"expired_session", "rate_limit", "server_error", "html_login", "request_limit"}
        )
        if fault is None:
            return None
        if fault.kind == "expired_session":
            if token:
                self.state.revoke(token)
            self._error(ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        elif fault.kind == "rate_limit":
            self._error(
                ApiError(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", {"Retry-After": f"{fault.retry_after:g}"})
            )
        elif fault.kind == "server_error":
            self._error(ApiError(fault.status, "API_ERROR", fault.message))
        elif fault.kind == "request_limit":
            self._error(ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        else:
            self._send(200, HTML_LOGIN_PAGE, "text/html;charset=UTF-8")
        return fault

    # -- endpoints -----------------------------------------------------------------------------------
    def _token(self) -> None:
        cfg = self.state.config
        if self._fault("token", None, None):
            return
        form = {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}
        grant = form.get("grant_type", "")
        if form.get("client_id") != cfg.client_id:
            return self._json(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        if form.get("client_secret") != cfg.client_secret:
            return self._json(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        if grant == "password":
            if form.get("username") != cfg.username or form.get("password") != cfg.password:
                return self._json(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        elif grant == "refresh_token":
            if form.get("refresh_token") != cfg.refresh_token:
                return self._json(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        elif grant != "client_credentials":
            return self._json(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        host = self.headers.get("Host") or f"{cfg.host}:{cfg.port}"
        payload = {
            "access_token": self.state.issue_token(),
            "instance_url": f"http://{host}",
            "id": f"http://{host}/id/00D5g000000DEMO/0055g000000DEMOAAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            "scope": "api refresh_token",
        }
        if grant == "password":
            payload["refresh_token"] = cfg.refresh_token
        self._json(200, payload)

    def _route(self, method: str, version: str, rest: str, params: dict[str, str], token: str) -> None:
        st = self.state
        parts = rest.strip("/").split("/") if rest.strip("/") else []
        if parts == ["sobjects"] and method == "GET":
            if self._fault("sobjects", None, token):
                return
            return self._json(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [
                        {
                            "name": o.name,
                            "label": o.describe()["label"],
                            "queryable": True,
                            "custom": o.name.endswith("__c"),
                            "keyPrefix": o.prefix,
                            "urls": {"describe": f"/services/data/v{version}/sobjects/{o.name}/describe"},
                        }
                        for o in st.org.objects.values()
                    ],
                },
            )
        if len(parts) == 3 and parts[0] == "sobjects" and parts[2] == "describe" and method == "GET":
            model = st.obj(parts[1])
            if self._fault("describe", model.name, token):
                return
            return self._json(200, model.describe())
        if parts and parts[0] in ("query", "queryAll") and method == "GET":
            return self._rest_query(version, parts, params, token)
        if parts[:2] == ["jobs", "query"]:
            return self._jobs(method, version, parts[2:], params, token)
        raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {rest}")

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
        records = [
            {"attributes": {"type": model.name}, **row}
            for row in value_rows(model, fields, runs, first, REST_QUERY_BATCH)
        ]
        payload: dict[str, object] = {"totalSize": total, "done": first + len(records) >= total, "records": records}
        if not payload["done"]:
            key = f"01g5g{secrets.token_hex(6)}-{first + len(records)}"
            with self.state.lock:
                self.state.cursors[key] = (model, fields, runs, first + len(records))
            payload["nextRecordsUrl"] = f"/services/data/v{version}/query/{key}"
        self._json(200, payload)

    def _job(self, job_id: str, version: str | None = None) -> Job:
        with self.state.lock:
            job = self.state.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: job {job_id}")
        if version is not None and version != job.api_version:
            raise ApiError(
                409,
                "INVALIDJOB",
                f"Job {job_id} was created with API version {job.api_version}; "
                f"results must be requested with the same version (got {version})",
            )
        return job

    def _jobs(self, method: str, version: str, parts: list[str], params: dict[str, str], token: str) -> None:
        st = self.state
        if not parts and method == "POST":
            return self._create_job(version, token)
        if not parts and method == "GET":
            with st.lock:
                jobs = [j.info() for j in st.jobs.values()]
            return self._json(200, {"done": True, "records": jobs, "nextRecordsUrl": None})
        job = self._job(parts[0])
        if len(parts) == 1 and method == "GET":
            if self._fault("poll", job.sobject, token):
                return
            info = job.info()
            if job.slow_polls > 0 and info["state"] in ("UploadComplete", "InProgress", "JobComplete"):
                job.slow_polls -= 1
                info["state"] = "InProgress"
            return self._json(200, info)
        if len(parts) == 1 and method == "PATCH":
            body = json.loads(self._body() or b"{}")
            if body.get("state") != "Aborted":
                raise ApiError(400, "INVALIDJOB", "Only state Aborted can be set on a query job")
            if job.state in ("JobComplete", "Failed") and job.slow_polls <= 0:
                raise ApiError(400, "INVALIDJOB", f"Job {job.id} is already {job.state} and cannot be aborted")
            job.state = "Aborted"
            job.slow_polls = 0
            return self._json(200, job.info())
        if len(parts) == 1 and method == "DELETE":
            if job.state in ("UploadComplete", "InProgress"):
                raise ApiError(400, "INVALIDJOB", f"Job {job.id} is still {job.state}: abort it before deleting it")
            with st.lock:
                st.jobs.pop(job.id, None)
            if job.job_path is not None:
                job.job_path.unlink(missing_ok=True)
                job.job_path.with_suffix(".idx").unlink(missing_ok=True)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if len(parts) == 2 and parts[1] in ("results", "resultPages") and method == "GET":
            job = self._job(parts[0], version)
            if job.state != "JobComplete" or job.selection is None or job.slow_polls > 0:
                raise ApiError(
                    400, "INVALIDJOB", f"Job {job.id} is {job.state}; results are available once it is JobComplete"
                )
            if parts[1] == "resultPages":
                return self._result_pages(version, job, params, token)
            return self._results(job, params, token)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _create_job(self, version: str, token: str) -> None:
        st = self.state
        try:
            body = json.loads(self._body() or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot parse the request body: {exc}") from exc
        operation = body.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise ApiError(400, "INVALIDJOB", f"Invalid operation {operation!r} for a query job")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS:
            raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter {delimiter!r}")
        if line_ending not in LINE_ENDINGS:
            raise ApiError(400, "INVALIDJOB", f"Invalid lineEnding {line_ending!r}")
        if body.get("contentType", "CSV") != "CSV":
            raise ApiError(400, "INVALIDJOB", "contentType must be CSV")
        soql = body.get("query") or ""
        query = parse(soql)
        model = st.obj(query.sobject)
        if self._fault("create", model.name, token):
            return
        validate_bulk(query)
        resolve_fields(model, query, bulk=True)  # bad fields fail the create call, as in Salesforce
        job = Job(st.new_job_id(), operation, model.name, soql, version, delimiter, line_ending, _now_iso())
        fail = st.faults.take("create", model.name, {"job_failed"})
        slow = st.faults.take("poll", model.name, {"slow_job"})
        if slow is not None:
            job.slow_polls = slow.polls
        with st.lock:
            st.jobs[job.id] = job
        threading.Thread(target=_run_job, args=(st, job, fail), daemon=True, name=f"job-{job.id}").start()
        self._json(
            200,
            {
                k: v
                for k, v in job.info().items()
                if k not in ("numberRecordsProcessed", "retries", "totalProcessingTime", "jobType")
            },
        )

    def _page_bounds(self, job: Job, params: dict[str, str]) -> tuple[int, int]:
        first = decode_locator(params["locator"]) if params.get("locator") else 0
        size = self.state.config.default_page_records
        if params.get("maxRecords"):
            try:
                size = int(params["maxRecords"])
            except ValueError as exc:
                raise ApiError(400, "INVALIDJOB", "maxRecords must be a positive integer") from exc
            if size <= 0:
                raise ApiError(400, "INVALIDJOB", "maxRecords must be a positive integer")
        return first, size

    def _result_pages(self, version: str, job: Job, params: dict[str, str], token: str) -> None:
        if self._fault("result_pages", job.sobject, token):
            return
        first, size = self._page_bounds(job, params)
        total = job.selection.count if job.selection else 0
        pages = []
        pos = first
        while pos < total and len(pages) < 5 or (pos == 0 and total == 0 and not pages):
            locator = f"&locator={encode_locator(pos)}" if pos else ""
            pages.append(
                {"resultUrl": f"/services/data/v{version}/jobs/query/{job.id}/results?maxRecords={size}{locator}"}
            )
            pos += size
        done = pos >= total
        payload: dict[str, object] = {"resultPages": pages, "done": done}
        payload["nextRecordsUrl"] = (
            None
            if done
            else (
                f"/services/data/v{version}/jobs/query/{job.id}/resultPages?maxRecords={size}&locator={encode_locator(pos)}"
            )
        )
        self._json(200, payload)

    def _results(self, job: Job, params: dict[str, str], token: str) -> None:
        selection = job.selection
        assert selection is not None
        if self._fault("results", job.sobject, token):
            return
        first, size = self._page_bounds(job, params)
        if first > selection.count:
            raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {params.get('locator')}")
        n = min(size, selection.count - first)
        after = first + n
        ranges = selection.byte_ranges(first, n)
        headers = {
            "Sforce-NumberOfRecords": str(n),
            "Sforce-Locator": encode_locator(after) if after < selection.count else "null",
            "Sforce-Limit-Info": "api-usage=1/15000",
        }
        cut = self.state.faults.take("results", job.sobject, {"cut_body"})
        gzip_ok = "gzip" in (self.headers.get("Accept-Encoding") or "")
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        for k, v in headers.items():
            self.send_header(k, v)
        if gzip_ok:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_gzip(selection, ranges, cut is not None)
        else:
            total = len(selection.header) + sum(length for _, length in ranges)
            self.send_header("Content-Length", str(total))
            self.end_headers()
            self._send_plain(selection, ranges, total, cut is not None)
        if cut is not None:
            self.close_connection = True

    def _send_plain(self, selection: Selection, ranges: list[tuple[int, int]], total: int, cut: bool) -> None:
        self.wfile.write(selection.header)
        budget = total // 2 if cut else total
        budget -= len(selection.header)
        with open(selection.file.path, "rb") as f:
            for offset, length in ranges:
                if budget <= 0:
                    break
                length = min(length, budget)
                self.connection.sendfile(f, offset, length)
                budget -= length
        if cut:
            self.connection.shutdown(2)

    def _send_gzip(self, selection: Selection, ranges: list[tuple[int, int]], cut: bool) -> None:
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        sent = 0
        total = sum(length for _, length in ranges)

        def chunk(data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

        chunk(comp.compress(selection.header))
        with open(selection.file.path, "rb") as f:
            for offset, length in ranges:
                f.seek(offset)
                while length > 0:
                    block = f.read(min(length, 1 << 20))
                    length -= len(block)
                    sent += len(block)
                    chunk(comp.compress(block))
                    if cut and sent >= total // 2:
                        self.connection.shutdown(2)
                        return
        chunk(comp.flush())
        self.wfile.write(b"0\r\n\r\n")

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
        if path == "/__emulator__/stats" and method == "GET":
            with st.lock:
                return self._json(200, {"requests": dict(st.requests), "jobs": len(st.jobs)})
        if path == "/__emulator__/stats" and method == "DELETE":
            with st.lock:
                st.requests.clear()
            return self._json(200, {})
        raise ApiError(404, "NOT_FOUND", path)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: EmulatorConfig) -> None:
        self.state = EmulatorState(config)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        super().__init__((config.host, config.port), handler)
        config.port = self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.state.config.host}:{self.server_address[1]}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="sf-emulator")
        thread.start()
        return thread

    def server_close(self) -> None:
        super().server_close()
        self.state.close()


def make_server(config: EmulatorConfig | None = None) -> EmulatorServer:
    return EmulatorServer(config or EmulatorConfig())
