"""One queue visit: its data, its states, and its record (the replay contract, docs/daemon.md).
Sans-IO; the rules of its life are core/machine.py's transition table, fed by core/calls.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["waiting", "leaving", "talking", "wrapup", "done"]
Outcome = Literal["answered", "abandoned", "timeout", "exit_empty", "exit_key", "blocked"]


@dataclass
class RingAttempt:
    agent: str
    interface: str
    start_ts: float
    end_ts: float | None = None
    result: str | None = None  # answered | no_answer | canceled | dumped


@dataclass
class Visit:
    uniqueid: str
    linkedid: str
    queue: str
    caller: str
    caller_name: str
    enter_ts: float
    time_source: str
    state: State = "waiting"
    ring_attempts: list[RingAttempt] = field(default_factory=list)
    left_queue: bool = False
    answer_ts: float | None = None
    agent: str | None = None
    agent_interface: str | None = None
    agent_uniqueid: str | None = None
    holds: list[list[float]] = field(default_factory=list)
    transfer: dict[str, str] | None = None
    ended_by: str | None = None
    leave_ts: float | None = None
    end_ts: float | None = None
    outcome: Outcome | None = None
    blocked_reason: str | None = None
    hangup_ts: float | None = None
    wrap_due: float | None = None
    wrap_s: float | None = None

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.uniqueid, self.queue, self.enter_ts)


def visit_dict(v: Visit) -> dict[str, Any]:
    """asdict(v), without its deep copy (a checkpoint takes every visit in progress every few
    seconds: dataclasses.asdict was most of a checkpoint's cost under load)."""
    d = dict(vars(v))
    d["ring_attempts"] = [dict(vars(a)) for a in v.ring_attempts]
    d["holds"] = [list(h) for h in v.holds]
    d["transfer"] = dict(v.transfer) if v.transfer is not None else None
    return d


def visit_of(d: dict[str, Any]) -> Visit:
    """A Visit from its asdict() form (a checkpoint or saved state)."""
    return Visit(**dict(d, ring_attempts=[RingAttempt(**a) for a in d["ring_attempts"]]))


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def record_of(v: Visit) -> dict[str, Any]:
    """The visit as the replay contract's JSON object (key order is part of the contract)."""
    end = v.end_ts if v.end_ts is not None else v.enter_ts
    waited_until = v.answer_ts if v.answer_ts is not None else (v.leave_ts if v.leave_ts is not None else end)
    spans = [(a.start_ts, a.end_ts) for a in v.ring_attempts if a.end_ts is not None]
    hold_s = sum((max(0.0, h[1] - h[0]) for h in v.holds), 0.0)
    # on the durations clock (core/timeless.py) no event measures a hold: talk_s is TalkTime,
    # hold included (as queue_log's), and hold_s is unknown
    held: float | None = None if v.time_source == "durations" and v.answer_ts is not None else hold_s
    talk_s = max(0.0, end - v.answer_ts - (held or 0.0)) if v.answer_ts is not None else 0.0
    return {
        "uniqueid": v.uniqueid,
        "linkedid": v.linkedid,
        "queue": v.queue,
        "caller": v.caller,
        "caller_name": v.caller_name,
        "outcome": v.outcome,
        "blocked_reason": v.blocked_reason,
        "enter_ts": v.enter_ts,
        "answer_ts": v.answer_ts,
        "end_ts": end,
        "wait_s": round(max(0.0, waited_until - v.enter_ts), 6) if v.outcome != "blocked" else 0.0,
        "ring_s": round(_union_length(spans), 6),
        "talk_s": round(talk_s, 6),
        "hold_s": None if held is None else round(held, 6),
        "hold_count": len(v.holds),
        "wrap_s": None if v.wrap_s is None else round(v.wrap_s, 6),
        "agent": v.agent,
        "agent_interface": v.agent_interface,
        "ring_attempts": [
            {
                "agent": a.agent,
                "interface": a.interface,
                "start_ts": a.start_ts,
                "end_ts": a.end_ts,
                "result": a.result,
            }
            for a in v.ring_attempts
        ],
        "transfer": v.transfer,
        "ended_by": v.ended_by,
        "time_source": v.time_source,
    }
