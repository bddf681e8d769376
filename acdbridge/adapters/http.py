"""The daemon's HTTP endpoint on asyncio streams: /metrics, /healthz, and the built-in wallboard
(/ is the page, /api/board its JSON, /events a Server-Sent Events stream of board updates).

Hand-written rather than prometheus_client's start_http_server because /healthz and the
wallboard answer from the daemon's own state and every read needs a timeout; /metrics renders
in a worker thread so a slow scrape never stalls the event loop. Read-only: anything but a
well-formed GET of a known path gets a 4xx naming the problem, and the server keeps serving. The
wallboard may require a token (?token=...); /metrics and /healthz never do (scrapers and probes).

Every limit is a number in HttpLimits (docs/security.md): one deadline for the whole request (a
byte-a-second client cannot hold a connection longer than a fast one), caps on the request line,
the header count and size and the body, a cap on open connections (503 past it, before reading
anything) and on event streams, and a write deadline so a client that stops reading is dropped.
Each outcome is counted in HttpStats for /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import structlog

from acdbridge.adapters import listening

log = structlog.get_logger("acdbridge.http")
SSE_HEARTBEAT_S = 15.0
SSE_QUEUE = 16  # updates kept per slow client; older ones are dropped (the newest is a full board)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
LOG_EVERY_S = 60.0  # one log line per kind of refusal per minute: a storm must not flood the journal
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name / method characters


@dataclass(frozen=True)
class HttpLimits:
    request_timeout_s: float = 5.0  # the whole request head and body, however slowly it trickles
    write_timeout_s: float = 10.0  # a response (or one SSE update) must leave within this
    max_request_line: int = 4096  # 414 past it
    max_header_bytes: int = 16384  # the whole head, request line included: 431 past it
    max_headers: int = 64  # header lines: 431 past it
    max_body_bytes: int = 65536  # 413 past it (no route takes a body; a small one is read and dropped)
    max_connections: int = 512  # open at once, streams included: 503 past it, nothing read
    max_streams: int = 64  # /events streams at once: 503 past it


@dataclass
class HttpStats:
    """Counters for /metrics; `open` and `streams` are gauges (what is open now)."""

    connections: int = 0  # accepted (refused ones included)
    refused: int = 0  # over max_connections or arriving while stopping: 503, nothing read
    open: int = 0
    requests: int = 0  # complete, well-formed request heads
    probes: int = 0  # closed (or timed out) before sending a single byte
    timeouts: int = 0  # 408: the request did not arrive within request_timeout_s
    malformed: int = 0  # 400 / 505: bad request line, header line, Content-Length, incomplete head
    too_large: int = 0  # 413 / 414 / 431
    method_not_allowed: int = 0  # 405
    not_found: int = 0  # 404
    forbidden: int = 0  # 403: wallboard token missing or wrong
    write_timeouts: int = 0  # a client that stopped reading, dropped
    errors: int = 0  # 500: a view (metrics, health, board) raised
    streams: int = 0
    streams_refused: int = 0  # over max_streams
    sse_dropped: int = 0  # updates dropped for a slow /events client (it gets the newest)

    GAUGES = ("open", "streams")


class _Refusal(Exception):
    def __init__(self, status: int, kind: str, text: str) -> None:
        super().__init__(text)
        self.status, self.kind, self.text = status, kind, text


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    query: str


Answer = tuple[int, str, bytes]


class HttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: Callable[[], bytes],
        health: Callable[[], tuple[bool, dict[str, object]]],
        board: Callable[[], bytes] = lambda: b"{}",
        token: str | None = None,
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.metrics, self.health, self.board, self.token = metrics, health, board, token
        self.limits = limits or HttpLimits()
        self.stats = HttpStats()
        self.server: asyncio.Server | None = None
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._render: asyncio.Future[bytes] | None = None  # the /metrics render in progress
        self._logged: dict[str, float] = {}

    async def start(self) -> None:
        self._closing = False
        # the reader's limit is the head cap: readuntil fails past it instead of buffering more; the
        # kernel's queue holds a burst up to the connection cap (listening.py)
        lim = self.limits
        self.server = await listening.start_server(
            self._on_connect, self.host, self.port, limit=lim.max_header_bytes, queue=lim.max_connections
        )
        if self.port == 0:
            self.port = int(self.server.sockets[0].getsockname()[1])
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        self._closing = True
        if self.server is not None:
            self.server.close()
        for queue in list(self._subscribers):  # wake the streams so they end
            queue.put_nowait(b"")
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=1.0)
            for task in stuck:  # a request still trickling in: it would be refused anyway
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=1.0)
        if self.server is not None:  # 3.12+ waits here for every connection's socket to close
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.server.wait_closed()

    def broadcast(self, board_json: bytes) -> None:
        """Push a new board to every live /events stream (called on the loop)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                self.stats.sse_dropped += 1
            queue.put_nowait(board_json)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        # A task of our own, for stop() to cancel: 3.11's stream callback logs a cancelled task as an error
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or self.stats.open >= self.limits.max_connections:
            self.stats.refused += 1
            self._log_once("refused", "http_refused", open=self.stats.open, limit=self.limits.max_connections)
            await _peek(reader)  # what the client already sent: unread data would turn our close into a reset
            body = b"too many connections: try again shortly\n"
            await self._respond(writer, (503, "text/plain", body), close_only=True)
            return
        self.stats.open += 1
        try:
            answer = await self._answer(reader)
            if answer is None:
                await self._stream(writer)
            elif answer[0] != 0:
                await self._respond(writer, answer)
        except ConnectionError:
            pass
        finally:
            self.stats.open -= 1
            writer.close()

    async def _respond(
        self, writer: asyncio.StreamWriter, answer: Answer, *, close_only: bool = False
    ) -> None:
        status, ctype, body = answer
        head = f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
        # nosniff: an error echoes a piece of the request, which must never be taken for a page
        head += (
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        )
        head += "Connection: close\r\n\r\n"
        try:
            writer.write(head.encode() + body)
            async with asyncio.timeout(self.limits.write_timeout_s):
                await writer.drain()
        except TimeoutError:
            self.stats.write_timeouts += 1
            writer.transport.abort()  # drop what the client would not read
        except ConnectionError:
            pass
        finally:
            if close_only:
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> Answer | None:
        """The response; None for the /events stream; status 0 for a probe (answer nothing)."""
        lim, got_head = self.limits, False
        try:
            async with asyncio.timeout(lim.request_timeout_s):  # one deadline: a trickle gains nothing
                head = await self._read_head(reader)
                if head is None:
                    self.stats.probes += 1
                    return 0, "", b""
                got_head = True
                lines = head[:-4].split(b"\r\n")
                request = _request_line(lines[0], lim.max_request_line)
                if (length := _content_length(lines[1:], lim.max_headers)) > lim.max_body_bytes:
                    raise _Refusal(
                        413, "too_large", f"request body of {length} bytes: the limit is {lim.max_body_bytes}"
                    )
                if length:  # no route takes a body; read it so that the close is clean
                    await _read_body(reader, length)
        except TimeoutError:
            if not got_head and not await _peek(reader):
                self.stats.probes += 1  # a silent connection (a preconnect, a port probe)
                return 0, "", b""
            return self._refuse(408, "timeouts", f"request not complete within {lim.request_timeout_s:g} s")
        except _Refusal as refusal:
            return self._refuse(refusal.status, refusal.kind, refusal.text)
        self.stats.requests += 1
        try:
            return await self._route(request)
        except Exception:  # a failing view must cost one answer, never the server
            self._log_once("errors", "http_view_failed", exc_info=True)
            self.stats.errors += 1
            return 500, "text/plain", b"internal error: see the daemon's log\n"

    def _refuse(self, status: int, kind: str, text: str) -> Answer:
        """Count the refusal by kind, log the first of its kind each minute, and name the problem."""
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self._log_once(kind, "http_request_refused", status=status, problem=text)
        return status, "text/plain", (text + "\n").encode()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        """The request head up to its blank line; None when the client closed without a byte."""
        lim = self.limits
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                return None
            raise _Refusal(
                400, "malformed", "incomplete request head: closed before its blank line"
            ) from None
        except asyncio.LimitOverrunError:
            buffered = await _peek(reader)  # is the request line itself too long?
            if b"\r\n" not in buffered[: lim.max_request_line + 2]:
                raise _Refusal(414, "too_large", f"request line over {lim.max_request_line} bytes") from None
            raise _Refusal(431, "too_large", f"request head over {lim.max_header_bytes} bytes") from None

    async def _route(self, request: _Request) -> Answer | None:
        if request.method != "GET":
            return self._refuse(405, "method_not_allowed", f"method {request.method} not allowed: use GET")
        target = request.target
        if target == "/metrics":
            return 200, PROMETHEUS_TEXT, await self._metrics()
        if target == "/healthz":
            ok, detail = self.health()
            return (
                (200 if ok else 503),
                "application/json",
                (json.dumps({"ok": ok, **detail}) + "\n").encode(),
            )
        if target in ("/", "/api/board", "/events"):
            if self.token is not None:
                given = parse_qs(request.query).get("token", [""])[0]
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return self._refuse(403, "forbidden", "wallboard token missing or wrong: add ?token=...")
            if target == "/":
                return 200, "text/html; charset=utf-8", _page()
            if target == "/api/board":
                return 200, "application/json", self.board()
            if len(self._subscribers) >= self.limits.max_streams:
                return self._refuse(
                    503, "streams_refused", f"too many event streams (limit {self.limits.max_streams})"
                )
            return None
        shown = target if len(target) <= 80 else target[:80] + "..."
        return self._refuse(404, "not_found", f"no such path {shown!r}: try /, /metrics or /healthz")

    async def _metrics(self) -> bytes:
        """Render in a worker thread, one render at a time: a scrape storm shares the render in
        progress instead of queueing renders that would hold the GIL against the loop."""
        if self._render is None:
            future = asyncio.ensure_future(asyncio.to_thread(self.metrics))
            self._render = future
            future.add_done_callback(lambda _f: setattr(self, "_render", None))
        return await asyncio.shield(self._render)

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        """Server-Sent Events: the current board at once, then each new one; heartbeats between."""
        _keepalive(writer)  # a screen that vanished without a FIN is noticed in about a minute
        queue: asyncio.Queue[bytes] = asyncio.Queue(SSE_QUEUE)
        self._subscribers.add(queue)
        self.stats.streams += 1
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
                try:
                    async with asyncio.timeout(self.limits.write_timeout_s):
                        await writer.drain()
                except TimeoutError:
                    self.stats.write_timeouts += 1
                    writer.transport.abort()
                    break
        finally:
            self.stats.streams -= 1
            self._subscribers.discard(queue)

    def _log_once(self, kind: str, event: str, **fields: object) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            log.warning(event, total=getattr(self.stats, kind), **fields)


