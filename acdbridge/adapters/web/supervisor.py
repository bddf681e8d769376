"""The supervisor desk on the web (docs/desk.md, "Supervisor desk"): GET /supervisor (the page,
static/supervisor.html), GET /api/supervisor (the grid as JSON), GET /api/supervisor/events
(Server-Sent Events: the whole grid at once, then only the rows, queue panels and abandon list
that changed), and the actions: POST /api/supervisor/agents/{agent}/{action} (listen, whisper,
barge, pause, unpause, logout, skill) and POST /api/supervisor/abandons/handled.

Supervisors see and act on the agents and queues their account names; admins on all; agents
and viewers get 403. Pause, unpause and log out go through AgentActions, as the feature codes.
Every action is audited (who, what, on whom, outcome), refused ones too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from acdbridge.access.model import Role, Session
from acdbridge.access.scope import scope_problem
from acdbridge.adapters.agentactions import SPY_MODES, AgentActions
from acdbridge.adapters.web.access import WebAccess
from acdbridge.adapters.web.board import SSE_HEARTBEAT_S, SSE_QUEUE, _keepalive
from acdbridge.adapters.web.desk import _put
from acdbridge.adapters.web.server import Refused, read_json_object, secure, static_dir
from acdbridge.core.routing import MAX_PROFICIENCY, AgentProfile
from acdbridge.core.supgrid import changed_rows
from acdbridge.runtime.supervisor import Grid, SupervisorFeed

ACTIONS = (*SPY_MODES, "pause", "unpause", "logout", "skill")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()


@dataclass(eq=False)  # hashed by identity: one per open stream
class _Stream:
    scope: set[str] | None
    queue: asyncio.Queue[bytes]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    abandons: list[dict[str, Any]] = field(default_factory=list)
    full: bool = True  # the next update is the whole grid (the first, or after a dropped diff)


def scope_of(session: Session) -> set[str] | None:
    """A supervisor's queues; None for an admin (everything)."""
    return None if session.account.role == Role.ADMIN else set(session.account.queues)


