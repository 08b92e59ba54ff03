"""Bulk API 2.0 query jobs: create, get, list, abort, delete, results and resultPages."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import zlib
from pathlib import Path

from .results import (
    DELIMITERS,
    LINE_ENDINGS,
    Selection,
    check_access,
    gzip_page_path,
    resolve_fields,
    validate_bulk,
)
from .soql import parse
from .state import ApiError, EmulatorState, Job, _now_iso, _run_job, decode_locator, encode_locator

log = logging.getLogger(__name__)


class JobEndpoints:
    state: EmulatorState

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
        check_access(model, query, bulk=True)
        validate_bulk(query)
        resolve_fields(model, query, bulk=True)  # bad fields fail the create call, as in Salesforce
        st.count_bulk_job()
        job = Job(st.new_job_id(), operation, model.name, soql, version, delimiter, line_ending, _now_iso())
        fail = st.faults.take("create", model.name, {"job_failed"})
        slow = st.faults.take("poll", model.name, {"slow_job"})
        if slow is not None:
            job.slow_polls = slow.polls
        with st.lock:
            st.jobs[job.id] = job
        # what create answers is the job as created (UploadComplete), before it starts to run
        created = {
            k: v
            for k, v in job.info().items()
            if k not in ("numberRecordsProcessed", "retries", "totalProcessingTime", "jobType")
        }
        threading.Thread(target=_run_job, args=(st, job, fail), daemon=True, name=f"job-{job.id}").start()
        if st.faults.take("create", model.name, {"lost_answer"}) is not None:
            self.close_connection = True  # as a proxy that drops the answer: the job exists, the caller cannot tell
            return
        self._json(200, created)

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
        packed = gzip_page_path(selection, ranges) if gzip_ok and cut is None else None  # a cut page: never kept
        if packed is not None and packed.exists():
            # compressed the first time this page was served: a real org's gzip runs on its servers,
            # not on the cores the client and its load share here
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(packed.stat().st_size))
            self.end_headers()
            with open(packed, "rb") as f:
                self.connection.sendfile(f)
        elif gzip_ok:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_gzip(selection, ranges, cut is not None, packed)
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

    def _send_gzip(
        self, selection: Selection, ranges: list[tuple[int, int]], cut: bool, keep: Path | None = None
    ) -> None:
        """Compress the page on the fly (chunked); with ``keep``, also save the compressed page there."""
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        sent = 0
        total = sum(length for _, length in ranges)
        saved = None
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            saved = tempfile.NamedTemporaryFile(dir=keep.parent, suffix=".tmp", delete=False)

        def chunk(data: bytes) -> None:
            if data:
                if saved is not None:
                    saved.write(data)
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

        try:
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
            if saved is not None:
                saved.close()
                os.replace(saved.name, keep)  # type: ignore[arg-type]
                saved = None
        finally:
            if saved is not None:
                saved.close()
                os.unlink(saved.name)
