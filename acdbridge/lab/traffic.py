"""The lab's traffic generator: places a scenario's calls into the real Asterisk over AMI and
plays its Local-channel agents (SIPp plays the SIP ones).

Callers are Originates of Local/<number>@lab-callers/n into the hotline's DID: the ;1 half
waits in Queue(), the ;2 half is the caller's phone. Agents are queue members added with
QueueAdd. The generator watches AMI events and acts as the people would: a caller whose
patience runs out hangs up (ABANDON), an agent ends the call, or transfers it blind
(BlindTransfer) or attended (Atxfer, then the agent hangs up once the target answered).
Ring delays and ring-no-answer are dialplan ([lab-agents]) driven by LAB_RING_<id> globals.

panoramisk is used with the guards our libraries notes call for: its callback only puts the
event into a bounded queue (drops counted), every action has a timeout, and a lost connection
ends the run with an error instead of panoramisk's silent re-send of unanswered actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from panoramisk import Manager

from acdbridge.errors import LabError
from acdbridge.lab import queuelog
from acdbridge.lab.pbx import AMI_USERS, LabSettings, running_state
from acdbridge.lab.scenario import AgentSpec, PlannedCall, Scenario, plan
from acdbridge.lab.sipp import SippAgent, endpoint_password

Printer = Callable[[str], None]
ACTION_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 10.0
RECORD_TAIL_S = 12.0  # longer than the sample config's longest wrapuptime (10 s)
EVENT_QUEUE_SIZE = 10_000
MAX_VISITS = 3  # a call is transferred at most twice, so scenarios cannot loop
ATXFER_GIVE_UP_S = 40.0  # the transferring agent hangs up if the target never answers
LAB_USER = "acdlab"
REPORTED_EVENTS = (
    "QueueCallerJoin", "AgentCalled", "AgentConnect", "AgentRingNoAnswer", "AgentDump", "AgentComplete",
    "QueueCallerAbandon", "Hold", "Unhold", "BlindTransfer", "AttendedTransfer",
)  # fmt: skip
SIPP_PORT_BASE = 25100
SIPP_MEDIA_BASE = 26000


def phone_of(channel: str) -> str:
    """The far half of a Local channel: the person's phone. Hanging up there, not the half in the
    queue, is what a person does; it also makes app_queue attribute the hang-up correctly (an AMI
    Hangup of the queue-side half publishes no hangup request, so app_queue would log
    COMPLETECALLER even when the agent's side was hung up)."""
    return channel[:-2] + ";2" if channel.startswith("Local/") and channel.endswith(";1") else channel


def private_file(path: Path) -> BinaryIO:
    """A capture holds callers' numbers: made 0600 whatever the umask (docs/privacy.md)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older capture made 0644 is rewritten private too
    return os.fdopen(fd, "wb")


def _write_private(path: Path, data: bytes) -> None:
    with private_file(path) as f:
        f.write(data)


class AmiRecorder:
    """Records the raw AMI bytes acdbridge's own AMI user receives during a run -- the same
    bytes panoramisk's save_stream writes -- for replay fixtures. At login it asks for
    queues.conf with GetConfig, as the daemon does, so the capture holds the wrapuptimes."""

    def __init__(self, host: str, port: int, out: Path) -> None:
        self.host, self.port, self.out = host, port, out
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
        secret = AMI_USERS["acdbridge"]
        login = (
            f"Action: Login\r\nActionID: acdbridge-login\r\nUsername: acdbridge\r\nSecret: {secret}\r\n\r\n"
        )
        getconfig = (
            "Action: GetConfig\r\nActionID: acdbridge-getconfig-queues\r\nFilename: queues.conf\r\n\r\n"
        )
        writer.write((login + getconfig).encode())
        self._writer = writer
        self._task = asyncio.create_task(self._copy(reader), name="ami-recorder")

    async def _copy(self, reader: asyncio.StreamReader) -> None:
        with private_file(self.out) as f:
            while chunk := await reader.read(65536):
                f.write(chunk)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.write(b"Action: Logoff\r\n\r\n")
            await asyncio.sleep(0.2)
            self._writer.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)


class AmiLink:
    """A panoramisk Manager with a bounded event queue and timed actions."""

    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self.dropped = 0
        self.lost = asyncio.Event()
        self._logged_in = asyncio.Event()
        self.manager = Manager(
            host=host, port=port, username=user, secret=secret,
            ping_delay=3600, reconnect_timeout=3600,  # no auto-reconnect: a lost link ends the run
            forgetable_actions=("ping", "login", "originate", "hangup", "blindtransfer", "atxfer"),
            on_login=lambda _m: self._logged_in.set(),
            on_disconnect=lambda _m, _exc: self.lost.set(),
        )  # fmt: skip
        self.manager.register_event("*", self._on_event)

    def _on_event(self, _manager: Any, message: Any) -> None:
        # never raise here: an exception in a panoramisk callback closes the connection
        try:
            self.events.put_nowait({str(k).lower(): str(v) for k, v in message.items()})
        except asyncio.QueueFull:
            self.dropped += 1

    async def connect(self) -> None:
        try:
            await asyncio.wait_for(self.manager.connect(), LOGIN_TIMEOUT_S)
            await asyncio.wait_for(self._logged_in.wait(), LOGIN_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            self.manager.close()
            raise LabError(
                f"cannot log in to AMI at {self.manager.config['host']}:{self.manager.config['port']}"
                f" as {self.manager.config['username']}: {exc or 'timed out'}"
            ) from exc

    async def action(self, fields: dict[str, str], *, as_list: bool = False) -> Any:
        """Send an action; returns its response, or all its messages with as_list=True (list
        actions such as QueueStatus). Raises TimeoutError. as_list is always explicit because
        panoramisk otherwise guesses from the message text and waits forever on single replies
        such as QueueAdd's "Added interface to queue"."""
        future = self.manager.send_action(dict(fields), as_list=as_list)
        return await asyncio.wait_for(future, ACTION_TIMEOUT_S)

    def close(self) -> None:
        self.manager.close()


@dataclass
class Visit:
    """One stay of a caller in one queue."""

    call: PlannedCall
    channel: str
    queue: str
    number: int
    linkedid: str
    consult_for: str | None = None  # the transferring agent's channel, for an attended-transfer consult leg
    agent: AgentSpec | None = None
    agent_channel: str | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()


@dataclass
class TrafficReport:
    scenario: str
    planned: int
    placed: int = 0
    ended: int = 0
    originate_failures: int = 0
    action_errors: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    dropped_events: int = 0
    timed_out: bool = False
    started_at: float = 0.0
    duration_s: float = 0.0
    queue_log: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return (
            self.placed == self.planned and self.ended == self.placed and self.originate_failures == 0
            and not self.timed_out and self.dropped_events == 0
        )  # fmt: skip

    def summary(self) -> str:
        lines = [
            f"scenario {self.scenario}: {self.placed}/{self.planned} calls placed, {self.ended} ended "
            f"in {self.duration_s:.1f}s{' (stopped at max_duration_s)' if self.timed_out else ''}",
            "actions: " + ", ".join(f"{k}={v}" for k, v in sorted(self.actions.items())),
            "AMI events: " + ", ".join(f"{k}={self.events[k]}" for k in REPORTED_EVENTS if self.events[k]),
        ]
        if self.action_errors:
            lines.append(
                "action errors: " + ", ".join(f"{k}={v}" for k, v in sorted(self.action_errors.items()))
            )
        if self.originate_failures or self.dropped_events:
            lines.append(
                f"originate failures: {self.originate_failures}, dropped events: {self.dropped_events}"
            )
        lines.append("queue_log: " + ", ".join(f"{k}={v}" for k, v in sorted(self.queue_log.items())))
        return "\n".join(lines)


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


async def run_async(
    scn: Scenario, settings: LabSettings, say: Printer, record: Path | None = None
) -> TrafficReport:
    """Run a scenario. With `record`, the raw AMI stream goes to that file and the run's
    queue_log lines to the same name with .queue_log added: a replay fixture and its truth."""
    if running_state(settings) is None:
        raise LabError("lab is not running", detail="start it with: acdbridge lab up")
    recorder = AmiRecorder(settings.host, settings.ami_port, record) if record else None
    if recorder:
        await recorder.start()
    ami = AmiLink(settings.host, settings.ami_port, LAB_USER, AMI_USERS[LAB_USER])
    await ami.connect()
    try:
        report = await TrafficDriver(scn, settings, say, ami).run()
    finally:
        ami.close()
        # let Asterisk write the last queue_log lines; a recording also waits out the last wrap-up
        await asyncio.sleep(RECORD_TAIL_S if record else 1.5)
        if recorder:
            await recorder.stop()
    lines = queuelog.read_lines(settings.queue_log, since=report.started_at)
    report.queue_log = queuelog.event_counts(queuelog.parse_lines(lines))
    if record:
        text = "".join(f"{line}\n" for line in lines)
        await asyncio.to_thread(_write_private, Path(f"{record}.queue_log"), text.encode())
    return report


def run_scenario(
    scn: Scenario, settings: LabSettings, say: Printer, record: Path | None = None
) -> TrafficReport:
    say(f"scenario {scn.name}: {len(scn.calls)} calls, {len(scn.agents)} agents, "
        f"at most {scn.max_duration_s:g}s")  # fmt: skip
    return asyncio.run(run_async(scn, settings, say, record))
