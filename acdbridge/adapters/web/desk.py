"""The agent desk on the web (docs/desk.md): GET /desk (the page, static/desk.html), GET
/api/desk (one desk as JSON), GET /api/desk/events (Server-Sent Events: the desk at once, then
each change), and the agent's buttons, POST /api/desk/{agent}/login | logout | pause | unpause |
disposition, through the same AgentActions as the feature codes *51 *52 *53N *54 *55N.

Who sees what: an agent their own desk only; a supervisor (of one of the agent's queues) or an
admin any desk with ?agent=NAME, read-only. Only the agent presses the desk's buttons (a
supervisor pauses through /api/agents/{agent}/pause). Every press is audited, refused ones too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from acdbridge.access.model import Role, Session
from acdbridge.access.scope import scope_problem
from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.web.access import WebAccess
from acdbridge.adapters.web.board import SSE_HEARTBEAT_S, SSE_QUEUE, _keepalive
from acdbridge.adapters.web.server import Refused, read_json_object, secure, static_dir
from acdbridge.core.routing import AgentProfile
from acdbridge.core.visit import Visit
from acdbridge.runtime.desk import DeskFeed

ACTIONS = ("login", "logout", "pause", "unpause", "disposition")


@dataclass(eq=False)  # hashed by identity: one per open stream
class _Stream:
    agent: str
    interface: str
    queue: asyncio.Queue[bytes]
    last: bytes = b""


class DeskApi:
    def __init__(
        self, web_access: WebAccess, feed: DeskFeed, actions: AgentActions | None, clock: Callable[[], float]
    ) -> None:
        self.web, self.feed, self.actions, self.clock = web_access, feed, actions, clock
        self._page = (static_dir() / "desk.html").read_bytes()
        self._streams: set[_Stream] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/desk", self.page)
        app.router.add_get("/api/desk", self.json)
        app.router.add_get("/api/desk/events", self.events)
        app.router.add_post("/api/desk/{agent}/{action}", self.act)

    # ---- reading a desk --------------------------------------------------------------------

    def _profile(self, name: str) -> AgentProfile:
        if self.actions is None:
            raise Refused(503, "errors", "no call flow here ([agi] is not configured): no agent desks")
        profile = self.actions.profile(name)
        if profile is None:
            raise Refused(404, "not_found", f"no agent named {name[:64]!r} in [agents]")
        return profile

    def _desk_of(self, request: web.Request) -> tuple[Session, AgentProfile]:
        """The desk asked for, and that this session may see it (403 naming why not)."""
        session = self.web.require(request, Role.AGENT)
        account = session.account
        name = request.query.get("agent", "") or account.agent
        if not name:
            raise Refused(400, "malformed", "which desk? add ?agent=NAME (your account is no agent)")
        profile = self._profile(name)
        if account.role == Role.AGENT and account.agent != name:
            raise Refused(
                403, "forbidden", f"you may open your own desk only ({account.agent!r}), not {name!r}"
            )
        assert self.actions is not None
        problem = scope_problem(account, name, self.actions.queues_of(profile))
        if problem:
            raise Refused(403, "forbidden", problem)
        return session, profile

    def _view(self, session: Session, profile: AgentProfile) -> dict[str, Any]:
        view = self.feed.view(profile.name, profile.interface, self.clock())
        assert self.actions is not None
        flow = self.actions.flow
        view["own"] = session.account.agent == profile.name  # the buttons are the agent's own
        view["pause_reasons"] = [{"key": k, "reason": r} for k, r in sorted(flow.pause_reasons.items())]
        view["dispositions"] = [{"key": k, "code": d.code} for k, d in sorted(flow.dispositions.items())]
        return view

    async def page(self, request: web.Request) -> web.Response:
        self.web.require(request, Role.AGENT)
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def json(self, request: web.Request) -> web.Response:
        session, profile = self._desk_of(request)
        return web.json_response(self._view(session, profile) | {"now": self.clock()})

    # ---- the live stream -------------------------------------------------------------------

    def tick(self) -> None:
        """After each board refresh (and when a call's history is in): push changed desks."""
        calls = self.feed.calls() if self._streams else {}
        for stream in list(self._streams):
            self._push(stream, calls=calls)

    def end_streams(self) -> None:
        for stream in list(self._streams):
            _put(stream.queue, b"")

    def _push(self, stream: _Stream, force: bool = False, calls: dict[str, Visit] | None = None) -> None:
        view = self.feed.view(stream.agent, stream.interface, self.clock(), calls)
        data = json.dumps(view, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
        if data == stream.last and not force:
            return
        stream.last = data
        if _put(stream.queue, data):
            self.web.guard.stats.sse_dropped += 1

    async def events(self, request: web.Request) -> web.StreamResponse:
        _session, profile = self._desk_of(request)
        stats, limit = self.web.guard.stats, self.web.guard.limits.max_streams
        if stats.streams >= limit:
            raise Refused(503, "streams_refused", f"too many event streams (limit {limit})")
        _keepalive(request)
        stream = _Stream(profile.name, profile.interface, asyncio.Queue(SSE_QUEUE))
        self._streams.add(stream)
        stats.streams += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            secure(resp)
            resp.force_close()
            await resp.prepare(request)
            await resp.write(b"retry: 1000\n\n")
            self._push(stream, force=True)
            while not self.web.guard.closing:
                try:
                    data = await asyncio.wait_for(stream.queue.get(), SSE_HEARTBEAT_S)
                except TimeoutError:
                    await resp.write(b": heartbeat\n\n")
                    continue
                if not data:
                    break
                # the page adds the server's clock to count waits and time in state itself
                now = json.dumps(self.clock()).encode()
                await resp.write(b'data: {"now": ' + now + b', "desk": ' + data + b"}\n\n")
            return resp
        finally:
            stats.streams -= 1
            self._streams.discard(stream)

    # ---- the buttons -----------------------------------------------------------------------

    async def act(self, request: web.Request) -> web.Response:
        session = self.web.require(request, Role.AGENT)
        name, action = request.match_info["agent"][:64], request.match_info["action"]
        if action not in ACTIONS:
            raise Refused(404, "not_found", f"no desk action {action[:32]!r}: one of {', '.join(ACTIONS)}")
        if session.account.agent != name:
            await self.web.audit(request, action, name, "refused", "not their own desk")
            raise Refused(403, "forbidden", f"only the agent presses their desk's buttons: you are "
                          f"{session.account.agent or session.account.username!r}, not {name!r}")  # fmt: skip
        try:
            profile = self._profile(name)
        except Refused:
            await self.web.audit(request, action, name, "refused", "no such agent")
            raise
        given = (
            str((await _body(request, self.web)).get("value", ""))
            if action in ("pause", "disposition")
            else ""
        )
        done, detail = await self._do(action, profile, given, request)
        await self.web.audit(request, action, name, "ok" if done else "failed", detail)
        if not done:
            raise Refused(502, "errors", f"the PBX did not carry out the {action} (see the daemon's log)")
        self.tick()
        return web.json_response({"ok": True, "agent": name, "action": action, "detail": detail})

    async def _do(
        self, action: str, profile: AgentProfile, given: str, request: web.Request
    ) -> tuple[bool, str]:
        actions = self.actions
        assert actions is not None
        if action == "login":
            await actions.login(profile)
            return True, ""
        if action == "logout":
            await actions.logout(profile)
            return True, ""
        if action == "unpause":
            return await actions.unpause(profile), ""
        if action == "pause":
            reason = actions.reason(given)
            if reason is None:
                known = ", ".join(sorted(actions.flow.pause_reasons.values()))
                await self.web.audit(request, action, profile.name, "refused", "unknown reason")
                raise Refused(
                    400, "malformed", f"reason {given[:64]!r} is not one of [pause_reasons]: {known}"
                )
            return await actions.pause(profile, reason), reason
        disposition = actions.disposition(given)
        if disposition is None:
            known = ", ".join(d.code for d in actions.flow.dispositions.values()) or "none configured"
            await self.web.audit(request, action, profile.name, "refused", "unknown disposition")
            raise Refused(
                400, "malformed", f"disposition {given[:64]!r} is not one of [dispositions]: {known}"
            )
        return await actions.dispose(profile, disposition), disposition.code


def _put(queue: asyncio.Queue[bytes], data: bytes) -> bool:
    """Queue for a stream; a slow one loses its oldest desk (True), never the newest."""
    dropped = queue.full()
    if dropped:
        queue.get_nowait()
    queue.put_nowait(data)
    return dropped


async def _body(request: web.Request, web_access: WebAccess) -> dict[str, Any]:
    body = await read_json_object(request, web_access.guard.limits.request_timeout_s)
    if not isinstance(body.get("value", ""), str) or not body.get("value"):
        raise Refused(400, "malformed", 'expected a JSON body {"value": "..."}: the reason or disposition')
    return body
