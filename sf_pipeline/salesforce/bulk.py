"""Bulk API 2.0 extracts: run a query job and stream its result pages to CSV files on disk.

Pages download concurrently (``resultPages``, API 58.0+) or by following ``Sforce-Locator``; each is
written through a small buffer to ``<name>.part`` and renamed when its header and record count check
out, and a manifest records the job, so an interrupted extract resumes from the last complete page.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from ..common.csvscan import RecordScanner
from ..common.faultpoints import faultpoint
from ..common.memory import peak_rss_mb
from ..common.sizing import UNSIZED
from .client import SalesforceClient, html_error, is_html
from .denylists import is_bulk_refusal
from .errors import JobFailedError, JobTimeoutError, QueryError, SalesforceError, UnexpectedResponseError
from .retries import retrying
from .settings import PAGE_RECORDS, REST_MAX_RECORDS
from .soql import build_query

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WRITE_BUFFER = 1 << 20

PageSink = Callable[[Path, int, int], None]
"""Told of each page as soon as it is complete on disk (``path, records, job's total records``), from the
download threads: the caller can load early pages while later ones download."""


@dataclass(frozen=True)
class ExtractOptions:
    """How a job is polled and its results fetched. These defaults are the pipeline's (the Dagster
    resource and the CLI take theirs from here)."""

    max_records: int | None = PAGE_RECORDS  # records per result page (the server may send fewer)
    concurrency: int | None = None  # pages downloaded at once; None: the load's sizes (sizing)
    gzip: bool = True
    # a job's status is asked at 0.5 s, then each wait 1.5 times the last, at most 5 s apart: a job that takes
    # Bulk's floor (~10-14 s on a real org) is seen within ~1 s of its end (doubling up to 10 s saw a 10 s
    # job at 12.6 s), for 7 status requests where doubling made 6
    poll_initial_s: float = 0.5
    poll_growth: float = 1.5
    poll_max_s: float = 5.0
    job_timeout_s: float = 6 * 3600
    delete_job: bool = True  # delete the job from Salesforce once every page is on disk
    # a bulk-route window expected to hold at most this many records is read by REST instead (0: never)
    rest_max_records: int = REST_MAX_RECORDS

    @property
    def pages_in_flight(self) -> int:
        """The pages downloading at once: the one given (a load's: ``sizing``), else the smallest a load takes."""
        return self.concurrency or UNSIZED.pages_in_flight


def poll_delays(options: ExtractOptions) -> Iterator[float]:
    """The waits between a job's status requests: ``poll_initial_s``, each ``poll_growth`` times the last, at
    most ``poll_max_s``."""
    delay = options.poll_initial_s
    while True:
        yield delay
        delay = min(delay * options.poll_growth, options.poll_max_s)


class _PageCut(Exception):
    """A result page's body ended early or could not be read: worth fetching again."""


@dataclass
class ExtractResult:
    sobject: str
    job_id: str
    soql: str
    files: list[Path]
    records: int
    bytes: int
    seconds: float
    fields: list[str]
    resumed_pages: int = 0
    page_records: list[int] = field(default_factory=list)  # data records per file, as verified on download
    route: str = "bulk"  # bulk, or rest (REST queryAll pages)
    demoted: str = ""  # why a bulk object went by REST in this run: Salesforce's refusal of the Bulk job
    expected: int | None = None  # the window's records (REST's totalSize), when the route was chosen by size


@dataclass
class _Manifest:
    soql: str
    operation: str
    job_id: str
    api_version: str
    pages: dict[str, int] = field(default_factory=dict)  # file name -> records
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> _Manifest | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


class BulkExtract:
    """One object's extract into ``out_dir``: ``run()`` returns the page files in order."""

    def __init__(
        self,
        client: SalesforceClient,
        sobject: str,
        fields: list[str],
        out_dir: Path,
        *,
        cursor_field: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_deleted: bool = False,
        where: str | None = None,
        options: ExtractOptions | None = None,
        on_page: PageSink | None = None,
    ) -> None:
        self.client = client
        self.on_page = on_page
        self._expected = 0
        self.sobject = sobject
        self.fields = fields
        self.out_dir = Path(out_dir)
        self.include_deleted = include_deleted
        self.options = options or ExtractOptions()
        self.soql = build_query(sobject, fields, cursor_field, since, until, where)
        self.operation = "queryAll" if include_deleted else "query"
        self._manifest_lock = threading.Lock()

    # -- job ------------------------------------------------------------------------------------------
    def _resume_manifest(self) -> _Manifest | None:
        manifest = _Manifest.load(self.out_dir / MANIFEST)
        if manifest is None or (manifest.soql, manifest.operation, manifest.api_version) != (
            self.soql,
            self.operation,
            self.client.api_version,
        ):
            return None
        try:
            info = self.client.get_job(manifest.job_id, sobject=self.sobject)
        except SalesforceError as exc:
            log.info(
                "[%s] job %s from an earlier run is gone (%s); starting a new one", self.sobject, manifest.job_id, exc
            )
            return None
        if info.get("state") in ("Failed", "Aborted"):
            return None
        log.info(
            "[%s] resuming job %s with %d page(s) already on disk", self.sobject, manifest.job_id, len(manifest.pages)
        )
        return manifest

    def _start_job(self) -> _Manifest:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in list(self.out_dir.glob("*.csv")) + list(self.out_dir.glob("*.part")):
            stale.unlink()
        job = self.client.create_query_job(self.soql, sobject=self.sobject, include_deleted=self.include_deleted)
        manifest = _Manifest(self.soql, self.operation, job["id"], self.client.api_version)
        manifest.save(self.out_dir / MANIFEST)
        log.info("[%s] created %s job %s", self.sobject, self.operation, job["id"])
        return manifest

    def wait_for_job(self, job_id: str) -> dict:
        """Poll with capped exponential backoff; abort the job if the caller is interrupted."""
        delays = poll_delays(self.options)
        deadline = time.monotonic() + self.options.job_timeout_s
        try:
            while True:
                info = self.client.get_job(job_id, sobject=self.sobject)
                state = info.get("state")
                if state == "JobComplete":
                    return info
                if state in ("Failed", "Aborted"):
                    raise JobFailedError(
                        f"query job {job_id} ended {state}: {info.get('errorMessage') or 'no errorMessage given'}",
                        sobject=self.sobject,
                        request=f"GET jobs/query/{job_id}",
                    )
                if time.monotonic() > deadline:
                    raise JobTimeoutError(
                        f"query job {job_id} still {state} after {self.options.job_timeout_s:.0f}s",
                        sobject=self.sobject,
                    )
                time.sleep(next(delays))
        except BaseException as exc:
            if not isinstance(exc, JobFailedError) or isinstance(exc, JobTimeoutError):  # still running: abort it
                self._abort(job_id)
            raise

    def _abort(self, job_id: str) -> None:
        try:
            self.client.abort_job(job_id, sobject=self.sobject)
            log.warning("[%s] aborted query job %s", self.sobject, job_id)
        except Exception as exc:  # noqa: BLE001 - best effort while already failing
            log.warning("[%s] could not abort query job %s: %s", self.sobject, job_id, exc)

    # -- pages ----------------------------------------------------------------------------------------
    def _page_urls(self, job_id: str) -> Iterator[str] | None:
        """Result URLs in order: from resultPages when the org offers it, else None (sequential)."""
        if float(self.client.api_version) < 58.0:
            return None
        params = {"maxRecords": self.options.max_records} if self.options.max_records else {}
        path = self.client.data_path(f"jobs/query/{job_id}/resultPages")
        try:
            body = self.client.json("GET", path, sobject=self.sobject, params=params)
        except SalesforceError as exc:
            if exc.status == 404:
                return None
            raise

        def urls(body: dict) -> Iterator[str]:
            while True:
                yield from (page["resultUrl"] for page in body.get("resultPages", []))
                if body.get("done", True) or not body.get("nextRecordsUrl"):
                    return
                body = self.client.json("GET", body["nextRecordsUrl"], sobject=self.sobject)

        return urls(body)

    def _download(self, url: str, name: str) -> tuple[int, str | None]:
        """Stream one result page to ``name``; return (records, next locator)."""
        final = self.out_dir / name
        part = final.with_suffix(".part")
        headers = {"Accept-Encoding": "gzip"} if self.options.gzip else {"Accept-Encoding": "identity"}

        def once() -> tuple[int, str | None]:
            try:
                return self._download_once(url, part, final, headers)
            except SalesforceError:
                raise
            except Exception as exc:  # a body cut mid-stream: the page is fetched again from its locator
                part.unlink(missing_ok=True)
                raise _PageCut(exc) from exc

        policy = self.client.retry
        try:
            return retrying(policy, f"[{self.sobject}] result page {name}", also=(_PageCut,))(once)
        except _PageCut as exc:
            cause = exc.__cause__
            raise SalesforceError(
                f"result page {name} failed {policy.max_attempts} times: {type(cause).__name__}: {cause}",
                sobject=self.sobject,
                request=f"GET {url.split('?')[0]}",
            ) from cause

    def _download_once(self, url: str, part: Path, final: Path, headers: dict[str, str]) -> tuple[int, str | None]:
        with self.client.stream("GET", url, sobject=self.sobject, headers=headers) as response:
            if is_html(response) or "csv" not in response.headers.get("content-type", ""):
                if is_html(response):
                    raise html_error(response, "CSV results", self.sobject)
                raise UnexpectedResponseError(
                    f"expected text/csv results, got {response.headers.get('content-type')!r}",
                    sobject=self.sobject,
                    request=f"GET {url.split('?')[0]}",
                )
            reported = response.headers.get("Sforce-NumberOfRecords")
            locator = response.headers.get("Sforce-Locator")
            scanner = RecordScanner()
            head = b""
            with open(part, "wb", buffering=WRITE_BUFFER) as out:
                for chunk in response.iter_bytes(WRITE_BUFFER):
                    if len(head) < 65536 and scanner.records == 0:
                        head += chunk[:65536]
                    scanner.feed(chunk)
                    out.write(chunk)
        if scanner.inside:
            raise UnexpectedResponseError(
                f"result page ends inside a quoted value ({scanner.offset} bytes)",
                sobject=self.sobject,
                request=f"GET {url.split('?')[0]}",
            )
        self._check_header(head, url)
        records = max(scanner.complete_records - 1, 0)
        if reported is not None and int(reported) != records:
            raise UnexpectedResponseError(
                f"page holds {records} records but Sforce-NumberOfRecords says {reported}",
                sobject=self.sobject,
                request=f"GET {url.split('?')[0]}",
            )
        os.replace(part, final)
        return records, None if locator in (None, "", "null") else locator

    def _check_header(self, head: bytes, url: str) -> None:
        first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
        header = next(csv.reader(io.StringIO(first)), [])
        if [h.lower() for h in header] != [f.lower() for f in self.fields]:
            shown = ", ".join(header[:6]) + ("..." if len(header) > 6 else "")
            raise UnexpectedResponseError(
                f"CSV header does not match the fields requested: got [{shown}] "
                f"({len(header)} columns), expected {len(self.fields)} columns starting "
                f"{', '.join(self.fields[:3])}",
                sobject=self.sobject,
                request=f"GET {url.split('?')[0]}",
            )

    def _record_page(self, manifest: _Manifest, name: str, records: int) -> None:
        with self._manifest_lock:
            manifest.pages[name] = records
            manifest.save(self.out_dir / MANIFEST)
            pages, total = len(manifest.pages), sum(manifest.pages.values())
        log.info(
            "[%s] page %s on disk: %d records, %.1f MB (%d page(s), %d records so far, %.0fs, peak RSS %.0f MB)",
            self.sobject,
            name,
            records,
            (self.out_dir / name).stat().st_size / 1e6,
            pages,
            total,
            time.monotonic() - self._started,
            peak_rss_mb(),
        )
        faultpoint("page_written", self.sobject)
        self._announce(name, records)

    def _announce(self, name: str, records: int) -> None:
        if self.on_page is not None:
            self.on_page(self.out_dir / name, records, self._expected)

    def run(self) -> ExtractResult:
        started = self._started = time.monotonic()
        manifest = self._resume_manifest() or self._start_job()
        resumed = len(manifest.pages)
        job = self.wait_for_job(manifest.job_id)
        self._expected = int(job.get("numberRecordsProcessed") or 0)
        urls = self._page_urls(manifest.job_id)
        names: list[str] = []
        if urls is None:
            self._download_sequential(manifest, names)
        else:
            self._download_parallel(manifest, urls, names)
        files = [self.out_dir / n for n in names]
        records = sum(manifest.pages[n] for n in names)
        expected = int(job.get("numberRecordsProcessed", records))
        if records != expected:
            raise UnexpectedResponseError(
                f"{records} records on disk but job {manifest.job_id} reported {expected}", sobject=self.sobject
            )
        manifest.complete = True
        manifest.save(self.out_dir / MANIFEST)
        if self.options.delete_job:
            try:
                self.client.delete_job(manifest.job_id, sobject=self.sobject)
            except SalesforceError as exc:
                log.warning("[%s] could not delete job %s: %s", self.sobject, manifest.job_id, exc)
        result = ExtractResult(
            self.sobject,
            manifest.job_id,
            self.soql,
            files,
            records,
            sum(f.stat().st_size for f in files),
            time.monotonic() - started,
            list(self.fields),
            resumed,
            [manifest.pages[n] for n in names],
        )
        log.info(
            "[%s] extracted %d records in %d file(s), %.1f MB, %.1fs",
            self.sobject,
            records,
            len(files),
            result.bytes / 1e6,
            result.seconds,
        )
        return result

    def _page_name(self, index: int) -> str:
        return f"{self.sobject}.{index:05d}.csv"

    def _download_parallel(self, manifest: _Manifest, urls, names: list[str]) -> None:
        """The pages not already on disk, ``pages_in_flight`` at a time once ramped up: the first page
        downloads alone and each page done lets one more start, so the first chunk is on disk (and loading)
        early instead of every page finishing together at the end (bench/README, the overlap)."""
        todo: list[tuple[str, str]] = []
        for index, url in enumerate(urls):
            name = self._page_name(index)
            names.append(name)
            if name in manifest.pages and (self.out_dir / name).exists():
                self._announce(name, manifest.pages[name])  # resumed from a dead run
            else:
                todo.append((url, name))
        limit, waiting, finished = self.options.pages_in_flight, iter(todo), 0
        running: set[Future] = set()
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"sf-{self.sobject}") as pool:
            try:
                while True:
                    while len(running) < min(limit, 1 + finished) and (page := next(waiting, None)):
                        running.add(pool.submit(self._download_and_record, manifest, *page))
                    if not running:
                        return
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()  # the first error goes on; the pages in flight finish, no new one starts
                        finished += 1
            finally:
                for future in running:
                    future.cancel()

    def _download_and_record(self, manifest: _Manifest, url: str, name: str) -> None:
        records, _ = self._download(url, name)
        self._record_page(manifest, name, records)

    def _download_sequential(self, manifest: _Manifest, names: list[str]) -> None:
        base = self.client.data_path(f"jobs/query/{manifest.job_id}/results")
        locator: str | None = None
        index = 0
        while True:
            params = []
            if self.options.max_records:
                params.append(f"maxRecords={self.options.max_records}")
            if locator:
                params.append(f"locator={locator}")
            url = base + ("?" + "&".join(params) if params else "")
            name = self._page_name(index)
            names.append(name)
            records, locator = self._download(url, name)
            self._record_page(manifest, name, records)
            if locator is None:
                return
            index += 1


