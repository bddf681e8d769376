"""The durations clock: the time of an event in a stream with neither Timestamp nor receive time.
Sans-IO; used by core/calls.py's CallTracker for such events (time_source "durations").

Asterisk's default is `timestampevents = no`, and a plain capture of such a stream (a foreign
site's, or any tool's that kept no receive times) has no time at all. But the queue events carry
their own durations: QueueCallerAbandon and AgentConnect the caller's wait (HoldTime, whole
seconds), AgentConnect the answered ring (RingTime, whole seconds), AgentComplete the talk
(TalkTime, hold included), AgentRingNoAnswer the ring (RingTime, ms). So:
- the clock starts at 0.0 at the stream's first event and moves only as far as those durations
  prove: a join is at the clock so far, and each visit's times are laid out from its join by its
  own durations (answer = join + HoldTime, end = answer + TalkTime, a ring-no-answer ends RingTime
  after it began); the clock is the latest time so laid out. It runs behind real time by the
  time nothing measured was in progress (idle spells, the greeting), so it orders and counts, it
  is no wall clock: use KPIs over the whole stream, not windows of it.
- an event without a duration of its own is at its visit's latest time (a ring begins where the
  caller's earlier rings ended); one of no visit, and a caller's hang-up in talk, at the clock.
- a caller in talk at the first event (a capture begun mid-call) is laid out back from the
  clock, as for a join never seen: its join may be before 0.0.
- a caller's hang-up in talk gets no 2 s grace on this clock (it leaps): the talk ends at its
  AgentComplete (one naming no caller, as a consult leg's, by agent and queue), else at the end.
- what no event measures is left unknown: hold time (hold_s null; talk_s is TalkTime, hold
  included, as queue_log's), a wrap-up cut short by a pause, logout or disposition (wrap_s null).
  A wrap-up ended by the next offer ran until Asterisk could ring the agent again: the offering
  queue's wrapuptime after the call, at most its own (the clock moves on to then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acdbridge.core import unseen
from acdbridge.core.ami import AmiMessage
from acdbridge.core.values import MAX_TS, duration
from acdbridge.core.visit import Visit

if TYPE_CHECKING:
    from acdbridge.core.calls import CallTracker

PROBLEM = (
    "the stream has no Timestamp and no receive time (manager.conf timestampevents = no?): "
    "durations come from the events' HoldTime/TalkTime/RingTime, times are a clock from 0.0 "
    "at the stream's start moved only by them, hold time is unknown"
)
VISIT_EVENTS = frozenset({"AgentCalled", "AgentDump", "QueueCallerLeave"})


def seconds(msg: AmiMessage, header: str, per_s: float = 1.0) -> float:
    return duration(msg.headers.get(header, "0"), per_s)


def cursor(v: Visit) -> float:
    """The visit's latest time laid out so far."""
    latest = v.enter_ts
    for ts in (v.answer_ts, v.leave_ts, v.end_ts):
        if ts is not None and ts > latest:
            latest = ts
    for a in v.ring_attempts:
        latest = max(latest, a.start_ts if a.end_ts is None else a.end_ts)
    for segment in v.holds:
        latest = max(latest, segment[-1])
    return latest


def time_of(t: CallTracker, msg: AmiMessage) -> float:
    """The event's time on the durations clock (t.now is the clock so far)."""
    name, now = msg.name, t.now
    if name == "AgentComplete":
        v = unseen.named(t, msg) or t.complete_target(msg)
        if v is None:  # a join never seen: laid out back from the clock (core/unseen.py)
            return now
        start = v.answer_ts if v.answer_ts is not None else v.enter_ts + seconds(msg, "HoldTime")
        return min(start + seconds(msg, "TalkTime"), MAX_TS)
    if name in ("AgentConnect", "QueueCallerAbandon"):
        v = unseen.named(t, msg)
        return now if v is None else min(v.enter_ts + seconds(msg, "HoldTime"), MAX_TS)
    if name == "AgentRingNoAnswer":
        v = unseen.named(t, msg)
        if v is None:
            return now
        interface = msg.headers.get("Interface", "")
        opened = (a.start_ts for a in v.ring_attempts if a.interface == interface and a.end_ts is None)
        return min(next(opened, cursor(v)) + seconds(msg, "RingTime", 1000.0), MAX_TS)
    v = _visit_of(t, msg)
    if v is None or (name == "Hangup" and v.state == "talking"):
        return now  # a hang-up in talk: its grace (core/calls.py) runs on the clock
    return cursor(v)


def _visit_of(t: CallTracker, msg: AmiMessage) -> Visit | None:
    name, h = msg.name, msg.headers
    if name in VISIT_EVENTS:
        return unseen.named(t, msg)
    if name in ("Hold", "Unhold"):
        return unseen.talking(t, msg)
    if name in ("BlindTransfer", "AttendedTransfer"):
        return t.active.get(h.get("TransfereeUniqueid", ""))
    if name in ("Hangup", "VarSet"):
        return t.active.get(h.get("Uniqueid", ""))
    return None


def answered(v: Visit, msg: AmiMessage) -> None:
    """AgentConnect's RingTime gives the answered ring's start; a ring canceled by the answer
    (ringall) rang alongside it, so began no earlier."""
    if v.answer_ts is None:
        return
    answer = v.answer_ts
    start = min(answer, max(v.enter_ts, answer - seconds(msg, "RingTime")))
    done = [a for a in v.ring_attempts if a.end_ts == answer and a.result in ("answered", "canceled")]
    for a in done:
        if a.result == "answered":
            a.start_ts = start
    for a in done:
        if a.result == "canceled":
            a.start_ts = min(answer, max(a.start_ts, start))


def offered(t: CallTracker, interface: str, queue: str) -> None:
    """An agent in wrap-up is offered a call: Asterisk rings no member within the offering
    queue's wrapuptime of his last call, so the wrap-up lasted that long at least (at most its
    own wrapuptime), and the clock has reached its end."""
    v = t.wraps.wrapping.get(interface)
    if v is None or v.end_ts is None:
        return
    due = v.wrap_due if v.wrap_due is not None else v.end_ts
    wrapup = t.wraps.wrapup_for(queue)
    until = due if wrapup is None else min(due, v.end_ts + wrapup)
    t.advance(until)
    t.wraps.end(interface, until)  # unless the clock's advance ended it at its due time
