"""The call tracker's AMI event handlers and its one event -> handler table. Sans-IO.

Each handler finds the visit the event names (core/unseen.py), applies the state machine
(core/machine.py) and hands a finished visit to the tracker (core/calls.py), which owns the
timers (wrap-ups, the hang-up grace) and the output. A handler is called as
`handler(tracker, msg, ts, source)`: ts is the event's time, source its time_source.

Facts checked on the lab (docs/lab.md): QueueCallerLeave comes for answered calls too, before
AgentConnect; QueueCallerAbandon comes for timeouts and empty-queue exits as well, and the
QUEUESTATUS VarSet that follows tells them apart (a caller's hang-up has none, its Hangup
follows); Hold/Unhold come on the agent's channel; a blind transfer emits an Unhold with no Hold;
the queue's wrapuptime is in no event (GetConfig queues.conf gives it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from acdbridge.core import machine, resync, unseen
from acdbridge.core.ami import AmiMessage
from acdbridge.core.machine import BLOCKED_STATUSES, LEAVE_STATUSES, step
from acdbridge.core.values import parse_seconds
from acdbridge.core.visit import Outcome, Visit

if TYPE_CHECKING:
    from acdbridge.core.calls import CallTracker

Handler = Callable[["CallTracker", AmiMessage, float, str], None]


def on_join(t: CallTracker, msg: AmiMessage, ts: float, source: str) -> None:
    h = msg.headers
    uid, queue = h.get("Uniqueid", ""), h.get("Queue", "")
    current = t.active.get(uid)
    if unseen.is_stale_join(t, (uid, queue, ts), current):
        t.ignored["duplicate:QueueCallerJoin"] += 1
        return
    if current is not None and current.state == "talking":  # its AgentComplete was missed
        t.ignored["missing:AgentComplete"] += 1
        t.complete(current, ts, None)
        current = None
    if current is not None:
        if current.queue == queue and current.state in ("waiting", "leaving"):
            t.ignored["duplicate:QueueCallerJoin"] += 1
            return
        if current.state == "leaving":
            step(current, "QueueCallerJoin", t.ignored)
            t.close_unanswered(current, "abandoned", current.leave_ts or ts)
    t.known_queues.add(queue)
    t.active[uid] = Visit(uid, h.get("Linkedid", uid), queue, h.get("CallerIDNum", ""),
                          h.get("CallerIDName", ""), ts, source)  # fmt: skip


def on_called(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    interface = msg.headers.get("Interface", "")
    t.offered(interface, msg.headers.get("Queue", ""), ts)  # the offer ends the last wrap-up
    v = unseen.named(t, msg)
    if v is not None and step(v, "AgentCalled", t.ignored):
        rang = len(v.ring_attempts)
        machine.ring(v, msg.headers.get("MemberName", ""), interface, ts, t.ignored)
        if t.on_live is not None and len(v.ring_attempts) > rang:  # a new ring, not a duplicate
            t.on_live("call.offered", v, v.ring_attempts[-1])


def _end_ring(t: CallTracker, msg: AmiMessage, ts: float, result: str) -> None:
    v = unseen.named(t, msg)
    if v is None or not step(v, "AgentRingNoAnswer" if result == "no_answer" else "AgentDump", t.ignored):
        return
    h = msg.headers
    rang = (parse_seconds(h.get("RingTime", "0")) or 0.0) / 1000  # RingTime is in ms
    machine.end_ring(v, h.get("MemberName", ""), h.get("Interface", ""), ts, result, rang)


def on_ring_no_answer(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    _end_ring(t, msg, ts, "no_answer")


def on_dump(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    _end_ring(t, msg, ts, "dumped")


def on_leave(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    v = unseen.named(t, msg)
    if v is not None and step(v, "QueueCallerLeave", t.ignored):
        machine.leave(v, ts)


def on_connect(t: CallTracker, msg: AmiMessage, ts: float, source: str) -> None:
    v = unseen.named(t, msg) or unseen.unseen_join(t, msg, ts, t.unseen_source(source))
    if v is None or not step(v, "AgentConnect", t.ignored):
        return
    h = msg.headers
    machine.answer(v, ts, h.get("MemberName", ""), h.get("Interface", ""), h.get("DestUniqueid") or None)
    t.answered(v, msg)


def on_abandon(t: CallTracker, msg: AmiMessage, ts: float, source: str) -> None:
    v = unseen.named(t, msg) or unseen.unseen_join(t, msg, ts, t.unseen_source(source))
    if v is not None and step(v, "QueueCallerAbandon", t.ignored):
        v.leave_ts = ts


def on_hold(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    v = unseen.talking(t, msg)
    if v is not None and step(v, msg.name, t.ignored):
        machine.hold(v, msg.name, ts, t.ignored)


def on_transfer(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    h = msg.headers
    if h.get("Result") != "Success":
        return
    v = t.active.get(h.get("TransfereeUniqueid", ""))
    if v is None or v.state != "talking":
        agent_channel = h.get("TransfererUniqueid") or h.get("OrigTransfererUniqueid", "")
        v = t.by_agent_channel.get(agent_channel) or v
    if v is not None and v.state != "talking":
        # the caller's join into the target queue came first and ended the talk: that visit
        # is in wrap-up now, ended this very moment
        uid = h.get("TransfereeUniqueid", "")
        done = [w for w in t.wraps.wrapping.values() if w.uniqueid == uid and w.transfer is None]
        if not done or abs((done[0].end_ts or 0.0) - ts) > 1.0:
            return
        v, v.ended_by = done[0], "transfer"
    elif v is None or not step(v, msg.name, t.ignored):
        return
    machine.transfer(v, msg.name, h)


def on_complete(t: CallTracker, msg: AmiMessage, ts: float, source: str) -> None:
    v = (
        unseen.named(t, msg)
        or t.complete_target(msg)
        or unseen.unseen_join(t, msg, ts, t.unseen_source(source))
    )
    if v is None:
        return
    h = msg.headers
    if v.state == "waiting":  # its AgentConnect was lost: AgentComplete carries wait and talk time
        t.ignored["missing:AgentConnect"] += 1
        talk = parse_seconds(h.get("TalkTime", "0")) or 0.0
        machine.answer(v, max(v.enter_ts, ts - talk), h.get("MemberName", ""), h.get("Interface", ""), None)
    reason = h.get("Reason", "")
    t.complete(v, ts, reason if reason in ("caller", "agent", "transfer") else None)


def on_hangup(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    t.dialplan.hangup(msg.headers.get("Uniqueid", ""))
    v = t.active.get(msg.headers.get("Uniqueid", ""))
    if v is None:
        return
    before = v.state
    if before == "talking" and v.hangup_ts is None:
        v.hangup_ts = ts
        t.hung_up[v.uniqueid] = v
    if step(v, "Hangup", t.ignored) and v.state == "done":
        # still waiting but already out of the queue without an Abandon: a key press
        key_exit = before == "waiting" and v.left_queue
        t.close_unanswered(v, "exit_key" if key_exit else "abandoned", ts)


def on_varset(t: CallTracker, msg: AmiMessage, ts: float, source: str) -> None:
    h = msg.headers
    if h.get("Variable") != "QUEUESTATUS":
        return
    value, uid = h.get("Value", ""), h.get("Uniqueid", "")
    v = t.active.get(uid)
    if v is None:
        if value in BLOCKED_STATUSES:
            exten = h.get("Exten", "")  # the dialplan's Queue() step named it, or the exten did
            known = exten if exten in t.known_queues else "unknown"
            queue = t.dialplan.queue_of.get(uid) or known
            caller, name = h.get("CallerIDNum", ""), h.get("CallerIDName", "")
            visit = Visit(uid, h.get("Linkedid", uid), queue, caller, name, ts, source)
            machine.blocked(visit, value)
            t.emit(visit)
        return
    before = v.state
    if not step(v, "QUEUESTATUS", t.ignored):
        return
    default: Outcome = "abandoned" if before == "leaving" else "exit_key"
    t.close_unanswered(v, LEAVE_STATUSES.get(value, default), ts)


def on_member_gone(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    """A pause or a logout ends the agent's wrap-up early."""
    if msg.name == "QueueMemberPause" and msg.headers.get("Paused") != "1":
        return
    interface = msg.headers.get("Interface", "")
    if msg.name == "QueueMemberRemoved":
        t.wraps.logged_out.add((interface, msg.headers.get("Queue", "")))
    t.end_wrap(interface, ts)