def check_cursor_field(sobject: str, cursor_field: str | None, fields: list[str]) -> None:
    """A window needs its cursor field among the fields queried."""
    if cursor_field and cursor_field.lower() not in {f.lower() for f in fields}:
        raise UnexpectedResponseError(
            f"cursor field {cursor_field} is not a queryable field of {sobject}", sobject=sobject
        )


def extract_object(
    client: SalesforceClient,
    sobject: str,
    out_dir: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    include_deleted: bool = False,
    cursor_field: str | None = "SystemModstamp",
    fields: list[str] | None = None,
    exclude_fields: list[str] | None = None,
    options: ExtractOptions | None = None,
    describe: dict | None = None,
    on_page: PageSink | None = None,
    route: str = "bulk",
    where: str | None = None,
) -> tuple[ExtractResult, dict]:
    """Describe ``sobject``, select its queryable fields and extract them; returns (result, describe).

    ``route="rest"`` reads REST queryAll pages instead of a Bulk job; so does a bulk-route window of at most
    ``options.rest_max_records`` records (a Bulk job costs a floor of seconds and one of the org's 10,000 daily
    jobs, whatever its size): it is read by REST first, and REST's first answer, which says the window's size,
    hands a bigger window to Bulk (that answer's batch read and dropped: the call a ``COUNT()`` would have
    cost). A Bulk job of an earlier run with pages on disk is resumed rather than asked again. A Bulk job that
    Salesforce refuses for the object itself (``denylists.BULK_REFUSALS``, the daily job quota included) is
    demoted to REST for this run, said in the result."""
    from .rest_extract import RestExtract  # it builds on this module's ExtractResult
    from .soql import check_identifier, select_fields

    check_identifier(sobject, "sObject")
    describe = describe or client.describe(sobject)
    selection = select_fields(describe, fields, exclude_fields)
    names = {f.lower() for f in selection.names}
    if since or until:
        check_cursor_field(sobject, cursor_field, selection.names)
    if include_deleted and "isdeleted" not in names:
        include_deleted = False  # objects without IsDeleted (User) have no soft-deleted rows to see
    window = {"cursor_field": cursor_field, "since": since, "until": until, "include_deleted": include_deleted}

    def by_rest(at_most: int | None = None) -> ExtractResult:
        return RestExtract(
            client, sobject, selection.names, out_dir, where=where, on_page=on_page, at_most=at_most, **window
        ).run()

    if route == "rest":
        return by_rest(), describe
    options = options or ExtractOptions()
    small, expected = _small_by_rest(sobject, by_rest, options, Path(out_dir))
    if small is not None:
        return small, describe
    bulk = BulkExtract(
        client, sobject, selection.names, out_dir, where=where, options=options, on_page=on_page, **window
    )
    result = _bulk_demoted_on_refusal(sobject, bulk, by_rest)
    result.expected = expected
    return result, describe


