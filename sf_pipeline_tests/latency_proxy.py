"""A TCP proxy that makes every HTTP request it forwards wait a set time: the staging bucket's round trip
for the production-latency profile, which Azurite (on loopback) does not charge.

Each request pays once, when its first bytes arrive (a request line starts with an HTTP method); the rest
of a request body and every response go through at once. Azure's own figure for a request is its page
"Latency in Blob storage" example, 50 ms on a standard account (docs.azure.cn/en-us/storage/blobs/
storage-blobs-latency); a bucket in the pod's region answers faster, one further away slower."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from .servers import AZURITE_ACCOUNT, Azurite

METHODS = (b"GET", b"HEAD", b"PUT", b"POST", b"DELETE", b"PATCH", b"OPTIONS")
AZURE_REQUEST_S = 0.05


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while data := await reader.read(1 << 16):
            if delay and data.split(b" ", 1)[0] in METHODS:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _shut(server: asyncio.Server) -> None:
    """Stop listening and end the connections still open (their piping tasks), in the proxy's own loop."""
    server.close()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextmanager
def latency_proxy(target_port: int, delay: float, host: str = "127.0.0.1") -> Iterator[int]:
    """Yields the port of a proxy to ``host:target_port`` whose requests each wait ``delay`` seconds."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="latency-proxy")
    thread.start()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, target_port)
        try:
            await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, 0.0))
        except asyncio.CancelledError:
            # the proxy shutting down (``_shut``): ending quietly, since asyncio's stream callback logs a cancelled
            # connection handler as an error
            client_writer.close()
            server_writer.close()

    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(handle, host, 0), loop).result(10)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(_shut(server), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def blob_endpoint(stack: ExitStack, azurite: Azurite, priced: bool) -> str:
    """Where the pipeline reaches Azurite: its own endpoint, or (``priced``) a proxy charging Azure's round trip,
    kept open on ``stack``. The warehouse's COPY reads Azurite directly either way."""
    if not priced:
        return azurite.blob_endpoint
    port = stack.enter_context(latency_proxy(azurite.port, AZURE_REQUEST_S))
    return f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
