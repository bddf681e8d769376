"""/metrics and /healthz. /metrics renders in a worker thread, one render at a time: a scrape
storm shares the render in progress instead of queueing renders that would hold the GIL against
the loop. /healthz answers from the daemon's state and is never behind a credential (probes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
Health = Callable[[], tuple[bool, dict[str, object]]]


class Scrape:
    def __init__(self, metrics: Callable[[], bytes], health: Health) -> None:
        self.metrics, self.health = metrics, health
        self._render: asyncio.Future[bytes] | None = None  # the render in progress

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.scrape)
        app.router.add_get("/healthz", self.healthz)

    async def scrape(self, request: web.Request) -> web.Response:
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
