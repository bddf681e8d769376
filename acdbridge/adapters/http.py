"""A small HTTP endpoint for /metrics and /healthz on asyncio streams.

Hand-written rather than prometheus_client's start_http_server because /healthz must answer from
the daemon's own state and every read needs a timeout; rendering runs in a worker thread so a
slow scrape never stalls the event loop. Anything but a well-formed GET of a known path gets a
4xx answer naming the problem; the server keeps serving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import structlog

log = structlog.get_logger("acdbridge.http")
READ_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 8192
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: Callable[[], bytes],
        health: Callable[[], tuple[bool, dict[str, object]]],
    ) -> None:
        self.host, self.port = host, port
        self.metrics, self.health = metrics, health
        self.server: asyncio.Server | None = None
        self.requests = 0
        self.bad_requests = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await self._answer(reader)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            status, ctype, body = 400, "text/plain", b"bad request: incomplete or too long\n"
        if status >= 400:
            self.bad_requests += 1
        head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        if len(request) > MAX_HEADER_BYTES:
            return 431, "text/plain", b"request headers too large\n"
        parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request line\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return 405, "text/plain", f"method {method} not allowed: use GET\n".encode()
        self.requests += 1
        if target == "/metrics":
            return 200, PROMETHEUS_TEXT, await asyncio.to_thread(self.metrics)
        if target == "/healthz":
            ok, detail = self.health()
            return (
                (200 if ok else 503),
                "application/json",
                (json.dumps({"ok": ok, **detail}) + "\n").encode(),
            )
        return 404, "text/plain", f"no such path {target!r}: try /metrics or /healthz\n".encode()


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}  # fmt: skip