def on_member_added(t: CallTracker, msg: AmiMessage, _ts: float, _source: str) -> None:
    t.wraps.logged_out.discard((msg.headers.get("Interface", ""), msg.headers.get("Queue", "")))


def on_newexten(t: CallTracker, msg: AmiMessage, _ts: float, _source: str) -> None:
    t.dialplan.newexten(msg.headers)


HANDLERS: dict[str, Handler] = {
    "QueueCallerJoin": on_join,
    "AgentCalled": on_called,
    "AgentRingNoAnswer": on_ring_no_answer,
    "AgentDump": on_dump,
    "QueueCallerLeave": on_leave,
    "AgentConnect": on_connect,
    "QueueCallerAbandon": on_abandon,
    "Hold": on_hold,
    "Unhold": on_hold,
    "BlindTransfer": on_transfer,
    "AttendedTransfer": on_transfer,
    "AgentComplete": on_complete,
    "Hangup": on_hangup,
    "VarSet": on_varset,
    "QueueMemberPause": on_member_gone,
    "QueueMemberRemoved": on_member_gone,
    "QueueMemberAdded": on_member_added,
    "QueueEntry": resync.on_queue_entry,
    "CoreShowChannel": resync.on_channel_listed,
    "CoreShowChannelsComplete": resync.on_channels_complete,
    "Newexten": on_newexten,
}
