"""The agent tracker: what each agent (queue member interface) is doing, and for how long.
Sans-IO; time from the events' Timestamp.

An agent's state combines two machines, each a transition table:
  membership  logged_out / ready / paused  (QueueMemberAdded/Removed/Pause, per queue)
  activity    idle / ringing / talking / on_hold / wrapup   (the calls)
Shown state: logged_out without any membership; else the activity unless idle; else paused
if paused in every queue it is a member of; else ready. Each finished stretch of one shown
state is reported as a record, so durations per state add up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from acdbridge.core.ami import AmiMessage

Activity = Literal["idle", "ringing", "talking", "on_hold", "wrapup"]

# (activity, input) -> next activity. Inputs: AMI event names, plus "WrapEnd" from the call tracker.
ACTIVITY: dict[tuple[Activity, str], Activity] = {
    ("idle", "AgentCalled"): "ringing",
    ("wrapup", "AgentCalled"): "ringing",  # offered the next call: wrap-up is over
    ("ringing", "AgentCalled"): "ringing",  # a second caller rings the same agent (ringinuse)
    ("ringing", "AgentRingNoAnswer"): "idle",
    ("ringing", "AgentDump"): "idle",
    ("ringing", "RingCanceled"): "idle",
    ("ringing", "AgentConnect"): "talking",
    ("idle", "AgentConnect"): "talking",  # AgentCalled missed
    ("talking", "Hold"): "on_hold",
    ("on_hold", "Unhold"): "talking",
    ("talking", "AgentComplete"): "wrapup",
    ("on_hold", "AgentComplete"): "wrapup",
    ("wrapup", "WrapEnd"): "idle",
}


@dataclass
class Agent:
    interface: str
    name: str
    memberships: dict[str, bool] = field(default_factory=dict)  # queue -> paused
    pause_reason: str = ""
    activity: Activity = "idle"
    channel: str | None = None  # the agent's channel uniqueid while in a call
    channel_name: str | None = None  # ... and its name (the supervisor's ChanSpy targets it)
    shown: str = "logged_out"
    since: float | None = None
    time_in: dict[str, float] = field(default_factory=dict)  # seconds spent in each shown state

    def compute_shown(self) -> str:
        if not self.memberships:
            return "logged_out"
        if self.activity != "idle":
            return self.activity
        if all(self.memberships.values()):
            return "paused"
        return "ready"


class AgentTracker:
    def __init__(
        self,
        on_state: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.agents: dict[str, Agent] = {}
        self.by_channel: dict[str, str] = {}  # agent channel uniqueid -> interface
        self.on_state = on_state
        self.ignored: Counter[str] = Counter()

    def _agent(self, h: dict[str, str]) -> Agent:
        interface = h.get("Interface") or h.get("Location", "")
        agent = self.agents.get(interface)
        if agent is None:
            agent = self.agents[interface] = Agent(
                interface, h.get("MemberName") or h.get("Name") or interface
            )
        elif h.get("MemberName"):
            agent.name = h["MemberName"]
        return agent

    def _settle(self, agent: Agent, ts: float) -> None:
        """Close the current stretch if the shown state changed."""
        shown = agent.compute_shown()
        if shown == agent.shown and agent.since is not None:
            return
        if agent.since is not None:
            self._report(agent, ts)
        agent.shown, agent.since = shown, ts

    def _report(self, agent: Agent, ts: float) -> None:
        assert agent.since is not None
        end = max(ts, agent.since)
        duration = end - agent.since
        agent.time_in[agent.shown] = agent.time_in.get(agent.shown, 0.0) + duration
        if self.on_state is not None:
            reason = agent.pause_reason if agent.shown == "paused" else None
            self.on_state(
                {
                    "agent": agent.name, "interface": agent.interface, "state": agent.shown, "reason": reason,
                    "start_ts": agent.since, "end_ts": end, "duration_s": round(duration, 6),
                }
            )  # fmt: skip

    def _activity(self, agent: Agent, event: str, ts: float) -> bool:
        nxt = ACTIVITY.get((agent.activity, event))
        if nxt is None:
            self.ignored[f"{agent.activity}:{event}"] += 1
            return False
        agent.activity = nxt
        self._settle(agent, ts)
        return True

    def feed(self, msg: AmiMessage, ts: float) -> None:
        if msg.kind != "event":
            return
        handler = self._handlers.get(msg.name)
        if handler is not None:
            handler(self, msg.name, msg.headers, ts)

    def _on_member(self, name: str, h: dict[str, str], ts: float) -> None:
        agent = self._agent(h)
        queue = h.get("Queue", "")
        paused = h.get("Paused") == "1"
        if paused and (name == "QueueMemberPause" or queue not in agent.memberships):
            agent.pause_reason = h.get("PausedReason", "")
        agent.memberships[queue] = paused
        self._settle(agent, ts)

    def _on_member_removed(self, _name: str, h: dict[str, str], ts: float) -> None:
        agent = self._agent(h)
        agent.memberships.pop(h.get("Queue", ""), None)
        self._settle(agent, ts)

    def _on_call(self, name: str, h: dict[str, str], ts: float) -> None:
        agent = self._agent(h)
        if name == "AgentConnect" and h.get("DestUniqueid"):
            agent.channel, agent.channel_name = h["DestUniqueid"], h.get("DestChannel") or None
            self.by_channel[agent.channel] = agent.interface
        if name == "AgentComplete" and agent.channel:
            self.by_channel.pop(agent.channel, None)
            agent.channel = agent.channel_name = None
        self._activity(agent, name, ts)

    def _on_hold(self, name: str, h: dict[str, str], ts: float) -> None:
        interface = self.by_channel.get(h.get("Uniqueid", ""))
        held = self.agents.get(interface) if interface is not None else None
        if held is not None:  # None too when the agent was evicted (core/limits.py)
            self._activity(held, name, ts)

    # the one event -> handler table: membership events, the calls' events, hold on a channel
    _handlers: ClassVar[dict[str, Callable[[AgentTracker, str, dict[str, str], float], None]]] = {
        "QueueMemberAdded": _on_member,
        "QueueMember": _on_member,
        "QueueMemberStatus": _on_member,
        "QueueMemberPause": _on_member,
        "QueueMemberRemoved": _on_member_removed,
        "AgentCalled": _on_call,
        "AgentRingNoAnswer": _on_call,
        "AgentDump": _on_call,
        "AgentConnect": _on_call,
        "AgentComplete": _on_call,
        "Hold": _on_hold,
        "Unhold": _on_hold,
    }

    def snapshot(self) -> dict[str, Any]:
        # asdict() without its deep copy: a checkpoint takes every agent every few seconds
        agents = [{**vars(a), "memberships": dict(a.memberships), "time_in": dict(a.time_in)}
                  for a in self.agents.values()]  # fmt: skip
        return {"agents": agents, "by_channel": self.by_channel}

    def restore(self, snap: dict[str, Any]) -> None:
        for d in snap["agents"]:
            self.agents[d["interface"]] = Agent(**d)
        self.by_channel.update(snap["by_channel"])

    def wrap_ended(self, interface: str, ts: float) -> None:
        agent = self.agents.get(interface)
        if agent is not None and agent.activity == "wrapup":
            self._activity(agent, "WrapEnd", ts)

    def ring_canceled(self, interface: str, ts: float) -> None:
        agent = self.agents.get(interface)
        if agent is not None and agent.activity == "ringing":
            self._activity(agent, "RingCanceled", ts)

    def finish(self, ts: float) -> None:
        """Report every open stretch up to ts (end of a trace, orderly stop)."""
        for agent in self.agents.values():
            if agent.since is not None:
                self._report(agent, ts)
                agent.since = None
