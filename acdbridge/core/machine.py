"""The visit state machine: what each input does to one visit, in the spirit of h11's _state.py.
Pure: functions of a Visit and the input's values; no clock, no lookups, no timers, no output.
core/callevents.py finds the visit an AMI event names and calls these; core/calls.py keeps the
timers (wrap-ups, the hang-up grace) and reports finished visits.

Every rule of a visit's life is in TRANSITIONS: an input not allowed in the visit's state (a
duplicate after a reconnect, say) is counted in `ignored` and changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from acdbridge.core.dialplan import transfer_target
from acdbridge.core.visit import Outcome, RingAttempt, State, Visit

# (state, input) -> next state. Inputs are AMI event names, the QUEUESTATUS variable, and
# "WrapEnd" (the wrap-up ended: expired, next call offered, paused or logged out).
TRANSITIONS: dict[tuple[State, str], State] = {
    ("waiting", "AgentCalled"): "waiting",
    ("waiting", "AgentRingNoAnswer"): "waiting",
    ("waiting", "AgentDump"): "waiting",
    ("waiting", "QueueCallerLeave"): "waiting",  # also before AgentConnect
    ("waiting", "AgentConnect"): "talking",
    ("waiting", "QueueCallerAbandon"): "leaving",
    ("waiting", "QUEUESTATUS"): "done",  # left without Abandon: a key press
    ("waiting", "Hangup"): "done",  # Abandon missed (reconnect): the caller hung up
    ("leaving", "QueueCallerLeave"): "leaving",
    ("leaving", "AgentDump"): "leaving",
    ("leaving", "QUEUESTATUS"): "done",
    ("leaving", "Hangup"): "done",
    ("leaving", "QueueCallerJoin"): "done",  # straight into another queue
    ("talking", "Hold"): "talking",
    ("talking", "Unhold"): "talking",
    ("talking", "BlindTransfer"): "talking",
    ("talking", "AttendedTransfer"): "talking",
    ("talking", "Hangup"): "talking",  # AgentComplete follows, sometimes late
    ("talking", "AgentComplete"): "wrapup",
    ("waiting", "AgentComplete"): "wrapup",  # AgentConnect missed (an AMI outage): rebuilt from it
    ("wrapup", "WrapEnd"): "done",
}
BLOCKED_STATUSES = {"FULL": "full", "JOINEMPTY": "joinempty", "JOINUNAVAIL": "joinunavail"}
LEAVE_STATUSES: dict[str, Outcome] = {
    "TIMEOUT": "timeout",
    "LEAVEEMPTY": "exit_empty",
    "LEAVEUNAVAIL": "exit_empty",
}


def step(v: Visit, event: str, ignored: Counter[str]) -> bool:
    """The visit's next state for `event`, if the table allows it (else counted, False)."""
    nxt = TRANSITIONS.get((v.state, event))
    if nxt is None:
        ignored[f"{v.state}:{event}"] += 1
        return False
    v.state = nxt
    return True


def ring(v: Visit, agent: str, interface: str, ts: float, ignored: Counter[str]) -> None:
    """AgentCalled: an agent's phone starts ringing for this caller (once per open attempt)."""
    if any(a.interface == interface and a.end_ts is None for a in v.ring_attempts):
        ignored["duplicate:AgentCalled"] += 1
        return
    v.ring_attempts.append(RingAttempt(agent, interface, ts))


def end_ring(v: Visit, agent: str, interface: str, ts: float, result: str, rang_s: float) -> None:
    """AgentRingNoAnswer / AgentDump: the interface's open attempt ends. A ring-no-answer whose
    AgentCalled came in a gap is added from its RingTime (`rang_s`), unless it was sent twice."""
    open_ = [a for a in v.ring_attempts if a.interface == interface and a.end_ts is None]
    for a in open_:
        a.end_ts, a.result = max(ts, a.start_ts), result
    seen = any(a.interface == interface and a.end_ts == ts for a in v.ring_attempts)  # sent twice
    if not open_ and not seen and result == "no_answer":
        v.ring_attempts.append(RingAttempt(agent, interface, max(v.enter_ts, ts - rang_s), ts, result))


def answer(v: Visit, ts: float, agent: str, interface: str | None, agent_uniqueid: str | None) -> None:
    """AgentConnect (or queue_log's CONNECT in a gap): the call is answered at ts."""
    v.answer_ts, v.agent, v.agent_interface = ts, agent, interface
    v.agent_uniqueid, v.leave_ts = agent_uniqueid, None
    close_rings_at_answer(v, interface or "", ts)


def close_rings_at_answer(v: Visit, interface: str, ts: float) -> None:
    """The answering interface's ring is answered, every other one still open canceled; an
    answer whose AgentCalled was missed gets an answered attempt of its own."""
    for a in v.ring_attempts:
        if a.end_ts is None:
            a.end_ts = max(ts, a.start_ts)
            a.result = "answered" if a.interface == interface else "canceled"
    if not any(a.result == "answered" for a in v.ring_attempts):  # AgentCalled missed
        v.ring_attempts.append(RingAttempt(v.agent or "", interface, ts, ts, "answered"))


def leave(v: Visit, ts: float) -> None:
    """QueueCallerLeave: out of the queue (answered calls too, before AgentConnect)."""
    v.left_queue = True
    if v.leave_ts is None:
        v.leave_ts = ts


def hold(v: Visit, name: str, ts: float, ignored: Counter[str]) -> None:
    """Hold / Unhold on a talking visit: a hold segment opens or closes."""
    open_hold = bool(v.holds) and len(v.holds[-1]) == 1
    if name == "Hold":
        if open_hold:
            ignored["duplicate:Hold"] += 1
        else:
            v.holds.append([ts])
    elif open_hold:
        v.holds[-1].append(max(ts, v.holds[-1][0]))
    else:  # e.g. the Unhold a blind transfer emits with no Hold before it
        ignored["unhold-without-hold"] += 1


def transfer(v: Visit, name: str, h: Mapping[str, str]) -> None:
    """BlindTransfer / AttendedTransfer: where the caller went."""
    if name == "BlindTransfer":
        v.transfer = {"kind": "blind", "to": f"{h.get('Extension', '')}@{h.get('Context', '')}"}
    else:
        v.transfer = {"kind": "attended", "to": transfer_target(h)}


def talk_ended(v: Visit, ts: float, ended_by: str | None) -> None:
    """The talk ends at ts (the caller's AgentComplete, or its stand-in): answered, an open hold
    closed. The wrap-up that follows is the tracker's (core/wraps.py)."""
    v.ended_by = "transfer" if v.transfer else ended_by
    v.end_ts = ts
    v.outcome = "answered"
    if v.holds and len(v.holds[-1]) == 1:
        v.holds[-1].append(ts)


def left_unanswered(v: Visit, outcome: Outcome, ts: float) -> None:
    """The caller left unanswered: open rings are dumped (a hang-up) or canceled; the visit ends
    when it left the queue, else at ts."""
    for a in v.ring_attempts:
        if a.end_ts is None:
            a.end_ts = max(ts, a.start_ts)
            a.result = "dumped" if outcome == "abandoned" else "canceled"
    v.outcome = outcome
    v.leave_ts = v.leave_ts if v.leave_ts is not None else ts
    v.end_ts = v.leave_ts
    v.state = "done"


def blocked(v: Visit, status: str) -> None:
    """QUEUESTATUS FULL / JOINEMPTY / JOINUNAVAIL of a caller never in the queue."""
    v.outcome, v.blocked_reason = "blocked", BLOCKED_STATUSES[status]
    v.end_ts = v.enter_ts
    v.state = "done"
