"""Monotonic tallies and live gauges for Prometheus, as plain data. Sans-IO.

Raw series let PromQL compute any window: counters and histograms only grow, fed by finished
visit records (the daemon seeds them from the store at start, so a restart is no false reset).
Live gauges are read off the trackers at a given `now` (the latest event time). Labels are
queue, outcome, agent, state, kind, result: bounded sets, never a per-call value."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.agents import AgentTracker
from acdbridge.core.calls import CallTracker
from acdbridge.core.values import MAX_TS

Record = dict[str, Any]

WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TALK_BUCKETS = (30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
HOLD_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
WRAP_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
IVR_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
AGENT_STATES = ("logged_out", "ready", "paused", "ringing", "talking", "on_hold", "wrapup")
# Label values (queue, agent, hotline, code) come from AMI: a new one beyond this many series in
# a family is counted under "other", so no stream of invented names grows /metrics without bound.
MAX_SERIES = 5_000
OTHER = "other"


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last is +Inf
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        counts = self.counts or [0] * (len(self.bounds) + 1)
        out, running = [], 0
        for bound, n in zip((*map(_fmt, self.bounds), "+Inf"), counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def _fmt(bound: float) -> str:
    return f"{bound:g}"


@dataclass
class Tallies:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, outcome)
    short_abandoned: Counter[str] = field(default_factory=Counter)
    ring_attempts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (queue, agent, result)
    transfers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, kind)
    wait: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    talk: dict[str, Histogram] = field(default_factory=dict)
    hold: dict[str, Histogram] = field(default_factory=dict)
    wrap: dict[str, Histogram] = field(default_factory=dict)
    ivr: Counter[tuple[str, str]] = field(default_factory=Counter)  # (hotline, outcome)
    ivr_time: dict[str, Histogram] = field(default_factory=dict)
    notices: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (hotline, notice, result)
    oncall: Counter[tuple[str, str]] = field(default_factory=Counter)  # (hotline, answered|...)
    surveys: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, score)
    dispositions: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (queue, code, resolved)
    overflowed: int = 0  # observations counted under "other" (MAX_SERIES)

    def _key(self, table: Mapping[Any, Any], key: Any, other: Any) -> Any:
        if key in table or len(table) < MAX_SERIES:
            return key
        self.overflowed += 1
        return other

    def _hist(
        self, table: dict[Any, Histogram], key: Any, other: Any, bounds: tuple[float, ...]
    ) -> Histogram:
        return table.setdefault(self._key(table, key, other), Histogram(bounds))

    def add_ivr_leg(self, leg: Record) -> None:
        hotline = leg["hotline"]
        self.ivr[self._key(self.ivr, (hotline, leg["outcome"]), (OTHER, OTHER))] += 1
        self._hist(self.ivr_time, hotline, OTHER, IVR_BUCKETS).observe(_seconds(leg["ivr_s"]))
        if leg.get("notice"):  # rows stored before notices were on the leg have none
            result = "informed" if leg["outcome"] == "informed" else "continued"
            key = self._key(self.notices, (hotline, leg["notice"], result), (OTHER, OTHER, result))
            self.notices[key] += 1
        outcome = str(leg["outcome"])
        if outcome.startswith("oncall_"):  # an urgent call for the on-call engineer (core/legs.py)
            self.oncall[self._key(self.oncall, (hotline, outcome[7:]), (OTHER, outcome[7:]))] += 1

    def add_feedback(self, f: Record) -> None:
        queue = f["queue"]
        if f["kind"] == "survey":
            self.surveys[self._key(self.surveys, (queue, f["value"]), (OTHER, OTHER))] += 1
        else:
            resolved = "true" if f.get("resolved") else "false"
            key = self._key(self.dispositions, (queue, f["value"], resolved), (OTHER, OTHER, resolved))
            self.dispositions[key] += 1

    def add_visit(self, v: Record, short_abandon_s: float = 5.0) -> None:
        queue, outcome = v["queue"], v["outcome"]
        wait = _seconds(v["wait_s"])
        self.calls[self._key(self.calls, (queue, outcome), (OTHER, outcome))] += 1
        if outcome == "abandoned" and wait <= short_abandon_s:
            self.short_abandoned[self._key(self.short_abandoned, queue, OTHER)] += 1
        if outcome != "blocked":
            self._hist(self.wait, (queue, outcome), (OTHER, outcome), WAIT_BUCKETS).observe(wait)
        for attempt in v["ring_attempts"]:
            result = attempt["result"] or "open"
            key = self._key(self.ring_attempts, (queue, attempt["agent"], result), (OTHER, OTHER, result))
            self.ring_attempts[key] += 1
        if v["transfer"]:
            kind = v["transfer"]["kind"]
            self.transfers[self._key(self.transfers, (queue, kind), (OTHER, OTHER))] += 1
        if outcome == "answered":
            self._hist(self.talk, queue, OTHER, TALK_BUCKETS).observe(_seconds(v["talk_s"]))
            self._hist(self.hold, queue, OTHER, HOLD_BUCKETS).observe(_seconds(v["hold_s"]))
            if v["wrap_s"] is not None:
                self._hist(self.wrap, queue, OTHER, WRAP_BUCKETS).observe(_seconds(v["wrap_s"]))


def _seconds(x: Any) -> float:
    """A duration to observe: a stored row's NaN, inf or absurd value counts as 0 rather than
    turning a histogram's sum into NaN for good."""
    if isinstance(x, int | float) and 0.0 <= x <= MAX_TS:
        return float(x)
    return 0.0


@dataclass(frozen=True)
class LiveGauges:
    calls_waiting: dict[str, int]
    longest_wait_s: dict[str, float]
    agents: dict[tuple[str, str], int]  # (queue, state) -> agents
    agent_state: dict[tuple[str, str], int]  # (agent, state) -> 1 / 0


def live_gauges(calls: CallTracker, agents: AgentTracker, now: float) -> LiveGauges:
    waiting: Counter[str] = Counter()
    longest: dict[str, float] = {}
    for q in calls.known_queues:
        longest.setdefault(q, 0.0)
        waiting[q] += 0
    for v in calls.active.values():
        if v.state in ("waiting", "leaving"):
            waiting[v.queue] += 1
            longest[v.queue] = max(longest.get(v.queue, 0.0), round(max(0.0, now - v.enter_ts), 3))
    per_queue: Counter[tuple[str, str]] = Counter()
    per_agent: dict[tuple[str, str], int] = {}
    for agent in agents.agents.values():
        shown = agent.compute_shown()
        for state in AGENT_STATES:
            per_agent[(agent.name, state)] = int(state == shown)
        for queue, paused in agent.memberships.items():
            state = shown if agent.activity != "idle" else ("paused" if paused else "ready")
            per_queue[(queue, state)] += 1
    queues = set(calls.known_queues) | {q for q, _ in per_queue}
    agents_by_state = {(q, s): per_queue[(q, s)] for q in queues for s in AGENT_STATES if s != "logged_out"}
    return LiveGauges(dict(waiting), longest, agents_by_state, per_agent)
