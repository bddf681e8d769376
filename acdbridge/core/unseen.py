"""Which visit an AMI event is about, and visits whose join was never seen. Sans-IO; lookups of
core/calls.py's CallTracker, used by its handlers (core/callevents.py) and its durations clock
(core/timeless.py).

A caller whose join nobody saw (joined in a gap, or before the first connection, or a capture
begun mid-call) is a visit from the first AgentConnect, QueueCallerAbandon or AgentComplete that
names it: they carry HoldTime (AgentComplete also TalkTime), which give the join. An event of a
visit already seen to end (a stream seen twice) is not one; nor is a join seen before."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acdbridge.core.ami import AmiMessage
from acdbridge.core.values import duration
from acdbridge.core.visit import Visit

if TYPE_CHECKING:
    from acdbridge.core.calls import CallTracker

Key = tuple[str, str, float]


def named(t: CallTracker, msg: AmiMessage) -> Visit | None:
    """The visit of the caller the event names (Uniqueid), if in the queue it names."""
    v = t.active.get(msg.headers.get("Uniqueid", ""))
    if v is None or (msg.headers.get("Queue") and msg.headers["Queue"] != v.queue):
        return None
    return v


def talking(t: CallTracker, msg: AmiMessage) -> Visit | None:
    """The talking visit of a Hold/Unhold: raised on the agent's channel (or the caller's)."""
    uid = msg.headers.get("Uniqueid", "")
    v = t.by_agent_channel.get(uid)
    if v is None:
        caller = t.active.get(uid)
        v = caller if caller is not None and caller.state == "talking" else None
    return v if v is not None and v.state == "talking" else None


def talking_with(t: CallTracker, interface: str, queue: str) -> Visit | None:
    """The talking visit of an agent's interface in a queue (a caller who hung up first): an
    AgentComplete that names no caller (the consult leg of an attended transfer) names it."""
    if not interface:
        return None
    for pool in (t.hung_up.values(), t.active.values()):
        for v in pool:
            if v.state == "talking" and v.agent_interface == interface and v.queue == queue:
                return v
    return None


def is_stale_join(t: CallTracker, key: Key, current: Visit | None) -> bool:
    """A join seen before (re-sent, or replayed after a reconnect) must not start a visit."""
    if key in t.ledger.reported or t.wraps.holds(key):
        return True
    return current is not None and (current.key == key or key[2] < current.enter_ts)


def unseen_join(t: CallTracker, msg: AmiMessage, ts: float, source: str = "holdtime") -> Visit | None:
    """The visit of a caller whose join nobody saw, from the event's HoldTime (and TalkTime):
    time_source "holdtime", its ring attempts before the event unknown. None when the caller is
    tracked elsewhere or the event belongs to a visit already seen to end."""
    h = msg.headers
    uid, queue = h.get("Uniqueid", ""), h.get("Queue", "")
    if not uid or not queue or uid in t.active:
        return None  # tracked elsewhere
    talk = duration(h.get("TalkTime", "0")) if msg.name == "AgentComplete" else 0.0
    enter = ts - talk - duration(h.get("HoldTime", "0"))
    last_end = t.ledger.last_end(uid, queue)
    if last_end is not None and enter <= last_end + 1.0:
        return None  # an event of a visit already seen end (a stream seen twice)
    t.ignored[f"missing:QueueCallerJoin:{msg.name}"] += 1
    t.known_queues.add(queue)
    v = Visit(uid, h.get("Linkedid", uid), queue, h.get("CallerIDNum", ""), h.get("CallerIDName", ""),
              enter, source)  # fmt: skip
    t.active[uid] = v
    return v
