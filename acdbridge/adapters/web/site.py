"""The app factory: which routes the daemon's web server has, and which gates stand in front of
them. app.py calls build_site with the daemon's parts; tests call it with their own.

Without an AccessService (the limits' tests) the server is what it was before sign-in: the
wallboard open (or behind the kiosk token), /metrics, /healthz. With one, everything but
/healthz, /metrics (its own credentials), /signin and /static/ needs a session; the wallboard
too unless `board_public` or the kiosk token opens it."""

from __future__ import annotations

import hmac
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from acdbridge.access.service import AccessService
from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.web.access import Middleware, WebAccess
from acdbridge.adapters.web.api import PeopleApi
from acdbridge.adapters.web.board import Board
from acdbridge.adapters.web.desk import DeskApi
from acdbridge.adapters.web.guard import Guard, HttpLimits
from acdbridge.adapters.web.metrics import Health, MetricsAuth, Scrape
from acdbridge.adapters.web.recordings import RecordingReads, RecordingsApi
from acdbridge.adapters.web.server import Handler, Refused, WebServer, shield, static_dir
from acdbridge.adapters.web.supervisor import SupervisorApi
from acdbridge.runtime.desk import DeskFeed
from acdbridge.runtime.supervisor import SupervisorFeed

BOARD_PATHS = frozenset({"/", "/api/board", "/events"})
PLAIN_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Server": "acdbridge"}


@dataclass(frozen=True)
class Gates:
    """Who may see what ([http] in settings/httpconf.py)."""

    token: str | None = field(default=None, repr=False)  # the kiosk key for the wallboard
    board_public: bool = False
    metrics: MetricsAuth = field(default_factory=MetricsAuth)
    proxies: tuple[str, ...] = ()


def build_site(
    host: str,
    port: int,
    metrics: Callable[[], bytes],
    health: Health,
    board: Callable[[], bytes] = lambda: b"{}",
    *,
    gates: Gates | None = None,
    limits: HttpLimits | None = None,
    tls: ssl.SSLContext | None = None,
    access: AccessService | None = None,
    actions: AgentActions | None = None,
    desk: DeskFeed | None = None,
    supervisor: SupervisorFeed | None = None,
    phones: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    recordings: tuple[RecordingReads, Path] | None = None,  # the store, the recordings' directory
) -> WebServer:
    gates = gates or Gates(board_public=access is None)
    guard = Guard(limits or HttpLimits(), PLAIN_HEADERS)
    open_board = _board_opener(gates)
    middlewares = [shield(guard)]
    web_access = None
    if access is not None:
        web_access = WebAccess(
            access, guard, tls=tls is not None, proxies=gates.proxies, open_board=open_board
        )
        middlewares.append(web_access.gate())
    else:
        middlewares.append(_board_only(open_board))
    app = web.Application(middlewares=middlewares, client_max_size=guard.limits.max_body_bytes)
    wallboard = Board(guard, board, web_access.still_signed_in) if web_access else Board(guard, board)
    wallboard.routes(app)
    Scrape(metrics, health, gates.metrics).routes(app)
    if web_access is not None and access is not None:
        web_access.routes(app)
        PeopleApi(web_access, access, actions).routes(app)
        if recordings is not None:
            RecordingsApi(web_access, *recordings).routes(app)
    app.router.add_static("/static/", static_dir(), append_version=False)
    server = WebServer(host, port, app, guard, tls)
    server.on_board.append(wallboard.broadcast)
    server.on_stop.append(wallboard.end_streams)
    server.access_stats = access.stats if access is not None else None
    if web_access is not None and desk is not None:  # the agent desk (docs/desk.md)
        desks = DeskApi(web_access, desk, actions, clock)
        desks.routes(app)
        desk.on_history.append(desks.tick)
        server.on_tick.append(desks.tick)
        server.on_stop.append(desks.end_streams)
    if web_access is not None and supervisor is not None:  # the supervisor desk (docs/desk.md)
        sup = SupervisorApi(web_access, supervisor, actions, phones or {}, clock)
        sup.routes(app)
        server.on_tick.append(sup.tick)
        server.on_stop.append(sup.end_streams)
    return server


def _board_opener(gates: Gates) -> Callable[[web.Request], bool]:
    token = gates.token

    def opens(request: web.Request) -> bool:
        if request.path not in BOARD_PATHS:
            return False
        if gates.board_public:
            return True
        given = request.query.get("token", "")
        return token is not None and hmac.compare_digest(given.encode(), token.encode())

    return opens


def _board_only(opens: Callable[[web.Request], bool]) -> Middleware:
    """No sign-in here: the wallboard's paths need the token when one is set."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in BOARD_PATHS and not opens(request):
            raise Refused(403, "forbidden", "wallboard token missing or wrong: add ?token=...")
        return await handler(request)

    return middleware
