"""The daemon's web server on aiohttp: the app factory, its middleware, and the runner.

Routes: the wallboard (board.py: /, /api/board, /events), /metrics and /healthz (metrics.py), the
static files (acdbridge/web/static/), and sign-in, the people's API and the audit page
(access.py, api.py) when an AccessService is given. Every answer carries the security headers;
every refusal is plain text (or JSON for /api/) naming the problem, counted in HttpStats by
kind. The connection limits are guard.py's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from acdbridge.adapters import listening
from acdbridge.adapters.web.guard import Guard, HttpLimits, HttpStats

log = structlog.get_logger("acdbridge.http")
STOP_GRACE_S = 1.0  # requests in progress at stop get this long, then are cancelled
# no inline script or style anywhere: the pages load theirs from /static/
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",  # an error echoes a piece of the request: never a page
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Server": "acdbridge",  # not aiohttp's name and version
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEY_GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)


class Refused(Exception):
    """Raised by a route: answered as `status` with `text`, counted under `kind`."""

    def __init__(self, status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status, self.kind, self.text, self.headers = status, kind, text, headers or {}


def static_dir() -> Path:
    return Path(str(resources.files("acdbridge") / "web" / "static"))


def secure(resp: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)


def refusal(
    request: web.Request, status: int, text: str, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON for the API (what its callers parse), plain text elsewhere."""
    if request.path.startswith("/api/"):
        return web.json_response({"error": text}, status=status, headers=headers)
    return web.Response(status=status, text=text + "\n", headers=headers)


def _named(request: web.Request, exc: web.HTTPException) -> tuple[int, str, str]:
    """aiohttp's own 404 / 405 / 413 as a refusal naming the problem."""
    shown = request.path if len(request.path) <= 80 else request.path[:80] + "..."
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = " or ".join(sorted(exc.allowed_methods)) or "GET"
        return 405, "method_not_allowed", f"method {request.method} not allowed on {shown!r}: use {allowed}"
    if isinstance(exc, web.HTTPNotFound):
        return 404, "not_found", f"no such path {shown!r}: try /, /metrics or /healthz"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return 413, "too_large", exc.text or "request body too large"
    return exc.status, "malformed", exc.text or exc.reason


def shield(guard: Guard) -> Any:
    lim = guard.limits

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        guard.stats.requests += 1
        try:
            if "Transfer-Encoding" in request.headers:
                raise Refused(400, "malformed", "Transfer-Encoding not accepted: send a Content-Length")
            if (length := request.content_length or 0) > lim.max_body_bytes:
                raise Refused(
                    413, "too_large", f"request body of {length} bytes: the limit is {lim.max_body_bytes}"
                )
            resp = await handler(request)
        except Refused as r:
            guard.refusals.count(r.kind, r.status, r.text)
            resp = refusal(request, r.status, r.text, r.headers)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect
                resp = web.Response(status=exc.status, headers=exc.headers)
            else:
                status, kind, text = _named(request, exc)
                guard.refusals.count(kind, status, text)
                resp = refusal(request, status, text, dict(exc.headers) if status == 405 else None)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:  # a failing view costs one answer, never the server
            guard.refusals.log_once("errors", "http_view_failed", exc_info=True)
            guard.stats.errors += 1
            resp = refusal(request, 500, "internal error: see the daemon's log")
        if not resp.prepared:
            secure(resp)
            # one request per connection, as before aiohttp: each connection's life is one head
            # deadline and one answer, and nothing served here gains from keep-alive
            resp.force_close()
        return resp

    return middleware


@dataclass
class WebServer:
    """Build with an app (make_app's), start, stop; `stats` are the guard's counters."""

    host: str
    port: int
    app: web.Application
    guard: Guard
    tls: ssl.SSLContext | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    on_board: list[Callable[[bytes], None]] = field(default_factory=list)
    access_stats: Callable[[], Any] | None = None  # AccessService.stats, for /metrics
    on_tick: list[Callable[[], None]] = field(default_factory=list)  # each board refresh (the desks)
    _runner: web.AppRunner | None = None
    _server: asyncio.Server | None = None

    @property
    def stats(self) -> HttpStats:
        return self.guard.stats

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def limits(self) -> HttpLimits:
        return self.guard.limits

    def broadcast(self, board_json: bytes) -> None:
        """A new board for the live /events streams (called on the loop)."""
        for push in self.on_board:
            push(board_json)

    def tick(self) -> None:
        """The engine's state was looked at again (changed or not): the desks compare theirs."""
        for wake in self.on_tick:
            wake()

    async def start(self) -> None:
        self.guard.closing = False
        lim = self.guard.limits
        self._runner = runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        assert runner.server is not None
        server, loop = runner.server, asyncio.get_running_loop()
        kwargs: dict[str, Any] = {
            "loop": loop,
            "max_line_size": lim.max_request_line,
            "max_field_size": lim.max_header_bytes,
            "max_headers": lim.max_headers,
            "keepalive_timeout": 3600.0,  # idle keep-alive is guard.py's deadline, not aiohttp's
            "lingering_time": 1.0,  # an unread body is drained this long at most
            "access_log": None,
        }
        try:
            self._server = await listening.create_server(
                lambda: self.guard.factory(server, **kwargs), self.host, self.port,
                queue=lim.max_connections, ssl=self.tls,
            )  # fmt: skip
        except BaseException:
            await runner.cleanup()
            raise
        if self.port == 0:
            self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("http_listening", host=self.host, port=self.port, tls=self.tls is not None)

    async def stop(self) -> None:
        self.guard.closing = True
        if self._server is not None:
            self._server.close()
        for wake in self.on_stop:  # the event streams end
            wake()
        if self._runner is not None and self._runner.server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S * 3):
                    await self._runner.server.shutdown(STOP_GRACE_S)
            await self._runner.cleanup()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await self._server.wait_closed()
        self._runner = self._server = None


async def read_json_object(request: web.Request, timeout_s: float) -> dict[str, Any]:
    """A request's body as a JSON object, read within `timeout_s`; a 4xx naming the problem."""
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise Refused(408, "timeouts", "request body not complete in time") from None
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise Refused(400, "malformed", f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, "malformed", "body must be a JSON object")
    return body
