"""/metrics and /healthz. /metrics renders in a worker thread, one render at a time: a scrape
storm shares the render in progress instead of queueing renders that would hold the GIL against
the loop. /healthz answers from the daemon's state and is never behind a credential (probes)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from acdbridge.adapters.web.server import Refused

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
Health = Callable[[], tuple[bool, dict[str, object]]]


@dataclass(frozen=True)
class MetricsAuth:
    """[http] metrics_token (Authorization: Bearer) and/or metrics_user + metrics_password
    (basic auth): both are Prometheus scrape options. Either one given is enough."""

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def required(self) -> bool:
        return self.token is not None or self.user is not None

    def allows(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(value.encode(), self.token.encode())
        if scheme.lower() == "basic" and self.user is not None and self.password is not None:
            try:
                user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            same_user = hmac.compare_digest(user.encode(), self.user.encode())
            same_password = hmac.compare_digest(password.encode(), self.password.encode())
            return bool(sep) and same_user and same_password  # both compared: no early exit
        return False

    def challenge(self) -> str:
        return (
            'Basic realm="acdbridge metrics"' if self.user is not None else 'Bearer realm="acdbridge metrics"'
        )


class Scrape:
    def __init__(self, metrics: Callable[[], bytes], health: Health, auth: MetricsAuth | None = None) -> None:
        self.metrics, self.health, self.auth = metrics, health, auth or MetricsAuth()
        self._render: asyncio.Future[bytes] | None = None  # the render in progress

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.scrape)
        app.router.add_get("/healthz", self.healthz)

    async def scrape(self, request: web.Request) -> web.Response:
        if self.auth.required and not self.auth.allows(request.headers.get("Authorization", "")):
            why = "wrong credentials" if "Authorization" in request.headers else "credentials needed"
            raise Refused(401, "unauthorized", f"/metrics: {why} (the scrape job's authorization or "
                          "basic_auth, as [http] metrics_token / metrics_user say)",
                          {"WWW-Authenticate": self.auth.challenge()})  # fmt: skip
        resp = web.Response(body=await self.render())
        resp.headers["Content-Type"] = PROMETHEUS_TEXT
        return resp

    async def render(self) -> bytes:
        if self._render is None:
            future = asyncio.ensure_future(asyncio.to_thread(self.metrics))
            self._render = future
            future.add_done_callback(lambda _f: setattr(self, "_render", None))
        return await asyncio.shield(self._render)

    async def healthz(self, request: web.Request) -> web.Response:
        ok, detail = self.health()
        body = (json.dumps({"ok": ok, **detail}) + "\n").encode()
        return web.Response(status=200 if ok else 503, body=body, content_type="application/json")
