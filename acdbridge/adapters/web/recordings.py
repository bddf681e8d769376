"""Call recordings on the web (docs/recording.md), for supervisors of the call's queue and admins:
GET /api/recordings/{uniqueid} (the row: file, size, duration, SHA-256, when) and
GET /api/recordings/{uniqueid}/audio (the WAV file). Every playback is audited -- who, which call,
from where -- refused ones too; agents and viewers get 403, a deleted file 410."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from acdbridge.access.model import Role, Session
from acdbridge.adapters.store.recordings import Recording
from acdbridge.adapters.web.access import WebAccess
from acdbridge.adapters.web.server import Refused

VISIT_LOOKBACK_S = 86400.0  # a recorded call's queue visits ended within a day before its file
MAX_UNIQUEID = 128


class RecordingReads(Protocol):
    def recording(self, uniqueid: str) -> Recording | None: ...
    def each_visit(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> Iterator[dict[str, Any]]: ...


class RecordingsApi:
    def __init__(self, web_access: WebAccess, store: RecordingReads, directory: Path) -> None:
        self.web, self.store, self.dir = web_access, store, directory

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/recordings/{uniqueid}", self.info)
        app.router.add_get("/api/recordings/{uniqueid}/audio", self.audio)

    async def info(self, request: web.Request) -> web.Response:
        _session, rec = await self._allowed(request, "recording_info")
        return web.json_response(asdict(rec))

    async def audio(self, request: web.Request) -> web.StreamResponse:
        _session, rec = await self._allowed(request, "recording_play")
        path = self.dir / rec.file
        if rec.deleted_at is not None or not path.is_file():
            await self.web.audit(request, "recording_play", rec.uniqueid, "failed", "file deleted")
            raise Refused(410, "gone", f"the recording of {rec.uniqueid!r} was deleted (retention)")
        await self.web.audit(request, "recording_play", rec.uniqueid, "ok", f"{rec.duration_s:g} s")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def _allowed(self, request: web.Request, action: str) -> tuple[Session, Recording]:
        """The recording asked for, and that this session may hear it (every refusal audited)."""
        uid = request.match_info["uniqueid"][:MAX_UNIQUEID]
        try:
            session = self.web.require(request, Role.SUPERVISOR)
        except Refused:
            await self.web.audit(request, action, uid, "refused", "needs the supervisor role")
            raise
        rec = await asyncio.to_thread(self.store.recording, uid)
        if rec is None:
            raise Refused(404, "not_found", f"no recording of call {uid!r}")
        account = session.account
        if account.role != Role.ADMIN:
            queues = await asyncio.to_thread(self._queues_of, rec)
            if not queues & set(account.queues):
                await self.web.audit(request, action, uid, "refused", "not in the supervisor's queues")
                raise Refused(403, "forbidden", f"call {uid!r} was in {sorted(queues) or 'no queue'}, "
                              f"not in your queues ({', '.join(account.queues) or 'none'})")  # fmt: skip
        return session, rec

    def _queues_of(self, rec: Recording) -> set[str]:
        since, until = rec.recorded_at - VISIT_LOOKBACK_S, rec.recorded_at + 60.0
        return {v["queue"] for v in self.store.each_visit(since, until) if v.get("uniqueid") == rec.uniqueid}
