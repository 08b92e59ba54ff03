"""fakesnow's HTTP server with narrow shims, for the Snowflake tests. Each shim exists because fakesnow
0.12.1 (with its sqlglot) cannot run a statement dlt 1.31 issues exactly as Snowflake accepts it:

1. fakesnow describes every statement's result by running ``DESCRIBE <last statement>``, which its
   parser rejects for DDL (``CREATE TABLE ...``); dlt reads ``cursor.description`` after its DDL. A
   statement DuckDB cannot describe is described as Snowflake describes DDL: one ``status`` column.
2. dlt writes table-stage locations as quoted literals (``'@"SCHEMA"."%TABLE"/"load_id"'``), which
   Snowflake accepts and fakesnow's PUT/COPY parser does not; they are passed unquoted.
3. Comma-separated ``FILE_FORMAT = (TYPE = 'PARQUET', ...)`` options parse into a shape fakesnow
   rejects; Snowflake accepts them space-separated too. ``MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'``
   is passed unquoted, as fakesnow expects.
4. **External stage on Azure**: fakesnow cannot read ``azure://`` URLs (DuckDB's azure extension cannot
   be downloaded here). A ``COPY INTO ... FROM 'azure://<account>.blob.core.windows.net/<container>/<blob>'``
   is served by downloading that blob from the Azure endpoint of ``AZURE_STORAGE_CONNECTION_STRING``
   (Azurite in the tests) and copying from the downloaded file, as Snowflake reads the bucket itself.
   The SAS token dlt sends is required to be present but not validated (Azurite validates the
   account key used for the upload). Each such COPY is appended to ``FAKESNOW_COPY_LOG`` (JSON lines:
   the blob, the file format, and the statement with its SAS token masked), so a test can see which
   staged files the warehouse read and how.
5. fakesnow copies a JSON file into a table as one VARIANT value per row, so a JSON COPY into the
   typed, multi-column tables dlt creates (``MATCH_BY_COLUMN_NAME``, which Snowflake supports for JSON)
   fails with a binder error. It is logged and then refused with an error that says so; the JSONL test
   checks the statement and the staged file instead of the rows.
6. fakesnow's parser has no ``ALTER TABLE a SWAP WITH b`` (Snowflake's atomic exchange of two tables, which
   a full refresh uses to put its shadow table in place): it runs as three renames to the same end state.
7. fakesnow parses a ``COPY`` only as a request's one statement: a request of ``TRUNCATE TABLE`` statements and
   then a ``COPY`` (how the pipeline sends dlt's truncation of a staging table with the load's COPY) runs its
   statements one after another, as Snowflake runs a multi-statement request.
Nothing else is changed.

And a production-latency profile, off unless asked for (``FAKESNOW_LATENCY``, e.g.
``login=0.4,statement=0.12,information_schema=0.6`` in seconds, shared/docs/production-latency.md): each login
and each statement waits as a round trip to Snowflake would, INFORMATION_SCHEMA statements longer; with
``FAKESNOW_STATEMENT_LOG`` every login and statement is a JSON line there (``kind``: login, statement or
information_schema), so a test or a bench can count what one load costs.

Usage: python -m sf_pipeline_tests.fakesnow_server --host 127.0.0.1 --port P
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import snowflake.connector.errors
from fakesnow.cursor import FakeSnowflakeCursor

_original_describe = FakeSnowflakeCursor._describe_last_sql  # noqa: SLF001
_original_execute = FakeSnowflakeCursor.execute

_STAGE_LITERAL = re.compile(r"""'@"([^"]+)"\."(%[^"]+)"/"([^"]+)"([^']*)'""")
_FILE_FORMAT = re.compile(r"FILE_FORMAT = \(([^)]*)\)")
_AZURE_FROM = re.compile(r"FROM '(azure://[^']+)'")
_AZURE_CREDENTIALS = re.compile(r"CREDENTIALS=\(AZURE_SAS_TOKEN='([^']*)'\)")
_FORMAT_TYPE = re.compile(r"TYPE = '(\w+)'")
_SWAP = re.compile(r"ALTER TABLE (\S+) SWAP WITH (\S+)", re.IGNORECASE)
_TRUNCATES_THEN_COPY = re.compile(r"\s*((?:TRUNCATE TABLE [^;]+;\s*)+)(COPY INTO .*)", re.IGNORECASE | re.DOTALL)


def _describe_last_sql(self: FakeSnowflakeCursor) -> list:
    try:
        return _original_describe(self)
    except Exception:  # noqa: BLE001 - DDL and other statements without a describable result
        return [("status", "VARCHAR", "YES", None, None, None)]


