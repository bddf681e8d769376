"""The built-in wallboard: / is the page (static/wallboard.html), /api/board its JSON, /events a
Server-Sent Events stream of board updates (the current board at once, then each new one, a
heartbeat between). A slow screen's queue is bounded: it loses old boards, never the newest."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from acdbridge.adapters.web.guard import Guard
from acdbridge.adapters.web.server import Refused, secure, static_dir

SSE_HEARTBEAT_S = 15.0  # also how soon a stream whose session ended is noticed when idle
SSE_QUEUE = 16  # updates kept per slow client; older ones are dropped (the newest is a full board)


async def _always(_request: web.Request) -> bool:
    return True


class Board:
    def __init__(
        self,
        guard: Guard,
        board: Callable[[], bytes],
        alive: Callable[[web.Request], Awaitable[bool]] = _always,
    ) -> None:
        # alive: is the stream's session still good? (a sign-out or `users disable` ends the stream)
        self.guard, self.board, self.alive = guard, board, alive
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._page = (static_dir() / "wallboard.html").read_bytes()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/api/board", self.json)
        app.router.add_get("/events", self.events)

    def broadcast(self, board_json: bytes) -> None:
        """Push a new board to every live /events stream (called on the loop)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
                self.guard.stats.sse_dropped += 1
            queue.put_nowait(board_json)

    def end_streams(self) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(b"")

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def json(self, request: web.Request) -> web.Response:
        return web.Response(body=self.board(), content_type="application/json")

    async def events(self, request: web.Request) -> web.StreamResponse:
        stats, limit = self.guard.stats, self.guard.limits.max_streams
        if len(self._subscribers) >= limit:
            raise Refused(503, "streams_refused", f"too many event streams (limit {limit})")
        _keepalive(request)  # a screen that vanished without a FIN is noticed in about a minute
        queue: asyncio.Queue[bytes] = asyncio.Queue(SSE_QUEUE)
        self._subscribers.add(queue)
        stats.streams += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            secure(resp)
            resp.force_close()  # a stream's connection serves nothing else
            await resp.prepare(request)
            await resp.write(b"retry: 1000\n\n")
            queue.put_nowait(self.board())
            while not self.guard.closing:
                try:
                    data = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
                except TimeoutError:
                    if not await self.alive(request):
                        break
                    await resp.write(b": heartbeat\n\n")
                    continue
                if not data:  # the server is stopping
                    break
                if not await self.alive(request):  # the page's script then goes to /signin
                    break
                await resp.write(b"data: " + data + b"\n\n")  # a stuck client: guard.py's deadline
            return resp
        finally:
            stats.streams -= 1
            self._subscribers.discard(queue)


def _keepalive(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
