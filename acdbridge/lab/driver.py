"""The traffic generator's people: callers and Local-channel agents acting on AMI events as the
scenario says (lab/traffic.py runs it; the module docstring there says how calls are made)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable

from acdbridge.errors import LabError
from acdbridge.lab.amilink import AmiLink, phone_of
from acdbridge.lab.pbx import LabSettings
from acdbridge.lab.scenario import AgentSpec, PlannedCall, Scenario, plan
from acdbridge.lab.sipp import SippAgent, endpoint_password
from acdbridge.lab.trafficreport import TrafficReport, Visit

Printer = Callable[[str], None]
MAX_VISITS = 3  # a call is transferred at most twice, so scenarios cannot loop
ATXFER_GIVE_UP_S = 40.0  # the transferring agent hangs up if the target never answers
SIPP_PORT_BASE = 25100
SIPP_MEDIA_BASE = 26000


class TrafficDriver:
    def __init__(self, scn: Scenario, settings: LabSettings, say: Printer, ami: AmiLink) -> None:
        self.scn, self.settings, self.say, self.ami = scn, settings, say, ami
        self.calls = plan(scn)
        self.by_number = {c.caller_number: c for c in self.calls}
        self.agents_by_interface = {a.interface.lower(): a for a in scn.agents}
        self.caller_channel: dict[int, str] = {}  # call index -> its caller channel
        self.visits: dict[str, Visit] = {}  # caller (or consult) channel -> current visit
        self.visit_count: Counter[int] = Counter()
        # linkedid -> (the visit being transferred, the transferring agent's channel)
        self.pending_atxfer: dict[str, tuple[Visit, str]] = {}
        self.active: set[int] = set()
        self.report = TrafficReport(scn.name, len(self.calls))
        self.t0 = 0.0
        self.tasks: set[asyncio.Task[None]] = set()
        self.sipp: list[SippAgent] = []
        self.pause_timers: list[asyncio.TimerHandle] = []
        self.all_done = asyncio.Event()

    # -- helpers -------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.t0:6.1f}s] {text}")

    def spawn(self, kind: str, fields: dict[str, str]) -> None:
        """Send an action in the background; failures are counted, never fatal."""

        async def send() -> None:
            self.report.actions[kind] += 1
            try:
                resp = await self.ami.action(fields)
                if str(resp.get("Response", "")).lower() == "error":
                    self.report.action_errors[f"{kind}: {resp.get('Message', '')}"] += 1
            except TimeoutError:
                self.report.action_errors[f"{kind}: timeout"] += 1

        task = asyncio.get_running_loop().create_task(send(), name=f"ami-{kind}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def later(self, visit: Visit, delay: float, fn: Callable[[], None]) -> None:
        visit.timers.append(asyncio.get_running_loop().call_later(max(0.0, delay), fn))

    # -- set-up --------------------------------------------------------------------------------
    async def reset_members(self) -> None:
        """The lab owns the PBX: remove every dynamic member, then add the scenario's agents."""
        resp = await self.ami.action({"Action": "QueueStatus"}, as_list=True)
        for msg in resp if isinstance(resp, list) else []:
            if str(msg.get("Event", "")) == "QueueMember" and msg.get("Membership") == "dynamic":
                await self.ami.action(
                    {"Action": "QueueRemove", "Queue": msg["Queue"], "Interface": msg["Location"]}
                )
        for agent in self.scn.agents:
            if agent.kind == "local":
                ring = "never" if agent.ring_delay_s is None else f"{agent.ring_delay_s:g}"
                await self.ami.action({"Action": "Setvar", "Variable": f"LAB_RING_{agent.id}", "Value": ring})
        pjsip_conf = self.settings.root / "etc/asterisk/pjsip.conf"
        for i, agent in enumerate(a for a in self.scn.agents if a.kind == "sipp"):
            sipp = SippAgent(
                agent.id, endpoint_password(pjsip_conf, agent.id), f"127.0.0.1:{self.settings.sip_port}",
                SIPP_PORT_BASE + i, SIPP_MEDIA_BASE + 10 * i, self.settings.dir,
            )  # fmt: skip
            self.sipp.append(sipp)
            await sipp.start()
            self.say(f"SIPp agent {agent.id} registered and listening on 127.0.0.1:{sipp.port}")
        for agent in self.scn.agents:
            for q in agent.queues:
                resp = await self.ami.action(
                    {"Action": "QueueAdd", "Queue": q, "Interface": agent.interface, "MemberName": agent.name}
                )
                if str(resp.get("Response", "")).lower() != "success":
                    raise LabError(f"QueueAdd {agent.interface} to {q} failed: {resp.get('Message', '')}")

    async def remove_members(self) -> None:
        for agent in self.scn.agents:
            for q in agent.queues:
                with contextlib.suppress(TimeoutError):
                    await self.ami.action({"Action": "QueueRemove", "Queue": q, "Interface": agent.interface})

    # -- calls ---------------------------------------------------------------------------------
    def originate(self, call: PlannedCall) -> None:
        self.active.add(call.index)
        self.report.placed += 1
        self.log(f"call {call.index} {call.caller_name} <{call.caller_number}> dials {call.queue}")
        self.spawn(
            "originate",
            {
                "Action": "Originate",
                "Channel": f"Local/{call.caller_number}@lab-callers/n",
                "Context": "inbound",
                "Exten": self.scn.queues[call.queue].dial,
                "Priority": "1",
                "CallerID": f'"{call.caller_name}" <{call.caller_number}>',
                "Variable": f"MAXWAIT={call.max_wait_s:g}",
                "Timeout": "10000",
                "Async": "true",
            },
        )

    def finish(self, index: int) -> None:
        if index in self.active:
            self.active.discard(index)
            self.report.ended += 1
            if not self.active and self.report.placed == len(self.calls):
                self.all_done.set()

    def on_join(self, ev: dict[str, str]) -> None:
        channel, linkedid = ev.get("channel", ""), ev.get("linkedid", "")
        call = self.by_number.get(ev.get("calleridnum", ""))
        if call is None or self.caller_channel.get(call.index, channel) != channel:
            if linkedid in self.pending_atxfer:  # the consult leg of an attended transfer
                origin, transferer = self.pending_atxfer.pop(linkedid)
                consult = Visit(origin.call, channel, ev.get("queue", ""), MAX_VISITS, linkedid, transferer)
                self.visits[channel] = consult
                self.log(f"call {origin.call.index}: consult leg waits in {consult.queue}")
            return
        self.caller_channel[call.index] = channel
        self.visit_count[call.index] += 1
        visit = Visit(call, channel, ev.get("queue", ""), self.visit_count[call.index], linkedid)
        old = self.visits.get(channel)
        if old:
            old.cancel_timers()
        self.visits[channel] = visit
        self.log(
            f"call {call.index} waits in {visit.queue}"
            + (f" (visit {visit.number})" if visit.number > 1 else "")
        )

        def give_up() -> None:
            if visit.agent is None and self.visits.get(channel) is visit:
                self.log(f"call {call.index} hangs up after {call.patience_s:g}s waiting")
                self.spawn("hangup", {"Action": "Hangup", "Channel": phone_of(channel)})

        self.later(visit, call.patience_s, give_up)

        if call.press_s is not None and visit.number == 1:

            def press() -> None:
                if visit.agent is None and self.visits.get(channel) is visit:
                    self.log(f"call {call.index} presses {call.digit} to leave {visit.queue}")
                    self.spawn(
                        "playdtmf", {"Action": "PlayDTMF", "Channel": phone_of(channel), "Digit": call.digit}
                    )

            self.later(visit, call.press_s, press)

    def on_connect(self, ev: dict[str, str]) -> None:
        visit = self.visits.get(ev.get("channel", ""))
        if visit is None:
            return
        visit.cancel_timers()
        agent = self.agents_by_interface.get(ev.get("interface", "").lower())
        visit.agent, visit.agent_channel = agent, ev.get("destchannel")
        name = agent.name if agent else ev.get("membername", "?")
        self.log(f"call {visit.call.index} answered in {visit.queue} by {name}")
        if visit.consult_for is not None:
            transferer = visit.consult_for
            self.later(visit, 1.0, lambda: self.complete_atxfer(visit, transferer))
        if agent is None or agent.kind == "sipp" or visit.agent_channel is None:
            return  # a SIPp softphone runs its own call flow (hold, resume, hang up)
        rng = random.Random(f"{self.scn.seed}:{visit.call.index}:{visit.number}")
        action = visit.call.action if visit.number == 1 and visit.call.action else agent.choose_action(rng)
        if action.endswith("transfer") and (visit.number >= MAX_VISITS or agent.transfer_to is None):
            action = "agent_hangs_up"
        self.later(visit, visit.call.talk_s, lambda: self.end_talk(visit, action, agent))

    def complete_atxfer(self, visit: Visit, transferer: str) -> None:
        self.log(f"call {visit.call.index}: transferring agent hangs up, attended transfer completes")
        # Hang up the transferer's own channel, not its phone half: a hang-up request from the
        # phone side can reach app_queue before the transfer does, and it then logs COMPLETEAGENT
        # instead of ATTENDEDTRANSFER (seen on the lab, about one run in five).
        self.spawn("hangup", {"Action": "Hangup", "Channel": transferer})

    def end_talk(self, visit: Visit, action: str, agent: AgentSpec) -> None:
        assert visit.agent_channel is not None
        target = self.scn.queues[agent.transfer_to] if agent.transfer_to else None
        self.log(f"call {visit.call.index}: {agent.name} {action.replace('_', ' ')}"
                 + (f" to {target.name}" if target and action.endswith("transfer") else ""))  # fmt: skip
        if action == "agent_hangs_up":
            self.spawn("hangup", {"Action": "Hangup", "Channel": phone_of(visit.agent_channel)})
        elif action == "caller_hangs_up":
            self.spawn("hangup", {"Action": "Hangup", "Channel": phone_of(visit.channel)})
        elif action == "blind_transfer" and target:
            self.spawn("blindtransfer", {"Action": "BlindTransfer", "Channel": visit.agent_channel,
                                         "Context": "inbound", "Exten": target.dial})  # fmt: skip
        elif action == "attended_transfer" and target:
            linkedid = visit.linkedid
            self.pending_atxfer[linkedid] = (visit, visit.agent_channel)
            self.spawn("atxfer", {"Action": "Atxfer", "Channel": visit.agent_channel,
                                  "Context": "inbound", "Exten": target.dial})  # fmt: skip
            agent_channel = visit.agent_channel

            def give_up() -> None:
                if self.pending_atxfer.pop(linkedid, None) is not None:
                    self.log(f"call {visit.call.index}: transfer target never answered; agent hangs up")
                    self.spawn("hangup", {"Action": "Hangup", "Channel": phone_of(agent_channel)})

            asyncio.get_running_loop().call_later(ATXFER_GIVE_UP_S, give_up)

    def on_event(self, ev: dict[str, str]) -> None:
        name = ev.get("event", "")
        self.report.events[name] += 1
        if name == "QueueCallerJoin":
            self.on_join(ev)
        elif name == "AgentConnect":
            self.on_connect(ev)
        elif name in ("Hold", "Unhold"):
            channel = ev.get("channel", "")
            visit = next((v for v in self.visits.values() if channel in (v.agent_channel, v.channel)), None)
            if visit is not None:
                self.log(f"call {visit.call.index}: {name} on {channel}")
        elif name == "QueueCallerAbandon":
            visit = self.visits.get(ev.get("channel", ""))
            if visit:
                self.log(
                    f"call {visit.call.index} left {visit.queue} unanswered after {ev.get('holdtime', '?')}s"
                )
        elif (
            name == "VarSet"
            and ev.get("variable") == "ACD_IVR_STAGE"
            and ev.get("value") in ("menu1", "survey")
        ):
            self.press_menu(ev)
        elif name == "OriginateResponse" and ev.get("calleridnum", "") in self.by_number:
            call = self.by_number[ev["calleridnum"]]
            if ev.get("response", "").lower() == "failure":
                self.report.originate_failures += 1
                self.finish(call.index)
            else:  # a caller who is never let into the queue (blocked) still hangs up: track it
                self.caller_channel.setdefault(call.index, ev.get("channel", ""))
        elif name == "Hangup":
            channel = ev.get("channel", "")
            visit = self.visits.pop(channel, None)
            if visit is not None:
                visit.cancel_timers()
            caller = self.by_number.get(ev.get("calleridnum", ""))
            if caller and self.caller_channel.get(caller.index) == channel and caller.index in self.active:
                self.log(f"call {caller.index} ended")
                self.finish(caller.index)

    def press_menu(self, ev: dict[str, str]) -> None:
        """acdbridge's greeting asks for the call type: the caller presses the queue's menu key;
        asked for a rating after the call, a score of 3 to 5 (deterministic, from the call's index)."""
        call = self.by_number.get(ev.get("calleridnum", ""))
        key = self.scn.queues[call.queue].menu if call is not None else ""
        if call is None or not key:
            return
        survey = ev.get("value") == "survey"
        key = str(3 + call.index % 3) if survey else key
        self.log(f"call {call.index} presses {key} " + ("to rate the call" if survey else "at the greeting"))
        fields = {
            "Action": "PlayDTMF",
            "Channel": phone_of(ev.get("channel", "")),
            "Digit": key,
            "Duration": "250",
        }
        # 0.4 s into the prompt: the key interrupts it (one sent between AGI commands is lost)
        asyncio.get_running_loop().call_later(0.4, self.spawn, "playdtmf", fields)

    async def pump_events(self) -> None:
        while True:
            ev = await self.ami.events.get()
            try:
                self.on_event(ev)
            except Exception as exc:  # a generator bug must not stop the traffic silently
                self.report.action_errors[f"internal: {type(exc).__name__}: {exc}"] += 1

    def schedule_pauses(self) -> None:
        loop = asyncio.get_running_loop()
        for agent in self.scn.agents:
            for pause in agent.pauses:
                for paused, at in ((True, pause.at_s), (False, pause.at_s + pause.for_s)):
                    fields = {
                        "Action": "QueuePause",
                        "Interface": agent.interface,
                        "Paused": str(paused).lower(),
                    }
                    if paused:
                        fields["Reason"] = pause.reason
                    word = f"pauses ({pause.reason})" if paused else "is back from pause"

                    def act(fields: dict[str, str] = fields, text: str = f"{agent.name} {word}") -> None:
                        self.log(text)
                        self.spawn("queuepause", fields)

                    self.pause_timers.append(loop.call_at(loop.time() + at, act))

    async def place_calls(self) -> None:
        for call in self.calls:
            delay = self.t0 + call.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.originate(call)
        if not self.active:
            self.all_done.set()

    async def hang_up_leftovers(self) -> None:
        for channel in list(self.visits):
            with contextlib.suppress(TimeoutError):
                await self.ami.action({"Action": "Hangup", "Channel": channel})
        await asyncio.sleep(1)

    async def run(self) -> TrafficReport:
        self.report.started_at = time.time()
        try:
            await self.reset_members()
            await self.drive()
        finally:
            for sipp in self.sipp:
                await sipp.stop()
            if not self.ami.lost.is_set():
                await self.remove_members()
        self.report.duration_s = time.monotonic() - self.t0
        self.report.dropped_events = self.ami.dropped
        return self.report

    async def drive(self) -> None:
        self.t0 = time.monotonic()
        pump = asyncio.create_task(self.pump_events(), name="ami-events")
        placer = asyncio.create_task(self.place_calls(), name="place-calls")
        finished = asyncio.create_task(self.all_done.wait(), name="all-done")
        lost = asyncio.create_task(self.ami.lost.wait(), name="ami-lost")
        self.schedule_pauses()
        try:
            done, _ = await asyncio.wait(
                {finished, lost}, timeout=self.scn.max_duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            if lost in done:
                raise LabError("the AMI connection to the lab was lost during the run")
            if not done:
                self.report.timed_out = True
                limit = self.scn.max_duration_s
                self.say(f"max_duration_s {limit:g} reached: hanging up {len(self.visits)} calls")
                await self.hang_up_leftovers()
        finally:
            for task in (placer, finished, lost):
                task.cancel()
            for timer in self.pause_timers:
                timer.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            pump.cancel()
