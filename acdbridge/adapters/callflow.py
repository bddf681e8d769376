"""The FastAGI handlers: the hotline greeting, the post-call survey and the agents' feature codes.
Thin: the decisions are core/ivr.py and core/routing.py; this runs their steps over AGI, looks
the caller up, and turns feature codes into AMI actions (docs/callflow.md)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Generator
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.directory import Directory, normalise
from acdbridge.adapters.fastagi import AgiSession, Handler
from acdbridge.adapters.members import MembershipSync, Send
from acdbridge.core.ivr import Ask, CallContext, Play, SetVar, Step, hotline_script, survey_script
from acdbridge.core.ledger import put_newest
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.routing import AgentProfile
from acdbridge.flowconfig import FlowConfig, keypad_code

log = structlog.get_logger("acdbridge.callflow")
_CHANNEL_ENDPOINT = re.compile(r"^(?:PJSIP|SIP|IAX2)/([^-/]+)-[0-9a-f]+$")
RECENT_KEPT = 100_000


class RecentCallers:
    """When each number last called, for the repeat-caller priority (bounded, oldest forgotten)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.last: dict[str, float] = {}

    def seen(self, number: str, ts: float) -> bool:
        """Record a call; True when the same number called within the window before."""
        key = normalise(number)
        if not key or number.startswith("p:"):  # a pseudonym (docs/privacy.md) is no number to match
            return False
        before = self.last.get(key)
        put_newest(self.last, key, ts, RECENT_KEPT)
        return before is not None and ts - before <= self.window_s


async def run_steps(session: AgiSession, script: Generator[Step, str | None, None]) -> None:
    """Drive a core script over AGI: each step's result (a key pressed, or None) goes back in."""
    result: str | None = None
    try:
        step = next(script)
        while True:
            if isinstance(step, Play):
                result = await session.stream_file(step.prompt, step.escape_digits)
            elif isinstance(step, Ask):
                result = await session.get_data(step.prompt, step.timeout_ms, step.max_digits)
            elif isinstance(step, SetVar):
                await session.set_variable(step.name, step.value)
                result = None
            step = script.send(result)
    except StopIteration:
        return
    finally:
        script.close()


class CallFlow:
    def __init__(
        self, flow: FlowConfig, timezone: str, members: MembershipSync, pipeline: Pipeline, send: Send
    ) -> None:
        self.flow, self.tz, self.members, self.send = flow, ZoneInfo(timezone), members, send
        self.book = pipeline.members
        # the same actions the web's API takes (adapters/web/api.py)
        self.actions = AgentActions(flow, members, pipeline.agents, pipeline.members, send)
        self.directory = Directory(flow.directory)
        self.recent = RecentCallers(flow.routing.repeat_window_s)

    def reload(self, flow: FlowConfig) -> None:
        self.flow = flow
        self.directory = (
            Directory(flow.directory) if flow.directory != self.directory.path else self.directory
        )
        self.recent.window_s = flow.routing.repeat_window_s
        self.members.reload(flow)
        self.actions.reload(flow)

    def handlers(self) -> dict[str, Handler]:
        return {"hotline": self.hotline, "survey": self.survey, "feature": self.feature}

    async def hotline(self, session: AgiSession) -> None:
        req = session.request
        parts = req.script.split("/")
        name = parts[1] if len(parts) > 1 else self.flow.dids.get(req.dnid or req.extension, "")
        hotline = self.flow.hotlines.get(name)
        if hotline is None:  # the dialplan falls back to its default queue
            log.error("unknown_hotline", hotline=name, known=sorted(self.flow.hotlines))
            return
        now = time.time()  # the adapter's clock: business hours are the centre's wall-clock time
        caller = await asyncio.to_thread(self.directory.lookup, req.caller) if req.caller else None
        ctx = CallContext(
            caller=caller, now=datetime.fromtimestamp(now, self.tz), now_ts=now,
            repeat=self.recent.seen(req.caller, now), notices=self.flow.notices, on_duty=self.book.on_duty(),
            logged_in=self.book.logged_in(),
        )  # fmt: skip
        try:
            await run_steps(session, hotline_script(hotline, self.flow.routing, ctx))
        finally:  # the canonical line of the greeting, also when the caller hung up in it
            log.info(
                "greeting", uniqueid=req.uniqueid, caller=req.caller, known=caller is not None, **ctx.summary
            )

    async def survey(self, session: AgiSession) -> None:
        await run_steps(session, survey_script())

    def agent_of(self, session: AgiSession) -> AgentProfile | None:
        """The PJSIP endpoint of the calling channel names the agent; a Local channel (the lab's
        virtual agents) is known by its caller number."""
        m = _CHANNEL_ENDPOINT.match(session.request.channel)
        return self.flow.profile_by_extension(m.group(1) if m else session.request.caller)

    async def feature(self, session: AgiSession) -> None:
        parts = session.request.script.split("/")
        code = parts[1] if len(parts) > 1 else ""
        agent = self.agent_of(session)
        if agent is None:
            log.warning(
                "feature_unknown_agent", channel=session.request.channel, caller=session.request.caller
            )
            await session.stream_file("beeperr")
            return
        ok, prompt = await self._feature(agent, code, session)
        log.info("feature_code", agent=agent.name, code=code, ok=ok)
        await session.stream_file(prompt if ok else "beeperr")

    async def _feature(self, agent: AgentProfile, code: str, session: AgiSession) -> tuple[bool, str]:
        number = keypad_code(code[2:])  # *53N / *55NN
        actions = self.actions
        if code == "51":
            await actions.login(agent)
            return True, "agent-loginok"
        if code == "52":
            await actions.logout(agent)
            return True, "agent-loggedoff"
        if code.startswith("53") and number in self.flow.pause_reasons:
            return await actions.pause(agent, self.flow.pause_reasons[number]), "beep"
        if code == "54":
            return await actions.unpause(agent), "beep"
        if code.startswith("55") and number in self.flow.dispositions:
            disposition = self.flow.dispositions[number]
            value = f"{agent.interface}|{disposition.code}|{int(disposition.resolved)}"
            await session.set_variable("ACD_DISPOSITION", value)  # the tracker attaches it to the call
            if actions.paused_for_acw(agent):
                await actions.unpause(agent)
            return True, "auth-thankyou"
        return False, ""
