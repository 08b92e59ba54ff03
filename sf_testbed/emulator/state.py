"""The emulator's state: its configuration, the org, issued tokens, and query jobs with their lifecycle."""

from __future__ import annotations

import base64
import itertools
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .faults import Fault, FaultPlan
from .org import ObjectModel, Org
from .results import (
    Selection,
    materialize,
    resolve_fields,
)
from .schemas import DEFAULT_ROWS
from .soql import SoqlError, parse

log = logging.getLogger(__name__)

CACHE_ENV = "SF_EMULATOR_CACHE"  # where generated rows are cached
DEFAULT_CACHE = Path.home() / ".cache" / "sf_pipeline" / "emulator"

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
    cache_dir: Path = field(default_factory=lambda: Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE))
    client_id: str = "demo-client-id"
    client_secret: str = "demo-client-secret"
    username: str = "demo@example.com"
    password: str = "demo-password"
    refresh_token: str = "demo-refresh-token"
    default_page_records: int = 250_000
    quoted_blanks: bool = False  # nulls written as "" (some orgs' exports) instead of an empty field
    token_lifetime_s: float = 7200.0
    api_limit: int = 100_000  # the org's daily API request limit (Sforce-Limit-Info: api-usage=used/limit)
    api_used: int = 0  # API requests already made today when the emulator starts
    objects: int = 8  # objects in describeGlobal: the 8 demo objects, then the long tail (longtail.py)
    faults: list[Fault] = field(default_factory=list)
    # the production-latency profile (0: loopback as fast as it goes; PRODUCTION_LATENCY: a real org's)
    bulk_floor_s: float = 0.0  # a query job stays InProgress at least this long after it is created
    request_latency_s: float = 0.0  # every request (OAuth included) waits this long before it is answered
    bulk_jobs_limit: int = 10_000  # DailyBulkV2QueryJobs: query jobs a rolling 24 hours
    bulk_jobs_used: int = 0  # query jobs already created when the emulator starts


# A real org over the network (shared/docs/production-latency.md): a Bulk API 2.0 query job's asynchronous floor
# (~10-15 s measured for a 701-row object) and one round trip per API request.
PRODUCTION_LATENCY = {"bulk_floor_s": 10.0, "request_latency_s": 0.08}


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
        self.org = Org(
            seed=config.seed,
            rows=rows,
            scale=config.scale,
            quoted_blanks=config.quoted_blanks,
            objects_total=config.objects,
        )
        self.faults = FaultPlan(config.faults)
        self.tokens: dict[str, float] = {}
        self.jobs: dict[str, Job] = {}
        self.cursors: dict[str, tuple[ObjectModel, list, list, int]] = {}
        self.lock = threading.Lock()
        self.job_dir = Path(tempfile.mkdtemp(prefix="sf-emulator-jobs-"))
        self.counter = itertools.count(1)
        self.requests: dict[str, int] = {}
        self.api_used = config.api_used
        self.api_limit = config.api_limit
        self.bulk_jobs_used = config.bulk_jobs_used
        self.clock_offset_s = 0.0  # the org's clock less the wall clock (POST /__emulator__/clock moves it on)

    def now(self) -> float:
        """The org's time (epoch seconds): the wall clock, moved on by a test instead of waiting."""
        return time.time() + self.clock_offset_s

    def count_bulk_job(self) -> None:
        """Count one query job against DailyBulkV2QueryJobs; refused once the allowance is used up."""
        with self.lock:
            if self.bulk_jobs_used >= self.config.bulk_jobs_limit:
                raise ApiError(
                    400,
                    "EXCEEDED_QUOTA",
                    f"Bulk API 2.0 query jobs: the org's limit of {self.config.bulk_jobs_limit} jobs per 24 hours "
                    "(DailyBulkV2QueryJobs) is used up",
                )
            self.bulk_jobs_used += 1

    def bulk_jobs_left(self) -> int:
        with self.lock:
            return max(self.config.bulk_jobs_limit - self.bulk_jobs_used, 0)

    def count_api_call(self) -> str:
        """Count one API request against the org's daily limit; the Sforce-Limit-Info value to send back.
        Over the limit, Salesforce refuses calls with 403 REQUEST_LIMIT_EXCEEDED (bursts aside)."""
        with self.lock:
            if self.api_used >= self.api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.api_used += 1
            return f"api-usage={self.api_used}/{self.api_limit}"

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
        # a real org queues and runs every job asynchronously: small ones too take seconds
        time.sleep(max(0.0, job.started + state.config.bulk_floor_s - time.monotonic()))
        if job.state == "Aborted":
            return
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
