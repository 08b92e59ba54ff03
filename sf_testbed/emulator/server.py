"""The emulator's HTTP server: OAuth, sObject metadata, REST query and Bulk API 2.0 query jobs.

Plain ``http.server`` with one thread per connection: results are sent with ``sendfile`` from the
cached CSV, or gzip-compressed when asked (on the fly, and a page of 8 MB or more kept compressed
next to its file for the next time), so serving runs near disk speed. The endpoint
families live in auth.py, rest.py, jobs.py and admin.py; the state and job lifecycle in state.py.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .admin import AdminEndpoints
from .auth import AuthEndpoints
from .faults import Fault
from .jobs import JobEndpoints
from .replication import ReplicationEndpoints
from .rest import RestEndpoints
from .soql import SoqlError
from .state import HTML_LOGIN_PAGE, VERSION_PATH, ApiError, EmulatorConfig, EmulatorState

log = logging.getLogger(__name__)


class Handler(AuthEndpoints, RestEndpoints, ReplicationEndpoints, JobEndpoints, AdminEndpoints, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "sf-pipeline-emulator/1.0"
    state: EmulatorState  # set on the subclass made by make_server

    _limit_info: str | None = None  # set for API calls: sent as Sforce-Limit-Info on the answer
    _captured: list[tuple[int, bytes, dict[str, str]]] | None = None  # a composite's subrequest answers

    def end_headers(self) -> None:
        if self._limit_info:
            self.send_header("Sforce-Limit-Info", self._limit_info)
        super().end_headers()

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
        if self._captured is not None:  # a composite subrequest: its answer goes into the composite's body
            self._captured.append((status, body, dict(headers or {})))
            return
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

    def _captured_answer(self, call: Callable[[], None]) -> tuple[int, bytes, dict[str, str]]:
        """What ``call`` answers (status, body, headers), kept instead of sent."""
        self._captured = []
        try:
            try:
                call()
            except ApiError as err:
                self._error(err)
            except SoqlError as err:
                self._error(ApiError(400, err.code, err.message))
            return self._captured[0]
        finally:
            self._captured = None

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
        self._limit_info = None
        with st.lock:
            st.requests[f"{method} {re.sub(r'7505g[0-9]+AAA', '{id}', url.path)}"] = (
                st.requests.get(f"{method} {re.sub(r'7505g[0-9]+AAA', '{id}', url.path)}", 0) + 1
            )
        try:
            if url.path.startswith("/__emulator__/"):
                return self._admin(method, url.path)
            if st.config.request_latency_s:
                time.sleep(st.config.request_latency_s)  # the network round trip to a real org
            if url.path == "/services/oauth2/token" and method == "POST":
                return self._token()
            if url.path in ("/services/data", "/services/data/"):
                return self._json(200, [{"version": f"{v}.0", "url": f"/services/data/v{v}.0"} for v in range(50, 67)])
            m = VERSION_PATH.match(url.path)
            if not m:
                raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {url.path}")
            version, rest = m.group("version"), (m.group("rest") or "/").rstrip("/")
            token = st.check_token(self.headers.get("Authorization"))
            self._limit_info = st.count_api_call()
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