def _space_separated(match: re.Match[str]) -> str:
    return "FILE_FORMAT = (" + match.group(1).replace(", ", " ") + ")"


def _read_from_azure(command: str, local_dir: Path) -> str:
    """Shim 4: fetch the blob a COPY names from the Azure endpoint into ``local_dir`` and copy from that file."""
    from azure.storage.blob import BlobServiceClient

    match = _AZURE_FROM.search(command)
    assert match is not None
    sas = _AZURE_CREDENTIALS.search(command)
    if not sas or not sas.group(1).strip("?"):
        raise ValueError(f"COPY from {match.group(1)} carries no AZURE_SAS_TOKEN: Snowflake could not read it")
    container, _, blob = urlparse(match.group(1)).path.lstrip("/").partition("/")
    service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    local = local_dir / blob.rsplit("/", 1)[-1]
    with open(local, "wb") as f:
        service.get_blob_client(container, blob).download_blob().readinto(f)
    file_format = (m.group(1) if (m := _FORMAT_TYPE.search(command)) else "").upper()
    if log_path := os.environ.get("FAKESNOW_COPY_LOG"):
        with open(log_path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "url": match.group(1),
                        "container": container,
                        "blob": blob,
                        "format": file_format,
                        "statement": _AZURE_CREDENTIALS.sub("CREDENTIALS=(AZURE_SAS_TOKEN='***')", command),
                    }
                )
                + "\n"
            )
    if file_format == "JSON":
        # a ProgrammingError goes back as a SQL error; anything else is an HTTP 500 the connector retries
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"fakesnow cannot COPY JSON by column name into a typed table ({blob}); see shim 5 in "
            "sf_pipeline_tests/fakesnow_server.py",
            errno=2043,
            sqlstate="0A000",
        )
    command = _AZURE_CREDENTIALS.sub("", command)
    return command.replace(match.group(0), f"FROM '{local}'")


def _latency() -> dict[str, float]:
    text = os.environ.get("FAKESNOW_LATENCY") or ""
    return {k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(",") if item.strip())}


LATENCY = _latency()


def _record(kind: str, text: str = "") -> None:
    """The statement log's line, then the wait a real Snowflake would add."""
    if log_path := os.environ.get("FAKESNOW_STATEMENT_LOG"):
        with open(log_path, "a") as f:
            f.write(json.dumps({"at": time.time(), "kind": kind, "statement": text[:500]}) + "\n")
    if wait := LATENCY.get(kind):
        time.sleep(wait)


class _LoginLatency:
    """ASGI middleware: every login request is recorded and waits the profile's login time."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/session/v1/login-request":
            await asyncio.to_thread(_record, "login")
        await self.app(scope, receive, send)


def _execute(self: FakeSnowflakeCursor, command: str, *args, **kwargs):
    _record("information_schema" if "INFORMATION_SCHEMA" in command.upper() else "statement", command)
    if swap := _SWAP.fullmatch(command.strip()):  # shim 6
        first, second = swap.groups()
        parked = first[:-1] + '__SWAPPING"' if first.endswith('"') else first + "__SWAPPING"
        for step in (
            f"ALTER TABLE {first} RENAME TO {parked}",
            f"ALTER TABLE {second} RENAME TO {first}",
            f"ALTER TABLE {parked} RENAME TO {second}",
        ):
            result = _original_execute(self, step, *args, **kwargs)
        return result
    command = _STAGE_LITERAL.sub(r"@\1.\2/\3\4", command)
    command = _FILE_FORMAT.sub(_space_separated, command)
    command = command.replace("MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'", "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")
    if both := _TRUNCATES_THEN_COPY.fullmatch(command):  # shim 7
        for truncate in both.group(1).split(";")[:-1]:
            _original_execute(self, truncate, *args, **kwargs)
        command = both.group(2)
    if command.lstrip().upper().startswith("COPY INTO") and _AZURE_FROM.search(command):
        with tempfile.TemporaryDirectory(prefix="fakesnow-azure-") as local_dir:  # the download, gone after
            return _original_execute(self, _read_from_azure(command, Path(local_dir)), *args, **kwargs)
    return _original_execute(self, command, *args, **kwargs)


FakeSnowflakeCursor._describe_last_sql = _describe_last_sql  # noqa: SLF001
FakeSnowflakeCursor.execute = _execute


def main() -> int:
    """fakesnow's server app (what ``fakesnow -s`` serves), with the login middleware, under uvicorn."""
    import argparse

    import uvicorn
    from fakesnow.server import app

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.add_middleware(_LoginLatency)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
