"""Monotonic tallies and live gauges for Prometheus, as plain data. Sans-IO.

Raw series let PromQL compute any window: counters and histograms only grow, fed by finished
visit records (the daemon seeds them from the store at start, so a restart is no false reset).
Live gauges are read off the trackers at a given `now` (the latest event time). Labels are
queue, outcome, agent, state, kind, result: bounded sets, never a per-call value."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.agents import AgentTracker
from acdbridge.core.calls import CallTracker

Record = dict[str, Any]

WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TALK_BUCKETS = (30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
HOLD_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
WRAP_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
IVR_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
AGENT_STATES = ("logged_out", "ready", "paused", "ringing", "talking", "on_hold", "wrapup")


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
    surveys: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, score)
    dispositions: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (queue, code, resolved)

    def add_ivr_leg(self, leg: Record) -> None:
        self.ivr[(leg["hotline"], leg["outcome"])] += 1
        self.ivr_time.setdefault(leg["hotline"], Histogram(IVR_BUCKETS)).observe(leg["ivr_s"])

    def add_feedback(self, f: Record) -> None:
        if f["kind"] == "survey":
            self.surveys[(f["queue"], f["value"])] += 1
        else:
            self.dispositions[(f["queue"], f["value"], "true" if f.get("resolved") else "false")] += 1

    def add_visit(self, v: Record, short_abandon_s: float = 5.0) -> None:
        queue, outcome = v["queue"], v["outcome"]
        self.calls[(queue, outcome)] += 1
        if outcome == "abandoned" and v["wait_s"] <= short_abandon_s:
            self.short_abandoned[queue] += 1
        if outcome != "blocked":
            self.wait.setdefault((queue, outcome), Histogram(WAIT_BUCKETS)).observe(v["wait_s"])
        for attempt in v["ring_attempts"]:
            self.ring_attempts[(queue, attempt["agent"], attempt["result"] or "open")] += 1
        if v["transfer"]:
            self.transfers[(queue, v["transfer"]["kind"])] += 1
        if outcome == "answered":
            self.talk.setdefault(queue, Histogram(TALK_BUCKETS)).observe(v["talk_s"])
            self.hold.setdefault(queue, Histogram(HOLD_BUCKETS)).observe(v["hold_s"])
            if v["wrap_s"] is not None:
                self.wrap.setdefault(queue, Histogram(WRAP_BUCKETS)).observe(v["wrap_s"])


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
