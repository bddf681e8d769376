"""Sign-in, sessions and CSRF for the web (the rules are access/service.py's AccessService).

- GET /signin: a plain form (static/signin.html filled in here; its one script, i18n.js, only
  words it). POST /signin signs in and sets the session cookie `acd_session` (HttpOnly,
  SameSite=Strict, Secure under TLS), then sends the browser to `next`. The form carries a
  pre-session CSRF token bound to a cookie of its own, so another site cannot sign a browser
  into an account of the attacker's choosing.
- POST /signout ends the session and sends the browser to /signin.
- The gate (a middleware) in front of everything else: no session -> a page is redirected to
  /signin?next=..., the API and the event stream get 401. A state-changing request (POST, PUT,
  PATCH, DELETE) must carry its session's CSRF token (header X-CSRF-Token, or a form field
  `csrf`), compared in constant time: else 403 naming the problem.
- The client's address (for per-address lockout and the audit) is the peer's, or, when the peer
  is one of [http] trusted_proxies, the last address before them in X-Forwarded-For."""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from string import Template
from urllib.parse import quote

from aiohttp import web

from acdbridge.access.model import Access, AuditEntry, Role, Session
from acdbridge.adapters.web.guard import Guard
from acdbridge.adapters.web.server import Handler, Refused, static_dir

COOKIE = "acd_session"
SIGNIN_COOKIE = "acd_signin"  # the sign-in form's own CSRF token
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/signin"})  # /metrics has its own credentials
_SESSION: web.RequestKey[Session] = web.RequestKey("acd_session", Session)  # the gate's finding
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def client_address(request: web.Request, proxies: tuple[str, ...]) -> str:
    peer = request.remote or ""
    nets = [ipaddress.ip_network(p) for p in proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in nets)

    if not nets or not trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):  # the rightmost address no trusted proxy vouches for
        if not trusted(hop):
            return hop
    return hops[0] if hops else peer


def session_of(request: web.Request) -> Session | None:
    """The session the gate found for this request (None: signed out)."""
    return request.get(_SESSION)


def see_other(path: str) -> web.Response:
    return web.Response(status=303, headers={"Location": path})


