"""The connection-level limits of the web server, on aiohttp's own request handler.

aiohttp's settings give the request-line cap (max_line_size), each header's cap (max_field_size)
and the header count (max_headers); the body cap is client_max_size plus a check of
Content-Length before any route (server.py). What aiohttp has no setting for is written here, in
a subclass of its RequestHandler (the protocol of one connection):

- a deadline for the whole request head: aiohttp only closes a connection idle *between*
  requests, so a client sending one byte a second would hold it for ever; here a head not
  complete within request_timeout_s gets 408 (or, when not one byte came, a silent close);
- a cap on the whole head's size (aiohttp caps each header, not their sum): 431;
- a cap on open connections: past it, 503 at once, before reading anything;
- a write deadline: a client that stops reading (the socket's buffers full, the transport paused)
  is dropped after write_timeout_s, streams included;
- a client that half-closes after its request (sends EOF) still gets its answer (aiohttp would
  close at once and answer nothing);
- parse errors answered in plain text naming the problem, with the status that names it (414,
  431, 505) and counted by kind, instead of aiohttp's generic 400 and a logged traceback.

It reads aiohttp's private _request_count (how many heads were parsed): pinned by the version
range in pyproject.toml, covered by tests/test_http.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

log = structlog.get_logger("acdbridge.http")
LOG_EVERY_S = 60.0  # one log line per kind of refusal per minute: a storm must not flood the journal
REFUSED_LINGER_S = 1.0  # a refused connection's answer gets this long to leave before the close


@dataclass(frozen=True)
class HttpLimits:
    request_timeout_s: float = 5.0  # the whole request head (and a body), however slowly it trickles
    write_timeout_s: float = 10.0  # a client that stops reading is dropped after this
    max_request_line: int = 4096  # 414 past it
    max_header_bytes: int = 16384  # the whole head, request line included: 431 past it
    max_headers: int = 64  # header lines: 431 past it
    max_body_bytes: int = 65536  # 413 past it
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
    unauthorized: int = 0  # 401 or a redirect to /signin: no session (or no metrics credentials)
    forbidden: int = 0  # 403: signed in, but the role or the scope does not allow it
    csrf_refused: int = 0  # 403: a state-changing request without its session's CSRF token
    write_timeouts: int = 0  # a client that stopped reading, dropped
    errors: int = 0  # 500: a view raised
    streams: int = 0
    streams_refused: int = 0  # over max_streams
    sse_dropped: int = 0  # updates dropped for a slow /events client (it gets the newest)

    GAUGES = ("open", "streams")


class Refusals:
    """Counts each refusal by kind and logs the first of its kind each minute."""

    def __init__(self, stats: HttpStats) -> None:
        self.stats = stats
        self._logged: dict[str, float] = {}

    def count(self, kind: str, status: int, text: str) -> None:
        setattr(self.stats, kind, getattr(self.stats, kind) + 1)
        self.log_once(kind, "http_request_refused", status=status, problem=text)

    def log_once(self, kind: str, event: str, **fields: object) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            log.warning(event, total=getattr(self.stats, kind), **fields)


def raw_answer(status: int, text: str) -> bytes:
    """A whole response for a connection aiohttp never gets to answer (refused, timed out)."""
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def parse_refusal(exc: BaseException | None, long_line: bool, lim: HttpLimits) -> tuple[int, str, str]:
    """(status, kind, text) for an error aiohttp's parser raised."""
    message = str(getattr(exc, "message", "") or exc or "bad request")
    first = message.strip().splitlines()[0].rstrip(":") if message.strip() else "bad request"
    if isinstance(exc, LineTooLong):
        if long_line:
            return 414, "too_large", f"request line over {lim.max_request_line} bytes"
        return 431, "too_large", f"a header line over {lim.max_header_bytes} bytes"
    if "Too many headers" in message:
        return 431, "too_large", f"too many header lines: the limit is {lim.max_headers}"
    if "Invalid HTTP version" in message:
        return 505, "malformed", "HTTP version not supported: use HTTP/1.1"
    if "Invalid method" in message or "Invalid characters in url" in message:
        return 400, "malformed", f"bad request line ({first}): expected METHOD /path HTTP/1.1"
    return 400, "malformed", f"bad request: {first}"