def _request_line(line: bytes, max_len: int) -> _Request:
    if len(line) > max_len:
        raise _Refusal(414, "too_large", f"request line over {max_len} bytes")
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1].startswith(b"/"):
        raise _Refusal(400, "malformed", f"bad request line {_shown(line)}: expected METHOD /path HTTP/1.1")
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise _Refusal(505, "malformed", f"HTTP version {_shown(parts[2])} not supported: use HTTP/1.1")
    target, _, query = parts[1].decode("latin-1").partition("?")
    return _Request(parts[0].decode("ascii"), target, query)


def _content_length(headers: list[bytes], max_headers: int) -> int:
    """Check every header line; the body's length (0 when none is announced)."""
    if len(headers) > max_headers:
        raise _Refusal(431, "too_large", f"{len(headers)} header lines: the limit is {max_headers}")
    lengths: set[bytes] = set()
    for line in headers:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise _Refusal(400, "malformed", f"malformed header line {_shown(line)}")
        name, value = name.lower(), value.strip(b" \t")
        if name == b"transfer-encoding":
            raise _Refusal(400, "malformed", "Transfer-Encoding not accepted: no route takes a body")
        if name == b"content-length":
            lengths.add(value)
    if not lengths:
        return 0
    if len(lengths) > 1 or not (value := lengths.pop()).isdigit() or len(value) > 12:
        raise _Refusal(400, "malformed", "Content-Length not one decimal number")
    return int(value)


async def _read_body(reader: asyncio.StreamReader, length: int) -> None:
    try:
        await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise _Refusal(400, "malformed", f"body shorter than its Content-Length {length}") from None


async def _peek(reader: asyncio.StreamReader) -> bytes:
    """What is buffered now, without waiting: read() returns at once when there is any."""
    try:
        async with asyncio.timeout(0):
            return await reader.read(8192)
    except TimeoutError:
        return b""


def _shown(data: bytes, width: int = 60) -> str:
    text = data.decode("latin-1")
    return repr(text if len(text) <= width else text[:width] + "...")


def _keepalive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


def _page() -> bytes:
    return (resources.files("acdbridge") / "web" / "wallboard.html").read_bytes()


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}  # fmt: skip
