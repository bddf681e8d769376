"""The call tracker: AMI messages in, finished queue visits out. Sans-IO; the clock is the
events' own Timestamp header.

A visit is one stay of one caller channel (its Uniqueid, the id queue_log uses) in one queue:
join -> ring attempts -> answer -> talk with hold segments -> transfer? -> end -> the
answering agent's wrap-up. A caller blind-transferred into another queue starts a new visit of
the same channel. Every rule of the visit's life is in TRANSITIONS below; a message that is not
allowed in a visit's state (a duplicate after a reconnect, say) is counted and ignored.

Facts checked on the lab (docs/lab.md): QueueCallerLeave comes for answered calls too, before
AgentConnect; QueueCallerAbandon comes for timeouts and empty-queue exits as well, and the
QUEUESTATUS VarSet that follows tells them apart (a caller's hang-up has none, its Hangup
follows); Hold/Unhold come on the agent's channel; a blind transfer emits an Unhold with no Hold;
the queue's wrapuptime is in no event (GetConfig queues.conf gives it)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from acdbridge.core import resync
from acdbridge.core.ami import AmiMessage
from acdbridge.core.dialplan import DialplanQueues, transfer_target
from acdbridge.core.ledger import Ledger
from acdbridge.core.values import MAX_TS, MIN_TS, RECEIVE_SKEW_S, parse_seconds
from acdbridge.core.visit import (
    BLOCKED_STATUSES,
    LEAVE_STATUSES,
    TRANSITIONS,
    Outcome,
    RingAttempt,
    Visit,
    record_of,
    visit_dict,
    visit_of,
)
from acdbridge.core.wraps import WrapUps

# A caller's Hangup while talking is normally followed at once by AgentComplete. Asterisk 22
# sends none for the consult leg of an attended transfer (queue_log still has COMPLETECALLER):
# when this long has passed on the events' clock, the Hangup ends the talk instead.
AGENT_COMPLETE_GRACE_S = 2.0


def _ts(msg: AmiMessage, fallback: float) -> tuple[float, str]:
    raw = msg.headers.get("Timestamp")
    if raw:
        # the Pipeline has checked the text strictly (core/values.py); alone, the tracker still
        # refuses NaN, inf and times out of range (a comparison with NaN is false)
        try:
            ts = float(raw)
        except ValueError:
            ts = math.nan
        if MIN_TS <= ts <= MAX_TS and (fallback <= 0 or abs(ts - fallback) <= RECEIVE_SKEW_S):
            return ts, "event"
    return fallback, "receive"


class CallTracker:
    """Feed AMI messages in order; finished visits come out of `finished` (and the callback)."""

    def __init__(
        self,
        wrapup_s: dict[str, float] | None = None,
        on_visit: Callable[[dict[str, Any]], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_wrap_end: Callable[[str, float], None] | None = None,
    ) -> None:
        self.on_visit = on_visit
        # the resync's vanished callers go here first (core/gap.py); True: it has taken them
        self.on_vanished: Callable[[list[Visit], float], bool] | None = None
        self.active: dict[str, Visit] = {}  # caller uniqueid -> its current visit
        self.by_agent_channel: dict[str, Visit] = {}  # agent channel uniqueid -> visit talking
        self.wraps = WrapUps(wrapup_s, self._wrap_done, on_wrap_end, on_problem)
        self.hung_up: dict[str, Visit] = {}  # caller uniqueid -> talking visit whose caller hung up
        self.known_queues: set[str] = set()
        # kept only without a callback (a replay); the daemon hands each record on and forgets it
        self.finished: list[dict[str, Any]] = []
        self.ignored: Counter[str] = Counter()
        self.now = 0.0
        # the last event's own time: `now` also moves with the daemon's tick in a quiet spell (or
        # an outage), and a gap begins at the last thing heard, not at the last tick
        self.last_event_ts = 0.0
        self.ledger = Ledger()  # recently finished visits (bounded)
        self.dialplan = DialplanQueues()
        self.alive_listed: set[str] | None = None  # channels listed by a CoreShowChannels resync
        self.moved: list[Visit] = []  # visits a resync found their caller gone on from (core/resync.py)
        # an agent's last answered call and recent calls' queues: dispositions and survey scores
        # arrive after the talk (core/legs.py)
        self.last_call, self.recent_queue = self.ledger.last_call, self.ledger.recent_queue

    # -- input ---------------------------------------------------------------------------------
    def feed(self, msg: AmiMessage, received_at: float = 0.0) -> None:
        ts, source = _ts(msg, received_at)
        if msg.kind == "event":
            self.last_event_ts = max(self.last_event_ts, ts)
        if ts > self.now:
            self.now = ts
            self._expire_hangups(ts - AGENT_COMPLETE_GRACE_S)
            self.wraps.expire(ts)
        if msg.kind == "response":
            if msg.headers.get("Category-000000") is not None:
                self.known_queues.update(self.wraps.read_getconfig(msg.headers))
            return
        handler = self._handlers.get(msg.name)
        if handler is not None:
            handler(self, msg, ts, source)

    def advance(self, ts: float) -> None:
        """Move the clock on without an event (the daemon's tick in a quiet spell), so wrap-ups
        and late AgentCompletes still resolve when no further event comes."""
        if ts > self.now:
            self.now = ts
            self._expire_hangups(ts - AGENT_COMPLETE_GRACE_S)
            self.wraps.expire(ts)

    def finish(self) -> None:
        """End of input (end of a trace, or an orderly stop): wrap-ups run to their due time,
        visits still waiting stay unfinished and are not reported."""
        self._expire_hangups(float("inf"))
        self.wraps.finish(self.now)

    def call_of_agent(self, interface: str) -> str | None:
        """The call an agent is wrapping up, or else his last answered call."""
        visit = self.wraps.wrapping.get(interface)
        return visit.uniqueid if visit is not None else self.last_call.get(interface)

    def queue_of(self, uniqueid: str) -> str:
        visit = self.active.get(uniqueid)
        return visit.queue if visit is not None else self.recent_queue.get(uniqueid, "")

    def end_wrap(self, interface: str, ts: float) -> None:
        """The agent ended after-call work (entered a disposition)."""
        self.wraps.end(interface, ts)

    # -- state across a daemon restart ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything in progress, as JSON-able data: a restarted daemon goes on from it."""
        return {
            "now": self.now,
            "last_event_ts": self.last_event_ts,
            **self.wraps.snapshot(),  # config_wrapup, wrapping
            "known_queues": sorted(self.known_queues),
            "active": [visit_dict(v) for v in self.active.values()],
            **self.ledger.snapshot(self.last_event_ts),  # last_call, done_recent
        }

    def restore(self, snap: dict[str, Any]) -> None:
        visit = visit_of
        self.now = max(self.now, float(snap["now"]))
        self.last_event_ts = max(self.last_event_ts, float(snap.get("last_event_ts", snap["now"])))
        self.known_queues.update(snap["known_queues"])
        self.ledger.restore(snap)
        for d in snap["active"]:
            v = visit(d)
            self.active[v.uniqueid] = v
            if v.state == "talking" and v.agent_uniqueid:
                self.by_agent_channel[v.agent_uniqueid] = v
            if v.hangup_ts is not None:
                self.hung_up[v.uniqueid] = v
        self.wraps.restore(snap)

    # -- helpers -------------------------------------------------------------------------------
    def _step(self, visit: Visit, event: str) -> bool:
        nxt = TRANSITIONS.get((visit.state, event))
        if nxt is None:
            self.ignored[f"{visit.state}:{event}"] += 1
            return False
        visit.state = nxt
        return True

    def _emit(self, visit: Visit) -> None:
        visit.state = "done"
        if self.active.get(visit.uniqueid) is visit:
            del self.active[visit.uniqueid]
        self.emit_record(visit.key, record_of(visit))

    def emit_record(self, key: tuple[str, str, float], rec: dict[str, Any]) -> None:
        """A finished visit out, once (also one rebuilt from queue_log after a gap)."""
        if not self.ledger.report(key, float(rec["end_ts"] or 0.0)):  # seen again (replayed stream)
            self.ignored["duplicate-visit"] += 1
            return
        if self.on_visit is not None:
            self.on_visit(rec)
        else:
            self.finished.append(rec)

    def known_keys(self) -> list[tuple[str, str, float]]:
        """The visits reported or in wrap-up: a backfill must not report them again. (A visit
        still tracked that queue_log has ended in the gap ended while nobody listened.)"""
        return [*self.ledger.reported, *(v.key for v in self.wraps.wrapping.values())]

    def forget(self, v: Visit) -> None:
        """Stop tracking a visit's call: its talk ended, or it is settled elsewhere (the gap's
        backfill reports it)."""
        if self.active.get(v.uniqueid) is v:
            del self.active[v.uniqueid]
        self.hung_up.pop(v.uniqueid, None)
        if v.agent_uniqueid:
            self.by_agent_channel.pop(v.agent_uniqueid, None)

    def answered_in_gap(self, v: Visit, ts: float, agent: str, agent_uniqueid: str) -> None:
        """queue_log's CONNECT, in a gap, of a caller tracked waiting: the answer AMI never told
        (the interface from the agent's ring attempt, when the tracker saw one)."""
        if not self._step(v, "AgentConnect"):
            return
        interface = next((a.interface for a in v.ring_attempts if a.agent == agent), "")
        v.answer_ts, v.agent, v.agent_interface = ts, agent, interface or None
        v.agent_uniqueid, v.leave_ts = agent_uniqueid or None, None
        self._close_attempts_at_answer(v, interface, ts)
        if v.agent_uniqueid:
            self.by_agent_channel[v.agent_uniqueid] = v

    def finish_vanished(self, v: Visit, ts: float) -> None:
        """A caller gone while nobody listened, with no record of how: ended at `ts`."""
        if v.state == "talking":
            self._complete(v, ts, None)
        else:
            v.state = "done"
            self._close_unanswered(v, "abandoned", ts)

    def wrapups(self) -> dict[str, float]:
        """Each known queue's wrapuptime, where it is known."""
        return {q: w for q in self.known_queues if (w := self.wraps.wrapup_for(q)) is not None}

    def _close_unanswered(self, v: Visit, outcome: Outcome, ts: float) -> None:
        for attempt in v.ring_attempts:
            if attempt.end_ts is None:
                attempt.end_ts, attempt.result = ts, ("dumped" if outcome == "abandoned" else "canceled")
        v.outcome = outcome
        v.leave_ts = v.leave_ts if v.leave_ts is not None else ts
        v.end_ts = v.leave_ts
        self._emit(v)

    def _visit(self, msg: AmiMessage) -> Visit | None:
        v = self.active.get(msg.headers.get("Uniqueid", ""))
        if v is None or (msg.headers.get("Queue") and msg.headers["Queue"] != v.queue):
            return None
        return v

    def _expire_hangups(self, before: float) -> None:
        for uid, v in list(self.hung_up.items()):
            if v.hangup_ts is not None and v.hangup_ts <= before:
                del self.hung_up[uid]
                if v.state == "talking":
                    self.ignored["missing:AgentComplete"] += 1
                    self._complete(v, v.hangup_ts, "caller")

    def _wrap_done(self, v: Visit) -> None:
        self._step(v, "WrapEnd")
        self._emit(v)

    # -- handlers ------------------------------------------------------------------------------
    def _on_join(self, msg: AmiMessage, ts: float, source: str) -> None:
        h = msg.headers
        uid, queue = h.get("Uniqueid", ""), h.get("Queue", "")
        current = self.active.get(uid)
        if self._is_stale_join((uid, queue, ts), current):
            self.ignored["duplicate:QueueCallerJoin"] += 1
            return
        if current is not None and current.state == "talking":  # its AgentComplete was missed
            self.ignored["missing:AgentComplete"] += 1
            self._complete(current, ts, None)
            current = None
        if current is not None:
            if current.queue == queue and current.state in ("waiting", "leaving"):
                self.ignored["duplicate:QueueCallerJoin"] += 1
                return
            if current.state == "leaving":
                self._step(current, "QueueCallerJoin")
                self._close_unanswered(current, "abandoned", current.leave_ts or ts)
        self.known_queues.add(queue)
        self.active[uid] = Visit(uid, h.get("Linkedid", uid), queue, h.get("CallerIDNum", ""),
                                 h.get("CallerIDName", ""), ts, source)  # fmt: skip

    def _is_stale_join(self, key: tuple[str, str, float], current: Visit | None) -> bool:
        """A join seen before (re-sent, or replayed after a reconnect) must not start a visit."""
        if key in self.ledger.reported or self.wraps.holds(key):
            return True
        return current is not None and (current.key == key or key[2] < current.enter_ts)

    def _on_called(self, msg: AmiMessage, ts: float, _source: str) -> None:
        interface = msg.headers.get("Interface", "")
        # an agent offered a new call has ended the wrap-up of the last one
        self.wraps.end(interface, ts)
        v = self._visit(msg)
        if v is None or not self._step(v, "AgentCalled"):
            return
        if any(a.interface == interface and a.end_ts is None for a in v.ring_attempts):
            self.ignored["duplicate:AgentCalled"] += 1
            return
        v.ring_attempts.append(RingAttempt(msg.headers.get("MemberName", ""), interface, ts))

    def _end_attempt(self, msg: AmiMessage, ts: float, result: str, event: str) -> None:
        v = self._visit(msg)
        if v is None or not self._step(v, event):
            return
        interface = msg.headers.get("Interface", "")
        open_ = [a for a in v.ring_attempts if a.interface == interface and a.end_ts is None]
        for a in open_:
            a.end_ts, a.result = max(ts, a.start_ts), result
        seen = any(a.interface == interface and a.end_ts == ts for a in v.ring_attempts)  # sent twice
        if not open_ and not seen and result == "no_answer":  # its AgentCalled came in a gap: RingTime (ms)
            rang = (parse_seconds(msg.headers.get("RingTime", "0")) or 0.0) / 1000
            start = max(v.enter_ts, ts - rang)
            v.ring_attempts.append(
                RingAttempt(msg.headers.get("MemberName", ""), interface, start, ts, result)
            )

    def _on_ring_no_answer(self, msg: AmiMessage, ts: float, _source: str) -> None:
        self._end_attempt(msg, ts, "no_answer", "AgentRingNoAnswer")

    def _on_dump(self, msg: AmiMessage, ts: float, _source: str) -> None:
        self._end_attempt(msg, ts, "dumped", "AgentDump")

    def _on_leave(self, msg: AmiMessage, ts: float, _source: str) -> None:
        v = self._visit(msg)
        if v is not None and self._step(v, "QueueCallerLeave"):
            v.left_queue = True
            if v.leave_ts is None:
                v.leave_ts = ts

    def _on_connect(self, msg: AmiMessage, ts: float, _source: str) -> None:
        v = self._visit(msg) or self._unseen_join(msg, ts)
        if v is None or not self._step(v, "AgentConnect"):
            return
        h = msg.headers
        interface = h.get("Interface", "")
        v.answer_ts, v.agent, v.agent_interface = ts, h.get("MemberName", ""), interface
        v.agent_uniqueid = h.get("DestUniqueid") or None
        v.leave_ts = None
        self._close_attempts_at_answer(v, interface, ts)
        if v.agent_uniqueid:
            self.by_agent_channel[v.agent_uniqueid] = v

    @staticmethod
    def _close_attempts_at_answer(v: Visit, interface: str, ts: float) -> None:
        for a in v.ring_attempts:
            if a.end_ts is None:
                a.end_ts, a.result = (
                    max(ts, a.start_ts),
                    ("answered" if a.interface == interface else "canceled"),
                )
        if not any(a.result == "answered" for a in v.ring_attempts):  # AgentCalled missed
            v.ring_attempts.append(RingAttempt(v.agent or "", interface, ts, ts, "answered"))

    def _on_abandon(self, msg: AmiMessage, ts: float, _source: str) -> None:
        v = self._visit(msg) or self._unseen_join(msg, ts)
        if v is not None and self._step(v, "QueueCallerAbandon"):
            v.leave_ts = ts

    def _on_hold(self, msg: AmiMessage, ts: float, _source: str) -> None:
        v = self._talking_visit(msg)
        if v is None or not self._step(v, msg.name):
            return
        open_hold = bool(v.holds) and len(v.holds[-1]) == 1
        if msg.name == "Hold":
            if open_hold:
                self.ignored["duplicate:Hold"] += 1
            else:
                v.holds.append([ts])
        elif open_hold:
            v.holds[-1].append(max(ts, v.holds[-1][0]))
        else:  # e.g. the Unhold a blind transfer emits with no Hold before it
            self.ignored["unhold-without-hold"] += 1

    def _talking_visit(self, msg: AmiMessage) -> Visit | None:
        uid = msg.headers.get("Uniqueid", "")
        v = self.by_agent_channel.get(uid)
        if v is None:
            caller = self.active.get(uid)
            v = caller if caller is not None and caller.state == "talking" else None
        return v if v is not None and v.state == "talking" else None

    def _on_transfer(self, msg: AmiMessage, ts: float, _source: str) -> None:
        h = msg.headers
        if h.get("Result") != "Success":
            return
        v = self.active.get(h.get("TransfereeUniqueid", ""))
        if v is None or v.state != "talking":
            v = (
                self.by_agent_channel.get(h.get("TransfererUniqueid") or h.get("OrigTransfererUniqueid", ""))
                or v
            )
        if v is not None and v.state != "talking":
            # the caller's join into the target queue came first and ended the talk: that visit
            # is in wrap-up now, ended this very moment
            uid = h.get("TransfereeUniqueid", "")
            done = [w for w in self.wraps.wrapping.values() if w.uniqueid == uid and w.transfer is None]
            if not done or abs((done[0].end_ts or 0.0) - ts) > 1.0:
                return
            v, v.ended_by = done[0], "transfer"
        elif v is None or not self._step(v, msg.name):
            return
        if msg.name == "BlindTransfer":
            v.transfer = {"kind": "blind", "to": f"{h.get('Extension', '')}@{h.get('Context', '')}"}
        else:
            v.transfer = {"kind": "attended", "to": transfer_target(h)}

    def _on_complete(self, msg: AmiMessage, ts: float, _source: str) -> None:
        v = self._visit(msg) or self._unseen_join(msg, ts)
        if v is None:
            return
        h = msg.headers
        if v.state == "waiting":  # its AgentConnect was lost: AgentComplete carries wait and talk time
            self.ignored["missing:AgentConnect"] += 1
            talk = parse_seconds(h.get("TalkTime", "0")) or 0.0
            v.answer_ts = max(v.enter_ts, ts - talk)
            v.agent, v.agent_interface = h.get("MemberName", ""), h.get("Interface", "")
            v.leave_ts = None
            self._close_attempts_at_answer(v, v.agent_interface, v.answer_ts)
        reason = h.get("Reason", "")
        self._complete(v, ts, reason if reason in ("caller", "agent", "transfer") else None)

    def _unseen_join(self, msg: AmiMessage, ts: float) -> Visit | None:
        """A caller whose join nobody saw (joined in a gap, or before the first connection, or a
        capture begun mid-call): AgentConnect, QueueCallerAbandon and AgentComplete carry
        HoldTime (AgentComplete also TalkTime), which give the join; time_source "holdtime",
        its ring attempts before the event unknown."""
        h = msg.headers
        uid, queue = h.get("Uniqueid", ""), h.get("Queue", "")
        if not uid or not queue or uid in self.active:
            return None  # tracked elsewhere
        talk = (parse_seconds(h.get("TalkTime", "0")) or 0.0) if msg.name == "AgentComplete" else 0.0
        enter = ts - talk - (parse_seconds(h.get("HoldTime", "0")) or 0.0)
        last_end = self.ledger.last_end(uid, queue)
        if last_end is not None and enter <= last_end + 1.0:
            return None  # an event of a visit already seen end (a stream seen twice)
        self.ignored[f"missing:QueueCallerJoin:{msg.name}"] += 1
        self.known_queues.add(queue)
        v = Visit(uid, h.get("Linkedid", uid), queue, h.get("CallerIDNum", ""), h.get("CallerIDName", ""),
                  enter, "holdtime")  # fmt: skip
        self.active[uid] = v
        return v

    def _complete(self, v: Visit, ts: float, ended_by: str | None) -> None:
        if not self._step(v, "AgentComplete"):
            return
        self.ledger.talk_ended(v.uniqueid, v.queue, v.agent_interface, ts)
        v.ended_by = "transfer" if v.transfer else ended_by
        v.end_ts = ts
        v.outcome = "answered"
        if v.holds and len(v.holds[-1]) == 1:
            v.holds[-1].append(ts)
        self.forget(v)  # the caller may go on into another queue; the agent into wrap-up
        self.wraps.start(v, ts, self.now)

    def _on_hangup(self, msg: AmiMessage, ts: float, _source: str) -> None:
        self.dialplan.hangup(msg.headers.get("Uniqueid", ""))
        v = self.active.get(msg.headers.get("Uniqueid", ""))
        if v is None:
            return
        before = v.state
        if before == "talking" and v.hangup_ts is None:
            v.hangup_ts = ts
            self.hung_up[v.uniqueid] = v
        if self._step(v, "Hangup") and v.state == "done":
            # still waiting but already out of the queue without an Abandon: a key press
            key_exit = before == "waiting" and v.left_queue
            self._close_unanswered(v, "exit_key" if key_exit else "abandoned", ts)

    def _on_varset(self, msg: AmiMessage, ts: float, source: str) -> None:
        h = msg.headers
        if h.get("Variable") != "QUEUESTATUS":
            return
        value, uid = h.get("Value", ""), h.get("Uniqueid", "")
        v = self.active.get(uid)
        if v is None:
            if value in BLOCKED_STATUSES:
                exten = h.get("Exten", "")  # the dialplan's Queue() step named it, or the exten did
                known = exten if exten in self.known_queues else "unknown"
                queue = self.dialplan.queue_of.get(uid) or known
                caller, name = h.get("CallerIDNum", ""), h.get("CallerIDName", "")
                blocked = Visit(uid, h.get("Linkedid", uid), queue, caller, name, ts, source)
                blocked.outcome, blocked.blocked_reason = "blocked", BLOCKED_STATUSES[value]
                blocked.end_ts = ts
                self._emit(blocked)
            return
        before = v.state
        if not self._step(v, "QUEUESTATUS"):
            return
        default: Outcome = "abandoned" if before == "leaving" else "exit_key"
        self._close_unanswered(v, LEAVE_STATUSES.get(value, default), ts)

    def _on_member_gone(self, msg: AmiMessage, ts: float, _source: str) -> None:
        """A pause or a logout ends the agent's wrap-up early."""
        if msg.name == "QueueMemberPause" and msg.headers.get("Paused") != "1":
            return
        interface = msg.headers.get("Interface", "")
        if msg.name == "QueueMemberRemoved":
            self.wraps.logged_out.add((interface, msg.headers.get("Queue", "")))
        self.wraps.end(interface, ts)

    def _on_member_added(self, msg: AmiMessage, ts: float, _source: str) -> None:
        self.wraps.logged_out.discard((msg.headers.get("Interface", ""), msg.headers.get("Queue", "")))

    _handlers: ClassVar[dict[str, Callable[[CallTracker, AmiMessage, float, str], None]]] = {
        "QueueCallerJoin": _on_join,
        "AgentCalled": _on_called,
        "AgentRingNoAnswer": _on_ring_no_answer,
        "AgentDump": _on_dump,
        "QueueCallerLeave": _on_leave,
        "AgentConnect": _on_connect,
        "QueueCallerAbandon": _on_abandon,
        "Hold": _on_hold,
        "Unhold": _on_hold,
        "BlindTransfer": _on_transfer,
        "AttendedTransfer": _on_transfer,
        "AgentComplete": _on_complete,
        "Hangup": _on_hangup,
        "VarSet": _on_varset,
        "QueueMemberPause": _on_member_gone,
        "QueueEntry": resync.on_queue_entry,
        "QueueMemberAdded": _on_member_added,
        "CoreShowChannel": resync.on_channel_listed,
        "CoreShowChannelsComplete": resync.on_channels_complete,
        "QueueMemberRemoved": _on_member_gone,
        "Newexten": lambda t, msg, ts, source: t.dialplan.newexten(msg.headers),
    }
