"""The daemon's HTTP endpoint on asyncio streams: /metrics, /healthz, and the built-in wallboard
(/ is the page, /api/board its JSON, /events a Server-Sent Events stream of board updates).

Hand-written rather than prometheus_client's start_http_server because /healthz and the
wallboard answer from the daemon's own state and every read needs a timeout; /metrics renders
in a worker thread so a slow scrape never stalls the event loop. Read-only: anything but a
well-formed GET of a known path gets a 4xx naming the problem, and the server keeps serving. The
wallboard may require a token (?token=...); /metrics and /healthz never do (scrapers and probes)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from importlib import resources
from urllib.parse import parse_qs

import structlog

log = structlog.get_logger("acdbridge.http")
READ_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 8192
SSE_HEARTBEAT_S = 15.0
SSE_QUEUE = 16  # updates kept per slow client; older ones are dropped (the newest is a full board)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: Callable[[], bytes],
        health: Callable[[], tuple[bool, dict[str, object]]],
        board: Callable[[], bytes] = lambda: b"{}",
        token: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.metrics, self.health, self.board, self.token = metrics, health, board, token
        self.server: asyncio.Server | None = None
        self.requests = 0
        self.bad_requests = 0
        self.sse_dropped = 0
        self._subscribers: set[asyncio.Queue[bytes]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for queue in list(self._subscribers):  # wake the streams so they end
                queue.put_nowait(b"")
            await self.server.wait_closed()

    def broadcast(self, board_json: bytes) -> None:
        """Push a new board to every live /events stream (called on the loop)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                self.sse_dropped += 1
            queue.put_nowait(board_json)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            answer = (400, "text/plain", b"bad request: incomplete or too long\n")
        try:
            if answer is None:
                await self._stream(writer)
                return
            status, ctype, body = answer
            if status >= 400:
                self.bad_requests += 1
            head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
            head += f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes] | None:
        """The response, or None for the /events stream."""
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        if len(request) > MAX_HEADER_BYTES:
            return 431, "text/plain", b"request headers too large\n"
        parts = request.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request line\n"
        method, (target, _, query) = parts[0], parts[1].partition("?")
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
        if target in ("/", "/api/board", "/events"):
            if self.token is not None:
                given = parse_qs(query).get("token", [""])[0]
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return 403, "text/plain", b"wallboard token missing or wrong: add ?token=...\n"
            if target == "/":
                return 200, "text/html; charset=utf-8", _page()
            if target == "/api/board":
                return 200, "application/json", self.board()
            return None
        return 404, "text/plain", f"no such path {target!r}: try /, /metrics or /healthz\n".encode()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        """Server-Sent Events: the current board at once, then each new one; heartbeats between."""
        queue: asyncio.Queue[bytes] = asyncio.Queue(SSE_QUEUE)
        self._subscribers.add(queue)
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                         b"Connection: close\r\n\r\nretry: 1000\n\n")  # fmt: skip
            queue.put_nowait(self.board())
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
                except TimeoutError:
                    writer.write(b": heartbeat\n\n")
                else:
                    if not data:  # the server is stopping
                        break
                    writer.write(b"data: " + data + b"\n\n")
                await writer.drain()
        finally:
            self._subscribers.discard(queue)


def _page() -> bytes:
    return (resources.files("acdbridge") / "web" / "wallboard.html").read_bytes()


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}  # fmt: skip