def _small_by_rest(
    sobject: str, by_rest: Callable[[int], ExtractResult], options: ExtractOptions, out_dir: Path
) -> tuple[ExtractResult | None, int | None]:
    """A Bulk object's window read by REST when REST's first answer says it holds at most
    ``options.rest_max_records``: (the result, None); else (None, the window's size) for Bulk, or (None, None)
    when the route is not chosen by size (switched off, or an earlier run's Bulk job with pages to resume)."""
    from .rest_extract import TooManyForRest

    if not options.rest_max_records or (out_dir / MANIFEST).exists():
        return None, None
    try:
        result = by_rest(options.rest_max_records)
    except TooManyForRest as too_many:
        log.info("[%s] %s: read by a Bulk job", sobject, too_many)
        return None, too_many.records
    result.expected = result.records
    return result, None


def _bulk_demoted_on_refusal(sobject: str, bulk: BulkExtract, by_rest: Callable[[], ExtractResult]) -> ExtractResult:
    """The Bulk extract, or REST when Salesforce refuses the object's Bulk job (said in ``demoted``)."""
    try:
        return bulk.run()
    except QueryError as exc:
        if not is_bulk_refusal(str(exc)):
            raise
        log.warning("[%s] Bulk API 2.0 refused the object (%s): reading it by REST for this run", sobject, exc)
        result = by_rest()
        result.demoted = str(exc)
        return result
