"""The app factory: which routes the daemon's web server has, and in front of them which gate.
app.py calls build_site with the daemon's views; tests call it with their own."""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from acdbridge.adapters.web.board import Board
from acdbridge.adapters.web.guard import Guard, HttpLimits
from acdbridge.adapters.web.metrics import Health, Scrape
from acdbridge.adapters.web.server import Handler, Refused, WebServer, shield, static_dir

Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
BOARD_PATHS = ("/", "/api/board", "/events")


def build_site(
    host: str,
    port: int,
    metrics: Callable[[], bytes],
    health: Health,
    board: Callable[[], bytes] = lambda: b"{}",
    token: str | None = None,
    *,
    limits: HttpLimits | None = None,
    tls: ssl.SSLContext | None = None,
) -> WebServer:
    plain = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Server": "acdbridge"}
    guard = Guard(limits or HttpLimits(), plain)
    lim = guard.limits
    middlewares = [shield(guard)]
    if token is not None:
        middlewares.append(_board_token(token))
    app = web.Application(middlewares=middlewares, client_max_size=lim.max_body_bytes)
    wallboard, scrape = Board(guard, board), Scrape(metrics, health)
    wallboard.routes(app)
    scrape.routes(app)
    app.router.add_static("/static/", static_dir(), append_version=False)
    server = WebServer(host, port, app, guard, tls)
    server.on_board.append(wallboard.broadcast)
    server.on_stop.append(wallboard.end_streams)
    return server


def _board_token(token: str) -> Middleware:
    """The kiosk token (?token=...) in front of the wallboard's paths."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in BOARD_PATHS:
            given = request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise Refused(403, "forbidden", "wallboard token missing or wrong: add ?token=...")
        return await handler(request)

    return middleware
