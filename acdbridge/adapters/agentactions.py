"""What can be done to an agent -- log in, log out, pause with a reason, unpause, enter a
disposition -- in one place,
for every surface that does it: the feature codes a phone dials (adapters/callflow.py) and the
web's API (adapters/web/api.py). Both go through these methods, so a pause from the browser is
the same QueuePause a *53N sends, and both see the same [pause_reasons]."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import structlog

from acdbridge.adapters.ami import succeeded
from acdbridge.adapters.members import MembershipSync, Send
from acdbridge.core.agents import AgentTracker
from acdbridge.core.routing import AgentProfile, MemberBook, memberships
from acdbridge.flowconfig import Disposition, FlowConfig

log = structlog.get_logger("acdbridge.agents")
ACW_REASON = "after-call work"
# ChanSpy's options per mode (q: no beep or name spoken to the supervisor; E: end with the call)
SPY_MODES = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}
SPIED = re.compile(r"^[A-Za-z]+/[^,|\s]{1,120}$")  # a channel name: never an option or a second app


class AgentActions:
    def __init__(
        self, flow: FlowConfig, members: MembershipSync, agents: AgentTracker, book: MemberBook, send: Send
    ) -> None:
        self.flow, self.members, self.agents, self.book, self.send = flow, members, agents, book, send
        self.base = flow  # the configured flow; self.flow is it with the live skill changes
        self.skill_changes: dict[str, dict[str, int]] = {}  # agent -> skill -> level (memory only)

    def reload(self, flow: FlowConfig) -> None:
        """A SIGHUP's new flow, with the skill levels changed live laid over it again."""
        self.base = flow
        self.flow = self._with_changes(flow)
        if self.skill_changes:
            self.members.reload(self.flow)

    def _with_changes(self, flow: FlowConfig) -> FlowConfig:
        profiles = dict(flow.profiles)
        for name, changes in self.skill_changes.items():
            if name in profiles:
                skills = {**profiles[name].skills, **changes}
                skills = {s: level for s, level in skills.items() if level > 0}
                profiles[name] = replace(profiles[name], skills=skills)
        return replace(flow, profiles=profiles)

    def known_skills(self) -> set[str]:
        """The skills routing knows: the groups', their widen_to, the languages'."""
        r = self.flow.routing
        skills = {g.skill for g in r.groups} | {g.language for g in r.groups if g.language}
        return skills | {s for g in r.groups for s in g.widen_to} | {s for s in r.languages.values() if s}

    async def set_skill(self, profile: AgentProfile, skill: str, level: int) -> bool:
        """Change an agent's proficiency in one skill (0 takes it away) for the running daemon;
        the membership sync applies it at once (QueuePenalty, QueueAdd, QueueRemove by routing)."""
        self.skill_changes.setdefault(profile.name, {})[skill] = level
        self.flow = self._with_changes(self.base)
        self.members.reload(self.flow)
        await self.members.reconcile()
        return True

    async def spy(self, phone: str, channel: str, mode: str, caller_id: str) -> bool:
        """listen / whisper / barge: Originate from the supervisor's phone to ChanSpy on the
        agent's live channel. Async: the answer says only that the PBX took the order; the
        ChanSpyStart event shows it running."""
        if mode not in SPY_MODES or not SPIED.match(channel):
            raise ValueError(f"cannot spy on {channel!r} in mode {mode!r}")
        fields = {"Action": "Originate", "Channel": phone, "Application": "ChanSpy",
                  "Data": f"{channel},{SPY_MODES[mode]}", "CallerID": caller_id[:80],
                  "Timeout": "30000", "Async": "true"}  # fmt: skip
        try:
            resp: Any = await self.send(fields)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("spy_failed", mode=mode, error=str(exc))
            return False
        return succeeded(resp)

    def profile(self, name: str) -> AgentProfile | None:
        return self.flow.profiles.get(name)

    def channel_of(self, profile: AgentProfile) -> str | None:
        """The agent's live call channel's name, from the agent tracker (None: not in a call)."""
        agent = self.agents.agents.get(profile.interface)
        return agent.channel_name if agent is not None else None

    def queues_of(self, profile: AgentProfile) -> set[str]:
        """The queues the agent serves: by the routing config, and as app_queue has them now."""
        configured = set(memberships(profile, self.flow.routing))
        return configured | {q for q, interface in self.book.penalty if interface == profile.interface}

    def reason(self, given: str) -> str | None:
        """A [pause_reasons] reason, named by its text or its keypad code; None when neither."""
        if given in self.flow.pause_reasons:
            return self.flow.pause_reasons[given]
        return given if given in self.flow.pause_reasons.values() else None

    def disposition(self, given: str) -> Disposition | None:
        """A [dispositions] entry, named by its keypad code (as *55N) or its code; None when neither."""
        if given in self.flow.dispositions:
            return self.flow.dispositions[given]
        return next((d for d in self.flow.dispositions.values() if d.code == given), None)

    async def dispose(self, profile: AgentProfile, disposition: Disposition) -> bool:
        """The web's *55N: the ACD_DISPOSITION value the feature code sets, sent as the AMI
        UserEvent AcdDisposition (in wrap-up the agent has no channel to set it on, and a global
        Setvar would need write class `call`, which can hang up any channel; UserEvent needs only
        `user`). core/legs.py reads it as the feature code's VarSet: the wrap-up ends, the
        feedback row is the same. An after-call-work pause ends too."""
        value = f"{profile.interface}|{disposition.code}|{int(disposition.resolved)}"
        fields = {"Action": "UserEvent", "UserEvent": "AcdDisposition", "Value": value}
        try:
            resp: Any = await self.send(fields)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("disposition_failed", agent=profile.name, error=str(exc))
            return False
        if not succeeded(resp):
            return False
        if self.paused_for_acw(profile):
            return await self.unpause(profile)
        return True

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
