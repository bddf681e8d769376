"""What the traffic generator keeps per caller visit, and the report of a run."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from acdbridge.lab.scenario import AgentSpec, PlannedCall

REPORTED_EVENTS = (
    "QueueCallerJoin", "AgentCalled", "AgentConnect", "AgentRingNoAnswer", "AgentDump", "AgentComplete",
    "QueueCallerAbandon", "Hold", "Unhold", "BlindTransfer", "AttendedTransfer",
)  # fmt: skip


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