class GuardedHandler(web.RequestHandler):
    """One connection: aiohttp's handler with the limits above (see the module's docstring)."""

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self._refused = False
        self._counted = False
        self._heads = 0  # request heads aiohttp has parsed on this connection
        self._head_bytes = 0  # bytes of the head now arriving
        self._line_done = False  # its request line has ended
        self._line_len = 0  # and how long it is (so far)
        self._tail = b""  # the last bytes of the head so far
        self._deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        g = self.guard
        g.stats.connections += 1
        if g.closing or g.stats.open >= g.limits.max_connections:
            self._refuse_connection(transport)
            return
        self._counted = True
        g.stats.open += 1
        super().connection_made(transport)
        self._arm()

    def _refuse_connection(self, transport: asyncio.BaseTransport) -> None:
        g, self._refused = self.guard, True
        g.stats.refused += 1
        g.refusals.log_once("refused", "http_refused", open=g.stats.open, limit=g.limits.max_connections)
        assert isinstance(transport, asyncio.Transport)
        transport.write(raw_answer(503, "too many connections: try again shortly"))
        if transport.can_write_eof():  # FIN now; what the client sent is read and dropped
            transport.write_eof()
        # closing at once with the client's request unread would turn the close into a reset
        asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        if self._counted:
            self._counted = False
            self.guard.stats.open -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is not None and self._over_head_cap(data):
            return
        super().data_received(data)
        if self._request_count > self._heads:  # a head is complete: it is the route's now
            self._heads = self._request_count
            self._disarm()

    def _over_head_cap(self, data: bytes) -> bool:
        """Count the head now arriving; past max_header_bytes answer 414 / 431 and stop."""
        if not self._line_done:
            cut = data.find(b"\n")
            self._line_len += len(data) if cut < 0 else cut
            self._line_done = cut >= 0
        buf = self._tail + data  # the blank line may straddle two reads
        end = buf.find(b"\r\n\r\n")
        size = self._head_bytes - len(self._tail) + (end + 4 if end >= 0 else len(buf))
        self._head_bytes += len(data)
        self._tail = buf[-3:]
        lim = self.guard.limits
        if size <= lim.max_header_bytes or self._close:
            return False
        if self._line_len > lim.max_request_line:
            self._answer_raw(414, "too_large", f"request line over {lim.max_request_line} bytes")
        else:
            self._answer_raw(431, "too_large", f"request head over {lim.max_header_bytes} bytes")
        return True

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's says bool | None
        """The client has sent all it will: answer what came, then close (aiohttp would close now)."""
        if self._deadline is not None:  # waiting for a head (armed until one is parsed)
            if self._head_bytes:  # a head cut short
                self._answer_raw(400, "malformed", "incomplete request head: closed before its blank line")
            else:
                if self._heads == 0:
                    self.guard.stats.probes += 1
                self._disarm()
                self.force_close()
            return True
        self.close()  # after the answer in progress
        return True

    async def finish_response(
        self, request: BaseRequest, resp: StreamResponse, start_time: float | None
    ) -> tuple[StreamResponse, bool]:
        answer = await super().finish_response(request, resp, start_time)
        self._arm()  # the next request on this connection has its own deadline
        return answer

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:  # fmt: skip
        if status >= 500:  # a view that raised past the middleware, or a handler timeout
            self.guard.stats.errors += 1
            self.guard.refusals.log_once("errors", "http_view_failed", error=repr(exc))
            text, status = "internal error: see the daemon's log", 500
        else:
            long_line = self._line_len > self.guard.limits.max_request_line
            status, kind, text = parse_refusal(exc, long_line, self.guard.limits)
            self.guard.refusals.count(kind, status, text)
        resp = web.Response(status=status, text=text + "\n", headers=self.guard.plain_headers)
        resp.force_close()
        return resp

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self._loop.call_later(self.guard.limits.write_timeout_s, self._stuck)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _stuck(self) -> None:
        self._write_deadline = None
        self.guard.stats.write_timeouts += 1
        if self.transport is not None:
            self.transport.abort()  # drop what the client would not read

    def _arm(self) -> None:
        self._disarm()
        self._head_bytes, self._line_done, self._line_len, self._tail = 0, False, 0, b""
        self._deadline = self._loop.call_later(self.guard.limits.request_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cancel_timers(self) -> None:
        self._disarm()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if not self._head_bytes:  # a silent connection (a preconnect, a port probe, an idle keep-alive)
            if self._heads == 0:
                self.guard.stats.probes += 1
            self.force_close()
            return
        timeout = self.guard.limits.request_timeout_s
        self._answer_raw(408, "timeouts", f"request not complete within {timeout:g} s")

    def _answer_raw(self, status: int, kind: str, text: str) -> None:
        self._disarm()
        self.guard.refusals.count(kind, status, text)
        if self.transport is not None:
            self.transport.write(raw_answer(status, text))
        self.force_close()


class Guard:
    """What every connection of one server shares: limits, counters, the stopping flag."""

    def __init__(self, limits: HttpLimits, plain_headers: dict[str, str]) -> None:
        self.limits = limits
        self.stats = HttpStats()
        self.refusals = Refusals(self.stats)
        self.plain_headers = plain_headers
        self.closing = False

    def factory(self, server: web.Server, **kwargs: Any) -> GuardedHandler:
        return GuardedHandler(server, self, **kwargs)
