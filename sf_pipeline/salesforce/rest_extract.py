"""REST ``query``/``queryAll`` extracts, for objects Bulk API 2.0 cannot query: ``nextRecordsUrl`` paging,
records streamed to CSV page files in Bulk's own format (a quoted header, every value quoted, null as an
empty field, LF), so the same splitter, loader and checks take them.

Only one batch of records (2,000 by default) is in memory at a time. Numbers keep the text Salesforce
sent (JSON numbers are parsed as strings), so a value loads exactly as its Bulk CSV would.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

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
    ) -> None:
        self.client = client
        self.sobject = sobject
        self.fields = fields
        self.out_dir = Path(out_dir)
        self.include_deleted = include_deleted
        self.page_records = page_records
        self.on_page = on_page
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

    def run(self) -> ExtractResult:
        started = time.monotonic()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob("*.csv"):
            stale.unlink()
        endpoint = "queryAll" if self.include_deleted else "query"
        body = self._get(self.client.data_path(endpoint), {"q": self.soql})
        expected = int(body.get("totalSize", 0))
        header = (",".join(f'"{name}"' for name in self.fields) + "\n").encode()
        files: list[Path] = []
        counts: list[int] = []
        out, in_page = None, 0
        try:
            while True:
                records = body.get("records", [])
                for record in records:
                    if out is None:
                        files.append(self.out_dir / f"{self.sobject}.{len(files):05d}.csv")
                        out, in_page = open(files[-1].with_suffix(".part"), "wb", buffering=1 << 20), 0
                        out.write(header)
                    out.write((",".join(csv_value(record.get(name)) for name in self.fields) + "\n").encode())
                    in_page += 1
                    if in_page >= self.page_records:
                        self._finish(out, files[-1], in_page, expected, counts)
                        out = None
                next_url = body.get("nextRecordsUrl")
                if body.get("done", True) or not next_url:
                    break
                body = self._get(next_url)
            if out is None and not files:  # no record: one page of just the header, as Bulk sends
                files.append(self.out_dir / f"{self.sobject}.00000.csv")
                out, in_page = open(files[-1].with_suffix(".part"), "wb"), 0
                out.write(header)
            if out is not None:
                self._finish(out, files[-1], in_page, expected, counts)
                out = None
        finally:
            if out is not None:
                out.close()
        if sum(counts) != expected:
            raise UnexpectedResponseError(
                f"REST {endpoint} returned {sum(counts)} records but said totalSize {expected}", sobject=self.sobject
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

    def _finish(self, out, final: Path, records: int, expected: int, counts: list[int]) -> None:
        out.close()
        final.with_suffix(".part").replace(final)
        counts.append(records)
        if self.on_page is not None:
            self.on_page(final, records, expected)
