"""Urgent calls around the clock, sans-IO: which on-call shift of a hotline's rota covers a local
time, and whether an urgent call goes to it instead of the queue (docs/callflow.md, "Urgent calls").

The greeting script (core/ivr.py) hands the on-call engineer's dial strings to the dialplan as
ACD_ONCALL (joined with ONCALL_SEP); the dialplan's [acd-oncall] dials them in order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

ONCALL_SEP = "^"  # not "&" (Dial's ring-at-once) nor "," (an application argument)
DEFAULT_RING_S = 20
# how an on-call call ended (core/legs.py: the IVR leg's outcome is oncall_<this>)
ONCALL_OUTCOMES = ("answered", "unanswered", "abandoned")


@dataclass(frozen=True)
class OncallShift:
    weekdays: frozenset[int]  # 0 = Monday: the day the shift starts on
    start_min: int  # minutes after local midnight
    end_min: int  # <= start_min: the shift runs past midnight into the next day
    numbers: tuple[str, ...]  # Dial strings, tried in order
    ring_s: int = DEFAULT_RING_S  # each number rings this long before the next is tried

    def covers(self, now: datetime) -> bool:
        minute = now.hour * 60 + now.minute
        if self.start_min < self.end_min:
            return now.weekday() in self.weekdays and self.start_min <= minute < self.end_min
        # overnight (e.g. 18:00-08:00): the evening of a shift day or the morning after one
        yesterday = (now.weekday() - 1) % 7
        return (now.weekday() in self.weekdays and minute >= self.start_min) or (
            yesterday in self.weekdays and minute < self.end_min
        )


def shift_now(rota: tuple[OncallShift, ...], now: datetime) -> OncallShift | None:
    """The first shift of the rota (config order) that covers `now`; None: nobody is on call."""
    return next((s for s in rota if s.covers(now)), None)


def oncall_reason(open_state: str, queue: str, logged_in: Mapping[str, int] | None) -> str:
    """Why an urgent call skips its queue: the hotline is not open ("closed" / "holiday") or no
    agent is logged in to the queue ("no_agents"); "" when the queue takes it. `logged_in` None:
    membership is not known yet (no QueueStatus since the AMI link came up), so the queue takes it."""
    if open_state != "open":
        return open_state
    if logged_in is not None and logged_in.get(queue, 0) <= 0:
        return "no_agents"
    return ""