class SupervisorApi:
    def __init__(self, web_access: WebAccess, feed: SupervisorFeed, actions: AgentActions | None,
                 phones: dict[str, str], clock: Callable[[], float]) -> None:  # fmt: skip
        self.web, self.feed, self.actions, self.phones, self.clock = web_access, feed, actions, phones, clock
        self._page = (static_dir() / "supervisor.html").read_bytes()
        self._streams: set[_Stream] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/supervisor", self.page)
        app.router.add_get("/api/supervisor", self.json)
        app.router.add_get("/api/supervisor/events", self.events)
        app.router.add_post("/api/supervisor/agents/{agent}/{action}", self.act)
        app.router.add_post("/api/supervisor/abandons/handled", self.handled)

    def _view(self, grid: Grid, session: Session) -> dict[str, Any]:
        flow = self.actions.flow if self.actions is not None else None
        return {
            "now": self.clock(), "rows": grid.rows, "queues": grid.queues, "abandons": grid.abandons,
            "limits": dict(self.feed.limits.limits), "red_factor": self.feed.limits.red_factor,
            "pause_reasons": sorted(flow.pause_reasons.values()) if flow else [],
            "skills": sorted(self.actions.known_skills()) if self.actions else [],
            "phone": self.phones.get(session.account.username, ""),
        }  # fmt: skip

    async def page(self, request: web.Request) -> web.Response:
        self.web.require(request, Role.SUPERVISOR)
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def json(self, request: web.Request) -> web.Response:
        session = self.web.require(request, Role.SUPERVISOR)
        grid = self.feed.grid(self.clock(), scope_of(session))
        view = self._view(grid, session)
        # a row's colour at this moment (the page recomputes it as time passes)
        for row in grid.rows.values():
            row["level"] = self.feed.limits.level(row["state"], row["reason"], row["since"], view["now"])
        return web.json_response(view)

    # ---- the live stream: changed rows only -----------------------------------------------

    def tick(self) -> None:
        """After each board refresh: each stream gets what changed in its scope since its last."""
        grids: dict[frozenset[str] | None, Grid] = {}
        now = self.clock()
        for stream in list(self._streams):
            key = None if stream.scope is None else frozenset(stream.scope)
            if key not in grids:
                grids[key] = self.feed.grid(now, stream.scope)
            self._push(stream, grids[key])

    def _push(self, stream: _Stream, grid: Grid) -> None:
        first = stream.full
        rows, gone = changed_rows(stream.rows, grid.rows)
        queues, gone_q = changed_rows(stream.queues, grid.queues)
        update: dict[str, Any] = {"full": True} if first else {}
        if rows or gone or first:
            update["rows"], update["gone"] = rows, gone
        if queues or gone_q or first:
            update["queues"], update["gone_queues"] = queues, gone_q
        if grid.abandons != stream.abandons or first:
            update["abandons"] = grid.abandons
        stream.rows, stream.queues, stream.abandons = grid.rows, grid.queues, grid.abandons
        if not update:
            return
        update["now"] = self.clock()
        stream.full = False
        if _put(stream.queue, _dumps(update)):
            self.web.guard.stats.sse_dropped += 1
            stream.rows, stream.queues, stream.abandons = {}, {}, []  # lost a diff: send all next
            stream.full = True

    def end_streams(self) -> None:
        for stream in list(self._streams):
            _put(stream.queue, b"")

    async def events(self, request: web.Request) -> web.StreamResponse:
        session = self.web.require(request, Role.SUPERVISOR)
        stats, limit = self.web.guard.stats, self.web.guard.limits.max_streams
        if stats.streams >= limit:
            raise Refused(503, "streams_refused", f"too many event streams (limit {limit})")
        _keepalive(request)
        stream = _Stream(scope_of(session), asyncio.Queue(SSE_QUEUE))
        self._streams.add(stream)
        stats.streams += 1
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            secure(resp)
            resp.force_close()
            await resp.prepare(request)
            await resp.write(b"retry: 1000\n\n")
            self._push(stream, self.feed.grid(self.clock(), stream.scope))
            while not self.web.guard.closing:
                try:
                    data = await asyncio.wait_for(stream.queue.get(), SSE_HEARTBEAT_S)
                except TimeoutError:
                    await resp.write(b": heartbeat\n\n")
                    continue
                if not data:
                    break
                await resp.write(b"data: " + data + b"\n\n")
            return resp
        finally:
            stats.streams -= 1
            self._streams.discard(stream)

    # ---- the actions -----------------------------------------------------------------------

    async def act(self, request: web.Request) -> web.Response:
        session = self.web.require(request, Role.SUPERVISOR)
        name, action = request.match_info["agent"][:64], request.match_info["action"][:32]
        if action not in ACTIONS:
            raise Refused(404, "not_found", f"no supervisor action {action!r}: one of {', '.join(ACTIONS)}")
        if self.actions is None:
            raise Refused(503, "errors", "no call flow here ([agi] is not configured): no agents to act on")
        profile = self.actions.profile(name)
        if profile is None:
            await self.web.audit(request, action, name, "refused", "no such agent")
            raise Refused(404, "not_found", f"no agent named {name!r} in [agents]")
        problem = scope_problem(session.account, name, self.actions.queues_of(profile))
        if problem:
            await self.web.audit(request, action, name, "refused", "out of scope")
            raise Refused(403, "forbidden", problem)
        body = await read_json_object(request, self.web.guard.limits.request_timeout_s)
        try:
            done, detail = await self._do(session, action, profile, body)
        except Refused as exc:
            await self.web.audit(request, action, name, "refused", exc.text[:120])
            raise
        await self.web.audit(request, action, name, "ok" if done else "failed", detail)
        if not done:
            raise Refused(502, "errors", f"the PBX did not carry out the {action} (see the daemon's log)")
        self.tick()
        return web.json_response({"ok": True, "agent": name, "action": action, "detail": detail})

    async def _do(
        self, session: Session, action: str, profile: AgentProfile, body: dict[str, Any]
    ) -> tuple[bool, str]:
        actions = self.actions
        assert actions is not None
        if action in SPY_MODES:
            return await self._spy(session, action, profile)
        if action == "unpause":
            return await actions.unpause(profile), ""
        if action == "logout":
            await actions.logout(profile)
            return True, ""
        if action == "pause":
            given = body.get("reason")
            reason = actions.reason(given) if isinstance(given, str) else None
            if reason is None:
                known = ", ".join(sorted(actions.flow.pause_reasons.values()))
                raise Refused(
                    400, "malformed", f"reason {str(given)[:64]!r} is not one of [pause_reasons]: {known}"
                )
            return await actions.pause(profile, reason), reason
        skill, level = body.get("skill"), body.get("level")
        known_skills = actions.known_skills()
        if not isinstance(skill, str) or skill not in known_skills:
            raise Refused(400, "malformed", f"skill {str(skill)[:64]!r} is not one routing knows: "
                          f"{', '.join(sorted(known_skills))}")  # fmt: skip
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_PROFICIENCY:
            raise Refused(400, "malformed", f"level must be an integer 0..{MAX_PROFICIENCY} (0 takes the "
                          f"skill away), got {str(level)[:32]!r}")  # fmt: skip
        return await actions.set_skill(profile, skill, level), f"{skill}={level}"

    async def _spy(self, session: Session, mode: str, profile: AgentProfile) -> tuple[bool, str]:
        assert self.actions is not None
        phone = self.phones.get(session.account.username)
        if not phone:
            raise Refused(409, "malformed", f"no phone for {session.account.username!r}: set it in "
                          "[supervisor] phones (docs/config.md)")  # fmt: skip
        channel = self.actions.channel_of(profile)
        if channel is None:
            raise Refused(409, "malformed", f"{profile.name!r} is in no call to {mode} on")
        try:
            done = await self.actions.spy(phone, channel, mode, f"{mode} {profile.name}")
        except ValueError as exc:
            raise Refused(409, "malformed", str(exc)) from None
        return done, f"{phone} -> {channel}"

    async def handled(self, request: web.Request) -> web.Response:
        session = self.web.require(request, Role.SUPERVISOR)
        body = await read_json_object(request, self.web.guard.limits.request_timeout_s)
        key = body.get("key")
        grid = self.feed.grid(self.clock(), scope_of(session))
        if not isinstance(key, str) or not key:
            raise Refused(400, "malformed", 'expected a JSON body {"key": "..."}: an abandoned call\'s key')
        if not any(a["key"] == key for a in grid.abandons):
            await self.web.audit(request, "abandon_handled", key[:80], "refused", "not an open abandon")
            raise Refused(404, "not_found", f"no open abandoned call {key[:80]!r} in your queues today")
        self.feed.mark_handled(key, session.account.username, self.clock())
        await self.web.audit(request, "abandon_handled", key[:80], "ok")
        self.tick()
        return web.json_response({"ok": True, "key": key})
