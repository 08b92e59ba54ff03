"""REST ``query``/``queryAll`` extracts, for objects Bulk API 2.0 cannot query: ``nextRecordsUrl`` paging,
records streamed to CSV page files in Bulk's own format (a quoted header, every value quoted, null as an
empty field, LF), so the same splitter, loader and checks take them.

Only one batch of records (2,000 by default) is in memory at a time. Numbers keep the text Salesforce
sent (JSON numbers are parsed as strings), so a value loads exactly as its Bulk CSV would.

A query's first answer says how many records it holds (``totalSize``): given ``at_most``, an extract stops
there, before writing a record, when the window holds more (``TooManyForRest``), so the route of a Bulk
object's window is chosen by the same call that starts reading it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from .bulk import ExtractResult, PageSink
from .client import SalesforceClient, html_error, is_html
from .errors import UnexpectedResponseError
from .soql import build_query

log = logging.getLogger(__name__)

PAGE_RECORDS = 50_000  # records per page file handed on to the loader


def csv_value(value: object) -> str:
    """One JSON value as Bulk writes it: quoted, quotes doubled; booleans lower case; null as nothing."""
    if value is None:
        return ""
    if value is True or value is False:
        text = "true" if value else "false"
    elif isinstance(value, dict | list):  # a compound value (REST only): its text, though it is never selected
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


class TooManyForRest(Exception):
    """The window holds more records than ``RestExtract``'s ``at_most``: nothing was written."""

    def __init__(self, sobject: str, records: int, at_most: int) -> None:
        super().__init__(f"[{sobject}] {records} record(s) in the window, over the REST route's {at_most}")
        self.records = records


class RestExtract:
    """One object's REST extract into ``out_dir``; ``run()`` returns the page files in order."""

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
        page_records: int = PAGE_RECORDS,
        on_page: PageSink | None = None,
        at_most: int | None = None,
    ) -> None:
        self.client = client
        self.sobject = sobject
        self.fields = fields
        self.out_dir = Path(out_dir)
        self.include_deleted = include_deleted
        self.page_records = page_records
        self.on_page = on_page
        self.at_most = at_most  # records the window may hold, or TooManyForRest after the first answer
        self.soql = build_query(sobject, fields, cursor_field, since, until, where)

    def _get(self, path: str, params: dict | None = None) -> dict:
        response = self.client.request("GET", path, sobject=self.sobject, params=params)
        if is_html(response):
            raise html_error(response, "query records (JSON)", self.sobject)
        try:
            return json.loads(response.content, parse_float=str, parse_int=str)
        except ValueError as exc:
            raise UnexpectedResponseError(
                f"expected JSON query records, got {response.headers.get('content-type')}",
                sobject=self.sobject,
                request=f"GET {path}",
            ) from exc

    def _batches(self, endpoint: str) -> Iterator[dict]:
        """The query's answers, first to last (``nextRecordsUrl``), each one batch of records."""
        body = self._get(self.client.data_path(endpoint), {"q": self.soql})
        yield body
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self._get(body["nextRecordsUrl"])
            yield body

    def run(self) -> ExtractResult:
        started = time.monotonic()
        endpoint = "queryAll" if self.include_deleted else "query"
        pages = _Pages(self.out_dir, self.sobject, self.fields, self.page_records, self.on_page)
        with contextlib.closing(pages):
            for body in self._batches(endpoint):
                pages.expected = int(body.get("totalSize", 0))
                if self.at_most is not None and pages.expected > self.at_most:
                    raise TooManyForRest(self.sobject, pages.expected, self.at_most)
                for record in body.get("records", []):
                    pages.write(",".join(csv_value(record.get(name)) for name in self.fields))
            files, counts = pages.finish()
        if sum(counts) != pages.expected:
            raise UnexpectedResponseError(
                f"REST {endpoint} returned {sum(counts)} records but said totalSize {pages.expected}",
                sobject=self.sobject,
            )
        result = ExtractResult(
            self.sobject,
            "rest",
            self.soql,
            files,
            sum(counts),
            sum(f.stat().st_size for f in files),
            time.monotonic() - started,
            list(self.fields),
            page_records=counts,
            route="rest",
        )
        log.info(
            "[%s] extracted %d records by REST %s in %d file(s), %.1f MB, %.1fs",
            self.sobject,
            result.records,
            endpoint,
            len(files),
            result.bytes / 1e6,
            result.seconds,
        )
        return result


class _Pages:
    """Records written into page files of at most ``page_records`` each (a quoted header first), each page
    renamed from ``.part`` and announced to ``on_page`` once complete; no record at all gives one page of just
    the header, as Bulk sends."""

    def __init__(self, out_dir: Path, sobject: str, fields: list[str], page_records: int, on_page) -> None:
        self.out_dir, self.sobject, self.page_records, self.on_page = Path(out_dir), sobject, page_records, on_page
        self.header = (",".join(f'"{name}"' for name in fields) + "\n").encode()
        self.expected = 0  # the query's totalSize, told to on_page with each page
        self.files: list[Path] = []
        self.counts: list[int] = []
        self._out: BinaryIO | None = None
        self._in_page = 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*self.out_dir.glob("*.csv"), *self.out_dir.glob("*.part")]:
            stale.unlink()

    def _open(self) -> BinaryIO:
        self.files.append(self.out_dir / f"{self.sobject}.{len(self.files):05d}.csv")
        self._out, self._in_page = open(self.files[-1].with_suffix(".part"), "wb", buffering=1 << 20), 0
        self._out.write(self.header)
        return self._out

    def write(self, line: str) -> None:
        (self._out or self._open()).write((line + "\n").encode())
        self._in_page += 1
        if self._in_page >= self.page_records:
            self._finish_page()

    def _finish_page(self) -> None:
        assert self._out is not None
        self._out.close()
        self._out = None
        final = self.files[-1]
        final.with_suffix(".part").replace(final)
        self.counts.append(self._in_page)
        if self.on_page is not None:
            self.on_page(final, self._in_page, self.expected)

    def finish(self) -> tuple[list[Path], list[int]]:
        if self._out is None and not self.files:
            self._open()
        if self._out is not None:
            self._finish_page()
        return self.files, self.counts

    def close(self) -> None:
        """After a failure: the open page is closed and left as ``.part``, never loaded."""
        if self._out is not None:
            self._out.close()
            self._out = None
