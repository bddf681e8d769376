"""What can be done to an agent -- log in, log out, pause with a reason, unpause -- in one place,
for every surface that does it: the feature codes a phone dials (adapters/callflow.py) and the
web's API (adapters/web/api.py). Both go through these methods, so a pause from the browser is
the same QueuePause a *53N sends, and both see the same [pause_reasons]."""

from __future__ import annotations

from typing import Any

import structlog

from acdbridge.adapters.ami import succeeded
from acdbridge.adapters.members import MembershipSync, Send
from acdbridge.core.agents import AgentTracker
from acdbridge.core.routing import AgentProfile, MemberBook, memberships
from acdbridge.flowconfig import FlowConfig

log = structlog.get_logger("acdbridge.agents")
ACW_REASON = "after-call work"


class AgentActions:
    def __init__(
        self, flow: FlowConfig, members: MembershipSync, agents: AgentTracker, book: MemberBook, send: Send
    ) -> None:
        self.flow, self.members, self.agents, self.book, self.send = flow, members, agents, book, send

    def reload(self, flow: FlowConfig) -> None:
        self.flow = flow

    def profile(self, name: str) -> AgentProfile | None:
        return self.flow.profiles.get(name)

    def queues_of(self, profile: AgentProfile) -> set[str]:
        """The queues the agent serves: by the routing config, and as app_queue has them now."""
        configured = set(memberships(profile, self.flow.routing))
        return configured | {q for q, interface in self.book.penalty if interface == profile.interface}

    def reason(self, given: str) -> str | None:
        """A [pause_reasons] reason, named by its text or its keypad code; None when neither."""
        if given in self.flow.pause_reasons:
            return self.flow.pause_reasons[given]
        return given if given in self.flow.pause_reasons.values() else None

    async def login(self, profile: AgentProfile) -> None:
        await self.members.login(profile)

    async def logout(self, profile: AgentProfile) -> None:
        await self.members.logout(profile)

    async def pause(self, profile: AgentProfile, reason: str) -> bool:
        return await self._queue_pause(profile, True, reason)

    async def unpause(self, profile: AgentProfile) -> bool:
        return await self._queue_pause(profile, False, "")

    def paused_for_acw(self, profile: AgentProfile) -> bool:
        state = self.agents.agents.get(profile.interface)
        return state is not None and state.compute_shown() == "paused" and state.pause_reason == ACW_REASON

    async def _queue_pause(self, profile: AgentProfile, paused: bool, reason: str) -> bool:
        fields = {
            "Action": "QueuePause",
            "Interface": profile.interface,
            "Paused": "true" if paused else "false",
        }
        if reason:
            fields["Reason"] = reason
        try:
            resp: Any = await self.send(fields)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("pause_failed", agent=profile.name, error=str(exc))
            return False
        return succeeded(resp)
