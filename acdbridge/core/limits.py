"""Bounds on everything the trackers remember, so no stream of events can grow them forever.
Sans-IO: time is the events' clock.

Events get lost (an AMI outage, a PBX restart), and a forged or broken stream can name a new
caller, agent, queue or channel in every event. So each table has a cap, and callers have an
age: one who joined and was never seen to leave is dropped after `caller_max_age_s` of event
time (a day by default: no queue call lasts that long). Over a cap, the oldest entries go first
(dicts keep insertion order). Every eviction is counted by kind (evicted_caller, evicted_agent,
evicted_member, evicted_queue, evicted_channel). The checks run every CHECK_EVERY messages and
the age sweep every `sweep_every_s` of event time, so their cost per event stays tiny."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from acdbridge.core.agents import AgentTracker
from acdbridge.core.calls import CallTracker
from acdbridge.core.routing import MemberBook
from acdbridge.core.values import Problems

CHECK_EVERY = 64  # messages: a table is at most this many insertions over its cap


@dataclass(frozen=True)
class Limits:
    max_callers: int = 10_000  # callers tracked at once (waiting, talking); a big centre has ~1,000
    caller_max_age_s: float = 86_400.0
    max_agents: int = 5_000  # member interfaces
    max_queues: int = 1_000
    max_members: int = 20_000  # (queue, interface) memberships, and each agent's queues
    max_channels: int = 20_000  # agent channels in a call, channels listed by a resync
    sweep_every_s: float = 60.0

    def __post_init__(self) -> None:
        if min(self.max_callers, self.max_agents, self.max_queues, self.max_members, self.max_channels) < 1:
            raise ValueError("every limit must be at least 1")
        if self.caller_max_age_s <= 0 or self.sweep_every_s <= 0:
            raise ValueError("caller_max_age_s and sweep_every_s must be > 0")


def _trim(table: MutableMapping[Any, Any], cap: int) -> int:
    """Drop the oldest entries beyond cap; how many went."""
    over = len(table) - cap
    for key in list(_first(table, over)):
        del table[key]
    return max(0, over)


def _first(keys: Iterable[Any], n: int) -> list[Any]:
    out: list[Any] = []
    if n <= 0:
        return out
    for key in keys:
        out.append(key)
        if len(out) >= n:
            break
    return out


class Janitor:
    def __init__(
        self,
        limits: Limits,
        problems: Problems,
        calls: CallTracker,
        agents: AgentTracker,
        members: MemberBook,
    ) -> None:
        self.limits, self.problems = limits, problems
        self.calls, self.agents, self.members = calls, agents, members
        self._messages = 0
        self._swept_at: float | None = None

    def after(self, now: float) -> None:
        """Called after each message."""
        self._messages += 1
        if (
            self._swept_at is None
            or now - self._swept_at >= self.limits.sweep_every_s
            or now < self._swept_at
        ):
            self._swept_at = now
            self._sweep_callers(now)
        if self._messages % CHECK_EVERY == 0:
            self.check()

    def check(self) -> None:
        lim, calls = self.limits, self.calls
        if len(calls.active) > lim.max_callers:
            for uid in _first(calls.active, len(calls.active) - lim.max_callers):
                self._drop_caller(uid)
        self._check_agents()
        self._check_channels()
        members = _trim(self.members.penalty, lim.max_members) + _trim(self.members.paused, lim.max_members)
        if len(calls.wraps.logged_out) > lim.max_members:
            members += len(calls.wraps.logged_out)
            calls.wraps.logged_out.clear()  # only shortens a late AgentComplete's wrap-up, never wrong
        self._count("evicted_member", members)
        self._check_queues()
        self._check_wraps()

    def _count(self, kind: str, n: int) -> None:
        if n > 0:
            self.problems.count(kind, f"{n} dropped over the limits of core/limits.py", n)

    def _sweep_callers(self, now: float) -> None:
        """Callers who joined more than caller_max_age_s ago: their leaving was lost."""
        horizon = now - self.limits.caller_max_age_s
        for uid in [uid for uid, v in self.calls.active.items() if v.enter_ts < horizon]:
            self._drop_caller(uid)

    def _drop_caller(self, uid: str) -> None:
        calls = self.calls
        v = calls.active.pop(uid, None)
        if v is None:
            return
        calls.hung_up.pop(uid, None)
        if v.agent_uniqueid and calls.by_agent_channel.get(v.agent_uniqueid) is v:
            del calls.by_agent_channel[v.agent_uniqueid]
        self._count("evicted_caller", 1)

    def _check_agents(self) -> None:
        lim, agents = self.limits, self.agents.agents
        if len(agents) > lim.max_agents:
            # logged-out agents first, then the oldest seen
            idle = [i for i, a in agents.items() if not a.memberships and a.activity == "idle"]
            gone = _first(idle, len(agents) - lim.max_agents)
            chosen = set(gone)
            gone += _first((i for i in agents if i not in chosen), len(agents) - lim.max_agents - len(gone))
            for interface in gone:
                del agents[interface]
            self._count("evicted_agent", len(gone))
        per_agent = max(1, min(lim.max_queues, lim.max_members))
        self._count("evicted_member", sum(_trim(a.memberships, per_agent) for a in agents.values()
                                          if len(a.memberships) > per_agent))  # fmt: skip
        calls = self.calls
        self._count("evicted_agent", _trim(calls.last_call, lim.max_agents))
        if len(calls.wraps.wrapping) > lim.max_agents:  # each ends at its due time anyway; drop the oldest
            self._count("evicted_agent", _trim(calls.wraps.wrapping, lim.max_agents))

    def _check_channels(self) -> None:
        cap, calls = self.limits.max_channels, self.calls
        n = _trim(calls.by_agent_channel, cap) + _trim(self.agents.by_channel, cap)
        if calls.alive_listed is not None and len(calls.alive_listed) > cap:
            n += len(calls.alive_listed)  # a listing this long is not the PBX's: forget it
            calls.alive_listed = None
        self._count("evicted_channel", n)

    def _check_queues(self) -> None:
        cap, calls = self.limits.max_queues, self.calls
        n = _trim(calls.wraps.config_wrapup, cap)
        if len(calls.known_queues) > cap:
            keep = (
                set(calls.wraps.wrapup_s)
                | set(calls.wraps.config_wrapup)
                | {v.queue for v in calls.active.values()}
            )
            before = len(calls.known_queues)
            calls.known_queues &= keep
            if len(calls.known_queues) > cap * 9 // 10:  # still too many: keep an arbitrary 90 %
                calls.known_queues = set(_first(sorted(calls.known_queues), cap * 9 // 10))
            n += before - len(calls.known_queues)
        self._count("evicted_queue", n)

    def _check_wraps(self) -> None:
        """Wrap-ups ended early leave their entry in the heap until its due time: rebuild it when
        the stale entries outnumber the live ones."""
        calls = self.calls
        if len(calls.wraps.heap) > 2 * len(calls.wraps.wrapping) + CHECK_EVERY:
            calls.wraps.compact()
