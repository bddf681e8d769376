"""Virtual callers and agents on the lab for the call-flow tests, over the acdlab AMI user.

Callers are Local channels into [inbound]; they press keys (AMI PlayDTMF on their phone half,
so the DTMF reaches the greeting on the queue half) when the greeting sets ACD_IVR_STAGE. Agents
are Local channels in [lab-agents] that answer after LAB_RING_<ext> seconds and hang up after
their talk time. Feature codes are dialled from [agents-phones] with the agent's extension as
caller number, as the greeting's adapter identifies Local-channel agents."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from acdbridge.lab.pbx import AMI_USERS
from acdbridge.lab.traffic import AmiLink, phone_of

Event = dict[str, str]
KEY_DELAY_S = 0.4  # the prompt has started: a key now interrupts it


class LabPhones:
    def __init__(self, ami_port: int) -> None:
        self.ami = AmiLink("127.0.0.1", ami_port, "acdlab", AMI_USERS["acdlab"])
        self.events: list[Event] = []
        self.keys: dict[tuple[str, str], str] = {}  # (caller number, stage) -> key
        self.ivr_hangup: dict[str, float] = {}  # caller number -> seconds into the greeting
        self.notice_hangup: dict[str, float] = {}  # caller number -> seconds into a service notice
        self.talk_s: dict[str, float] = {}  # agent extension -> talk seconds, then hangs up
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> LabPhones:
        await self.ami.connect()
        self._pump = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in [*self._tasks, *([self._pump] if self._pump else [])]:
            task.cancel()
        self.ami.close()

    def _later(self, delay: float, fields: dict[str, str]) -> None:
        async def act() -> None:
            await asyncio.sleep(delay)
            with contextlib.suppress(TimeoutError):
                await self.ami.action(fields)

        task = asyncio.create_task(act())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self) -> None:
        while True:
            ev = await self.ami.events.get()
            ev["received"] = f"{time.time():.6f}"
            self.events.append(ev)
            self._changed.set()
            name, number = ev.get("event"), ev.get("calleridnum", "")
            variable = ev.get("variable", "")
            if name == "VarSet" and variable == "ACD_IVR_STAGE":
                key = self.keys.get((number, ev.get("value", "")))
                if key:
                    self._later(KEY_DELAY_S, {"Action": "PlayDTMF", "Channel": phone_of(ev["channel"]),
                                              "Digit": key, "Duration": "250"})  # fmt: skip
            elif name == "VarSet" and variable == "ACD_HOTLINE" and number in self.ivr_hangup:
                self._later(self.ivr_hangup[number], {"Action": "Hangup", "Channel": phone_of(ev["channel"])})
            elif name == "VarSet" and variable.lstrip("_") == "ACD_NOTICE" and number in self.notice_hangup:
                self._later(
                    self.notice_hangup[number], {"Action": "Hangup", "Channel": phone_of(ev["channel"])}
                )
            elif name == "AgentConnect":
                ext = ev.get("interface", "").removeprefix("Local/").split("@")[0]
                if ext in self.talk_s:
                    self._later(
                        self.talk_s[ext], {"Action": "Hangup", "Channel": phone_of(ev["destchannel"])}
                    )

    async def agent_rings(self, ext: str, seconds: float | None) -> None:
        value = "never" if seconds is None else f"{seconds:g}"
        await self.ami.action({"Action": "Setvar", "Variable": f"LAB_RING_{ext}", "Value": value})

    async def call(self, number: str, did: str, name: str = "Test Caller") -> None:
        await self.ami.action({
            "Action": "Originate", "Channel": f"Local/{number}@lab-callers/n", "Context": "inbound",
            "Exten": did, "Priority": "1", "CallerID": f'"{name}" <{number}>', "Async": "true",
        })  # fmt: skip

    async def feature(self, ext: str, code: str) -> None:
        """The agent at `ext` dials *<code> (e.g. "51" logs in)."""
        await self.ami.action({
            "Action": "Originate", "Channel": f"Local/*{code}@agents-phones/n", "Application": "Wait",
            "Data": "10", "CallerID": f'"agent" <{ext}>', "Async": "true",
        })  # fmt: skip

    async def wait_for(
        self, match: Callable[[Event], bool], within_s: float, what: str, since: int = 0
    ) -> Event:
        """The first event (from index `since`) that matches, waiting up to within_s seconds."""
        deadline = time.monotonic() + within_s
        seen = since
        while True:
            for ev in self.events[seen:]:
                if match(ev):
                    return ev
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def find(self, match: Callable[[Event], bool]) -> list[Event]:
        return [ev for ev in self.events if match(ev)]


def event(name: str, **headers: str) -> Callable[[Event], bool]:
    """A matcher: the event's name and these headers (lower-case keys, as AmiLink gives them)."""
    return lambda ev: ev.get("event") == name and all(ev.get(k) == v for k, v in headers.items())