def safe_next(value: str) -> str:
    """Only a path on this site: never //host or a scheme (an open redirect)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or "\n" in value:
        return "/"
    return value


class WebAccess:
    def __init__(
        self, access: Access, guard: Guard, *, tls: bool, proxies: tuple[str, ...] = (),
        open_board: Callable[[web.Request], bool] = lambda _r: False,
    ) -> None:  # fmt: skip
        self.access, self.guard, self.tls, self.proxies = access, guard, tls, proxies
        self.open_board = open_board  # board_public, or the kiosk token
        self._form = Template((static_dir() / "signin.html").read_text(encoding="utf-8"))

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/signin", self.signin_page)
        app.router.add_post("/signin", self.signin)
        app.router.add_post("/signout", self.signout)

    def address(self, request: web.Request) -> str:
        return client_address(request, self.proxies)

    # ---- the gate --------------------------------------------------------------------------

    def gate(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            token = request.cookies.get(COOKIE, "")
            session = await self.access.session(token, time.time()) if token else None
            if session is not None:
                request[_SESSION] = session
            path = request.path
            if request.match_info.http_exception is not None:  # 404 / 405 first: no route, no gate
                return await handler(request)
            if path in OPEN_PATHS or path.startswith("/static/"):
                return await handler(request)
            if request.method == "GET" and self.open_board(request):
                return await handler(request)
            if session is None:
                if path.startswith("/api/") or path == "/events" or request.method != "GET":
                    raise Refused(401, "unauthorized", "not signed in: sign in at /signin")
                self.guard.stats.unauthorized += 1
                raise web.HTTPFound(f"/signin?next={quote(request.path_qs, safe='/')}")
            if request.method in STATE_CHANGING:
                await self._check_csrf(request, session)
            return await handler(request)

        return middleware

    async def _check_csrf(self, request: web.Request, session: Session) -> None:
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type == "application/x-www-form-urlencoded":
            given = str((await self._form_of(request)).get("csrf", ""))
        if not given:
            raise Refused(
                403, "csrf_refused", "CSRF token missing: send the X-CSRF-Token header (see /api/me)"
            )
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise Refused(403, "csrf_refused", "CSRF token wrong for this session: reload the page")

    async def _form_of(self, request: web.Request) -> dict[str, str]:
        try:
            async with asyncio.timeout(self.guard.limits.request_timeout_s):
                form = await request.post()
        except TimeoutError:
            raise Refused(408, "timeouts", "request body not complete in time") from None
        except ValueError as exc:
            raise Refused(400, "malformed", f"form body not readable: {exc}") from None
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def still_signed_in(self, request: web.Request) -> bool:
        """For a long-lived stream: False once the session it was opened with has ended. A stream
        opened without one (a public board, the kiosk key) goes on."""
        if session_of(request) is None:
            return True
        token = request.cookies.get(COOKIE, "")
        return await self.access.session(token, time.time()) is not None

    def require(self, request: web.Request, role: Role) -> Session:
        session = session_of(request)
        if session is None:
            raise Refused(401, "unauthorized", "not signed in: sign in at /signin")
        if not session.account.at_least(role):
            raise Refused(403, "forbidden", f"needs the {role} role (you are {session.account.role})")
        return session

    # ---- sign-in and sign-out --------------------------------------------------------------

    def _page(
        self, csrf: str, next_path: str, problem: str = "", username: str = "", status: int = 200
    ) -> web.Response:
        body = self._form.substitute(
            csrf=html.escape(csrf), next=html.escape(next_path), problem=html.escape(problem),
            username=html.escape(username),
        )  # fmt: skip
        resp = web.Response(status=status, text=body, content_type="text/html")
        resp.set_cookie(SIGNIN_COOKIE, csrf, path="/signin", httponly=True, samesite="Strict",
                        secure=self.tls, max_age=3600)  # fmt: skip
        return resp

    async def signin_page(self, request: web.Request) -> web.Response:
        csrf = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)
        return self._page(csrf, safe_next(request.query.get("next", "/")))

    async def signin(self, request: web.Request) -> web.StreamResponse:
        form = await self._form_of(request)
        cookie, given = request.cookies.get(SIGNIN_COOKIE, ""), form.get("csrf", "")
        next_path = safe_next(form.get("next", "/"))
        if not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
            self.guard.refusals.count("csrf_refused", 403, "sign-in form token missing or wrong")
            return self._page(secrets.token_urlsafe(32), next_path, "the sign-in form expired (or cookies "
                              "are blocked): try again", status=403)  # fmt: skip
        username = form.get("username", "")
        result = await self.access.sign_in(
            username, form.get("password", ""), self.address(request), time.time()
        )
        if result.session is None:
            self.guard.stats.unauthorized += 1
            return self._page(cookie, next_path, result.problem, username[:64], status=401)
        resp = see_other(next_path)
        resp.set_cookie(COOKIE, result.session.token, path="/", httponly=True, samesite="Strict",
                        secure=self.tls)  # fmt: skip
        resp.del_cookie(SIGNIN_COOKIE, path="/signin")
        return resp

    async def signout(self, request: web.Request) -> web.StreamResponse:
        session = session_of(request)  # the gate has checked it and its CSRF token
        if session is not None:
            await self.access.sign_out(session.token, time.time())
        resp = see_other("/signin")
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def audit(
        self, request: web.Request, action: str, target: str, outcome: str, detail: str = ""
    ) -> None:
        session = session_of(request)
        actor = session.account.username if session else ""
        await self.access.record(
            AuditEntry(time.time(), actor, action, target, outcome, self.address(request), detail)
        )
