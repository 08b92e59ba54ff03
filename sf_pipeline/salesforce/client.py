"""An httpx client for one Salesforce org: OAuth, retries, REST metadata and query, query-job calls.

Every request goes through ``request``: it adds the bearer token, retries 429/5xx/network errors with
backoff (honouring Retry-After), renews the session once on 401 INVALID_SESSION_ID, and turns error
bodies into the exceptions of ``errors``. It also counts the API calls it makes and keeps the org's
usage from the last ``Sforce-Limit-Info`` header. Result downloads live in ``bulk``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from .describes import DescribesAhead
from .errors import (
    ApiLimitError,
    AuthError,
    OutcomeUnknown,
    QueryError,
    SalesforceError,
    TransientError,
    UnexpectedResponseError,
)
from .limits import ApiUsage
from .retries import NOT_SENT, RetryableResponse, retry_after, retrying
from .settings import SalesforceSettings

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}

QUERY_ERROR_CODES = {
    "INVALID_FIELD",
    "MALFORMED_QUERY",
    "INVALID_TYPE",
    "INVALIDJOB",
    "INVALID_QUERY_FILTER_OPERATOR",
    "FUNCTIONALITY_NOT_ENABLED",
    "INVALID_QUERY_LOCATOR",
    "NOT_FOUND",
    "INVALIDLOCATOR",
}


def refusal(answer: dict) -> str:
    """What a refused Composite subrequest says: ``errorCode: message`` of its first error."""
    body = answer.get("body")
    detail = body[0] if isinstance(body, list) and body else {}
    return f"{detail.get('errorCode')}: {detail.get('message')}"


class _TransientSubrequest(Exception):
    """A Composite subrequest answered 429 or 5xx: the request is worth another try (``retrying``)."""

    def __init__(self, answer: dict) -> None:
        super().__init__(f"subrequest HTTP {answer['httpStatusCode']} {refusal(answer)}")
        try:
            self.retry_after: float | None = float((answer.get("httpHeaders") or {})["Retry-After"])
        except (KeyError, TypeError, ValueError):
            self.retry_after = None


def _error_detail(response: httpx.Response) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error body, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:300].strip() or response.reason_phrase
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode"), body[0].get("message", "")
    if isinstance(body, dict):
        if "error" in body:
            return body.get("error"), body.get("error_description", "")
        return body.get("errorCode"), body.get("message", str(body))
    return None, str(body)[:300]


def is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower()


def html_error(response: httpx.Response, what: str, sobject: str | None) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"expected {what} but got an HTML page with HTTP {response.status_code} (a login page from a proxy or "
        "SSO layer: the session has probably expired); nothing was extracted",
        sobject=sobject,
        request=f"{response.request.method} {response.request.url.path}",
        status=response.status_code,
    )


class SalesforceClient:
    """A logged-in session with one org; thread-safe, so result pages can download concurrently."""

    def __init__(
        self,
        settings: SalesforceSettings | None = None,
        *,
        max_connections: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or SalesforceSettings.from_env()
        self.settings.validate()
        self.retry = self.settings.retry_policy
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.settings.timeout_s, connect=30.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )
        self._auth_lock = threading.Lock()
        self._token: str | None = self.settings.access_token
        self._instance_url: str | None = self.settings.instance_url
        self._token_generation = 0
        self._usage_lock = threading.Lock()
        self.api_calls = 0  # API requests this client made (OAuth token requests are not API calls)
        self.api_usage: ApiUsage | None = None  # the org's usage, from the latest answer that said it
        self.bulk_jobs: ApiUsage | None = None  # DailyBulkV2QueryJobs, as the limits resource last said it
        self.describes_ahead: DescribesAhead | None = None  # a batch run's objects, described ahead

    # -- lifecycle ------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api_version(self) -> str:
        return self.settings.api_version

    @property
    def instance_url(self) -> str:
        self._ensure_login()
        assert self._instance_url is not None
        return self._instance_url

    def data_path(self, rest: str) -> str:
        return f"/services/data/v{self.api_version}/{rest.lstrip('/')}"

    # -- auth -----------------------------------------------------------------------------------------
    def _ensure_login(self) -> None:
        if self._token is None or self._instance_url is None:
            self.login()

    def login(self, stale_generation: int | None = None) -> None:
        """Run the configured OAuth flow (once, even when several threads ask at the same time)."""
        s = self.settings
        with self._auth_lock:
            if stale_generation is not None and stale_generation != self._token_generation:
                return  # another thread already renewed the session
            if s.flow == "access_token":
                if stale_generation is not None:
                    raise AuthError(
                        "the session expired and no refresh token, password or client "
                        "credentials are configured to renew it",
                        request="login",
                    )
                if not s.instance_url:
                    raise AuthError("SF_ACCESS_TOKEN is set but SF_INSTANCE_URL is not", request="login")
                self._token, self._instance_url = s.access_token, s.instance_url
                return
            form = {"grant_type": s.flow, "client_id": s.client_id, "client_secret": s.client_secret}
            if s.flow == "password":
                form.update(username=s.username or "", password=s.password or "")
            elif s.flow == "refresh_token":
                form["refresh_token"] = s.refresh_token or ""
            url = s.login_url.rstrip("/") + "/services/oauth2/token"
            response = self._send_with_retries(
                "POST", url, None, data=form, request_name="POST /services/oauth2/token", api_call=False
            )
            if is_html(response):
                raise html_error(response, "an OAuth token (JSON)", None)
            if response.status_code != 200:
                code, message = _error_detail(response)
                raise AuthError(
                    f"{s.flow} login to {s.login_url} failed: {code}: {message}",
                    request="POST /services/oauth2/token",
                    error_code=code,
                    status=response.status_code,
                )
            body = response.json()
            self._token = body["access_token"]
            self._instance_url = (s.instance_url or body["instance_url"]).rstrip("/")
            self._token_generation += 1
            log.info("logged in to %s with the %s flow", self._instance_url, s.flow)

    # -- requests -------------------------------------------------------------------------------------
    def _send_with_retries(
        self,
        method: str,
        url: str,
        sobject: str | None,
        *,
        stream: bool = False,
        request_name: str | None = None,
        api_call: bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries on 429/5xx/transport errors (``retries``). A streamed response is returned open.
        A request that is not ``idempotent`` and may have reached Salesforce raises ``OutcomeUnknown``."""
        name = request_name or f"{method} {httpx.URL(url).path}"

        def send() -> httpx.Response:
            response = self._http.send(self._http.build_request(method, url, **kwargs), stream=stream)
            if api_call:
                self._note_usage(response)
            if response.status_code in RETRY_STATUS:
                if stream:
                    response.read()
                    response.close()
                raise RetryableResponse(response, retry_after(response))
            return response

        try:
            return retrying(self.retry, name, idempotent=idempotent)(send)
        except RetryableResponse as exc:
            if not idempotent and exc.response.status_code != 429:
                raise OutcomeUnknown(f"HTTP {exc.response.status_code}", sobject=sobject, request=name) from exc
            code, message = _error_detail(exc.response)
            raise TransientError(
                f"HTTP {exc.response.status_code} {code or ''} {message} (after {self.retry.max_attempts} attempts)",
                sobject=sobject,
                request=name,
                error_code=code,
                status=exc.response.status_code,
            ) from exc
        except httpx.TransportError as exc:
            if not idempotent and not isinstance(exc, NOT_SENT):
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc}", sobject=sobject, request=name) from exc
            raise TransientError(
                f"{type(exc).__name__}: {exc} (after {self.retry.max_attempts} attempts)", sobject=sobject, request=name
            ) from exc

    def _note_usage(self, response: httpx.Response) -> None:
        usage = ApiUsage.from_header(response.headers.get("Sforce-Limit-Info"))
        with self._usage_lock:
            self.api_calls += 1
            if usage is not None:
                self.api_usage = usage

    def request(
        self,
        method: str,
        path: str,
        *,
        sobject: str | None = None,
        stream: bool = False,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """An authenticated API call; raises for error statuses (after retries and one session renewal).

        With ``stream=True`` a successful response is returned unread; the caller closes it.
        """
        self._ensure_login()
        name = f"{method} {path.split('?')[0]}"
        renewed = False
        while True:
            generation = self._token_generation
            headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
            kwargs["headers"] = headers
            url = path if path.startswith("http") else f"{self._instance_url}{path}"
            response = self._send_with_retries(
                method, url, sobject, stream=stream, request_name=name, idempotent=idempotent, **kwargs
            )
            if response.status_code == 401 and not renewed:
                if stream:
                    response.read()
                    response.close()
                log.warning("%s: session expired or invalid (401); logging in again", name)
                self.login(stale_generation=generation)
                renewed = True
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            if response.status_code >= 400:
                if stream:
                    response.read()
                    response.close()
                raise self._error(response, name, sobject)
            return response

    def _error(self, response: httpx.Response, name: str, sobject: str | None) -> SalesforceError:
        code, message = _error_detail(response)
        status = response.status_code
        kw = {"sobject": sobject, "request": name, "error_code": code, "status": status}
        if status == 401:
            return AuthError(f"{code}: {message} (the session was renewed once and is still refused)", **kw)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            return ApiLimitError(f"{code}: {message}", **kw)
        if code in QUERY_ERROR_CODES or status == 400:
            return QueryError(f"{code}: {message}", **kw)
        return SalesforceError(f"HTTP {status} {code}: {message}", **kw)

    def json(self, method: str, path: str, *, sobject: str | None = None, **kwargs: Any) -> Any:
        response = self.request(method, path, sobject=sobject, **kwargs)
        if is_html(response):
            raise html_error(response, "JSON", sobject)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedResponseError(
                f"expected JSON, got {response.headers.get('content-type')}: {response.text[:200]!r}",
                sobject=sobject,
                request=f"{method} {path}",
            ) from exc

    @contextlib.contextmanager
    def stream(self, method: str, path: str, *, sobject: str | None = None, **kwargs: Any) -> Iterator[httpx.Response]:
        response = self.request(method, path, sobject=sobject, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()

    # -- REST -----------------------------------------------------------------------------------------
    def sobjects(self) -> list[dict]:
        return self.json("GET", self.data_path("sobjects"))["sobjects"]

    def describe(self, sobject: str) -> dict:
        if self.describes_ahead is not None and (found := self.describes_ahead.take(self, sobject)) is not None:
            return found
        return self.json("GET", self.data_path(f"sobjects/{sobject}/describe"), sobject=sobject)

    def describe_ahead(self, names: Sequence[str]) -> None:
        """The objects this client will describe next (a batch run's): described 25 to a request (``describes``)."""
        self.describes_ahead = DescribesAhead(names) if len(names) > 1 else None

    def org_api_usage(self) -> ApiUsage:
        """The org's daily API usage now (one call to the ``limits`` resource); its Bulk API 2.0 query jobs
        of the day are kept in ``bulk_jobs``."""
        limits = self.json("GET", self.data_path("limits"))
        usage = ApiUsage.from_limits(limits)
        with self._usage_lock:
            self.api_usage = usage
            if "DailyBulkV2QueryJobs" in limits:
                self.bulk_jobs = ApiUsage.from_limits(limits, "DailyBulkV2QueryJobs")
        return usage

    def query(self, soql: str, *, sobject: str | None = None, include_deleted: bool = False) -> dict:
        """A synchronous REST query (for cheap checks: COUNT(), MAX(SystemModstamp))."""
        endpoint = "queryAll" if include_deleted else "query"
        return self.json("GET", self.data_path(endpoint), sobject=sobject, params={"q": soql})

    def composite(self, urls: Sequence[str], *, sobject: str | None = None) -> list[dict]:
        """GET subrequests (paths under the data path, with their query strings) in one REST Composite request:
        one API call for up to 25 of them, 5 of them queries; each answer's ``httpStatusCode`` and ``body``. A
        subrequest answered 429 or 5xx asks the whole request again, as the client retries a GET (the
        subrequests are GETs); other refusals are the caller's to read."""
        body = {
            "allOrNone": False,
            "compositeRequest": [{"method": "GET", "url": url, "referenceId": f"r{k}"} for k, url in enumerate(urls)],
        }
        name = f"composite request ({len(urls)} GET)" + (f" of {sobject}" if sobject else "")

        def ask() -> list[dict]:
            answers = self.json("POST", self.data_path("composite"), sobject=sobject, json=body)["compositeResponse"]
            for answer in answers:
                if answer["httpStatusCode"] in RETRY_STATUS:
                    raise _TransientSubrequest(answer)
            return answers

        try:
            return retrying(self.retry, name, also=(_TransientSubrequest,))(ask)
        except _TransientSubrequest as exc:
            raise TransientError(
                f"{exc} (after {self.retry.max_attempts} attempts)", sobject=sobject, request=name
            ) from exc

    def counts(self, queries: Sequence[tuple[str, bool]], *, sobject: str | None = None) -> list[int]:
        """``COUNT()`` queries, each ``(soql, include_deleted)``, answered in one Composite request (one API
        call); a refused one raises naming the object and the query."""
        urls = [
            self.data_path("queryAll" if include_deleted else "query") + "?" + urlencode({"q": soql})
            for soql, include_deleted in queries
        ]
        answers = self.composite(urls, sobject=sobject)
        for (soql, _), answer in zip(queries, answers, strict=True):
            if answer["httpStatusCode"] >= 400:
                raise QueryError(refusal(answer), sobject=sobject, request=f"composite GET {soql}")
        return [int(answer["body"]["totalSize"]) for answer in answers]

    # -- query jobs -----------------------------------------------------------------------------------
    def create_query_job(
        self,
        soql: str,
        *,
        sobject: str,
        include_deleted: bool = False,
        column_delimiter: str = "COMMA",
        line_ending: str = "LF",
    ) -> dict:
        """Create a query job, once: a create whose answer was lost (the job may exist) is made again, and the
        job the lost answer was about is then aborted and deleted, so a retried create never leaves two jobs
        running. That job is found in the job list: the same object and operation, created by the same user
        since the first attempt, and not the new one (one load of an object runs at a time: the queue's)."""
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": column_delimiter,
            "lineEnding": line_ending,
        }
        started = datetime.now(UTC) - timedelta(seconds=1)  # Salesforce stamps to the millisecond
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                job = self.json("POST", self.data_path("jobs/query"), sobject=sobject, json=body, idempotent=False)
            except OutcomeUnknown as exc:
                if attempt == self.retry.max_attempts:
                    raise OutcomeUnknown(
                        f"{exc.detail} (after {attempt} attempts; a job may exist)",
                        sobject=exc.sobject,
                        request=exc.request,
                    ) from exc
                log.warning("[%s] creating the query job: %s, the job may exist; creating it again", sobject, exc)
                continue
            if attempt > 1:  # an earlier attempt's answer was lost: its job, if any, is not ours to keep
                self._abort_lost_jobs(job, started)
            return job
        raise AssertionError("unreachable")

    def _abort_lost_jobs(self, kept: dict, since: datetime) -> None:
        for other in self.list_jobs():
            if (
                other["id"] != kept["id"]
                and other.get("object") == kept.get("object")
                and other.get("operation") == kept.get("operation")
                and other.get("createdById") == kept.get("createdById")
                and _salesforce_time(other.get("createdDate")) >= since
            ):
                if other.get("state") in ("UploadComplete", "InProgress"):
                    # it may finish between the list and the abort: then Salesforce refuses the abort, and
                    # deleting it is all that is left to do
                    with contextlib.suppress(QueryError):
                        self.abort_job(other["id"], sobject=kept.get("object"))
                self.delete_job(other["id"], sobject=kept.get("object"))
                log.warning(
                    "[%s] aborted and deleted query job %s, created by a lost answer", kept["object"], other["id"]
                )

    def get_job(self, job_id: str, *, sobject: str | None = None) -> dict:
        return self.json("GET", self.data_path(f"jobs/query/{job_id}"), sobject=sobject)

    def abort_job(self, job_id: str, *, sobject: str | None = None) -> dict:
        return self.json("PATCH", self.data_path(f"jobs/query/{job_id}"), sobject=sobject, json={"state": "Aborted"})

    def delete_job(self, job_id: str, *, sobject: str | None = None) -> None:
        self.request("DELETE", self.data_path(f"jobs/query/{job_id}"), sobject=sobject)

    def list_jobs(self) -> list[dict]:
        return self.json("GET", self.data_path("jobs/query"))["records"]


def _salesforce_time(value: str | None) -> datetime:
    """Salesforce's ``2026-12-06T05:00:00.000+0000``; the epoch when absent or unreadable."""
    try:
        return datetime.strptime(value or "", "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
