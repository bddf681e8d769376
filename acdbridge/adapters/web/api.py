"""What signed-in people ask and do: GET /api/me; POST /api/agents/{agent}/pause (JSON
{"reason": a [pause_reasons] reason or its keypad code}) and /unpause, through the same
AgentActions as the feature codes; the audit trail for admins (GET /audit, GET /api/audit).
Every action is audited, refused ones included: who, what, on whom, from where, the outcome."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from acdbridge.access.model import Role
from acdbridge.access.scope import scope_problem
from acdbridge.access.service import AccessService
from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.web.access import WebAccess, session_of
from acdbridge.adapters.web.server import Refused, read_json_object, static_dir

MAX_AUDIT_ROWS = 1000  # one answer
MAX_AUDIT_SCAN = 20_000  # rows read to find the newest


class PeopleApi:
    def __init__(self, web_access: WebAccess, service: AccessService, actions: AgentActions | None) -> None:
        self.web, self.service, self.actions = web_access, service, actions
        self._audit_page = (static_dir() / "audit.html").read_bytes()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/me", self.me)
        app.router.add_post("/api/agents/{agent}/pause", self.pause)
        app.router.add_post("/api/agents/{agent}/unpause", self.unpause)
        app.router.add_get("/audit", self.audit_page)
        app.router.add_get("/api/audit", self.audit)

    async def me(self, request: web.Request) -> web.Response:
        s = self.web.require(request, Role.VIEWER)
        a = s.account
        return web.json_response({"username": a.username, "role": str(a.role), "agent": a.agent,
                                  "queues": list(a.queues), "csrf": s.csrf})  # fmt: skip

    async def pause(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason:
            raise Refused(
                400, "malformed", 'expected a JSON body {"reason": "..."} naming a [pause_reasons] reason'
            )
        return await self._act(request, "pause", reason)

    async def unpause(self, request: web.Request) -> web.Response:
        return await self._act(request, "unpause", "")

    async def _act(self, request: web.Request, action: str, given: str) -> web.Response:
        session = self.web.require(request, Role.AGENT)
        name = request.match_info["agent"]
        if self.actions is None:
            raise Refused(
                503, "errors", "no call flow here ([agi] is not configured): agents cannot be paused"
            )
        profile = self.actions.profile(name)
        if profile is None:
            await self.web.audit(request, action, name[:64], "refused", "no such agent")
            raise Refused(404, "not_found", f"no agent named {name[:64]!r} in [agents]")
        problem = scope_problem(session.account, name, self.actions.queues_of(profile))
        if problem:
            await self.web.audit(request, action, name, "refused", "out of scope")
            raise Refused(403, "forbidden", problem)
        reason = self.actions.reason(given) if action == "pause" else ""
        if reason is None:
            known = ", ".join(sorted(self.actions.flow.pause_reasons.values()))
            await self.web.audit(request, action, name, "refused", "unknown reason")
            raise Refused(400, "malformed", f"reason {given[:64]!r} is not one of [pause_reasons]: {known}")
        done = await (
            self.actions.pause(profile, reason) if action == "pause" else self.actions.unpause(profile)
        )
        await self.web.audit(request, action, name, "ok" if done else "failed", reason)
        if not done:
            raise Refused(502, "errors", f"the PBX did not carry out the {action} (see the daemon's log)")
        return web.json_response({"ok": True, "agent": name, "action": action, "reason": reason})

    async def _json(self, request: web.Request) -> dict[str, Any]:
        return await read_json_object(request, self.web.guard.limits.request_timeout_s)

    async def audit_page(self, request: web.Request) -> web.Response:
        self._admin(request)
        return web.Response(body=self._audit_page, content_type="text/html", charset="utf-8")

    async def audit(self, request: web.Request) -> web.Response:
        self._admin(request)
        try:
            hours = float(request.query.get("hours", "24"))
            limit = int(request.query.get("limit", "200"))
        except ValueError:
            raise Refused(400, "malformed", "hours and limit must be numbers") from None
        if not (0 < hours <= 24 * 366) or not (0 < limit <= MAX_AUDIT_ROWS):
            raise Refused(400, "malformed", f"hours must be in (0, 8784], limit in [1, {MAX_AUDIT_ROWS}]")
        now = time.time()
        # the store gives the oldest first: read a bounded span and keep its newest `limit`
        entries = await self.service.audit_entries(now - hours * 3600, now + 1, MAX_AUDIT_SCAN)
        newest = entries[-limit:][::-1]
        return web.json_response({"entries": [asdict(e) for e in newest]})

    def _admin(self, request: web.Request) -> None:
        if session_of(request) is None:
            raise Refused(401, "unauthorized", "not signed in: sign in at /signin")
        self.web.require(request, Role.ADMIN)
