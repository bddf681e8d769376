"""The call tracker: AMI messages in, finished queue visits out. Sans-IO; the clock is the
events' own Timestamp header (the receive time where it is missing; in a stream with neither,
the durations clock of core/timeless.py).

A visit is one stay of one caller channel (its Uniqueid, the id queue_log uses) in one queue:
join -> ring attempts -> answer -> talk with hold segments -> transfer? -> end -> the
answering agent's wrap-up. A caller blind-transferred into another queue starts a new visit of
the same channel. The modules, one job each:
  core/visit.py       the visit's data and its record (the replay contract)
  core/machine.py     the state machine: the transition table and what each input does to a visit
  core/callevents.py  the AMI event handlers and the one event -> handler table
  core/unseen.py      which visit an event names; visits whose join was never seen
  core/resync.py      the handlers of the resync's lists (QueueStatus, CoreShowChannels)
  core/wraps.py       the answering agents' wrap-ups (a timer per agent)
  core/ledger.py      what is remembered of visits after they end
  core/timeless.py    the durations clock of a stream without Timestamp and receive time
  core/calls.py       this tracker: its state, the clock, the hang-up grace timer, the output"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from acdbridge.core import machine, timeless, unseen
from acdbridge.core.ami import AmiMessage
from acdbridge.core.callevents import HANDLERS
from acdbridge.core.dialplan import DialplanQueues
from acdbridge.core.ledger import Ledger
from acdbridge.core.machine import step
from acdbridge.core.values import MAX_TS, MIN_TS, RECEIVE_SKEW_S, Problems
from acdbridge.core.visit import Outcome, RingAttempt, Visit, record_of, visit_dict, visit_of
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
        problems: Problems | None = None,
    ) -> None:
        self.on_visit = on_visit
        # input problems by kind (the Pipeline's, shared): a stream without Timestamp is one
        self.problems = problems if problems is not None else Problems(on_problem)
        # the resync's vanished callers go here first (core/gap.py); True: it has taken them
        self.on_vanished: Callable[[list[Visit], float, set[str]], bool] | None = None
        # live moments for webhooks (core/webhooks.py): "call.offered" with its ring attempt at
        # AgentCalled, "call.answered" at AgentConnect (not queue_log's answers in a gap)
        self.on_live: Callable[[str, Visit, RingAttempt | None], None] | None = None
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
        # the stream has had a Timestamp; the message being handled has neither a Timestamp nor a
        # receive time, in a stream that never had one (its time is the durations clock)
        self.stamped = False
        self.timeless = False
        self.ledger = Ledger()  # recently finished visits (bounded)
        self.dialplan = DialplanQueues()
        self.alive_listed: set[str] | None = None  # channels listed by a CoreShowChannels resync
        self.moved: list[Visit] = []  # visits a resync found their caller gone on from (core/resync.py)
        # an agent's last answered call and recent calls' queues: dispositions and survey scores
        # arrive after the talk (core/legs.py)
        self.last_call, self.recent_queue = self.ledger.last_call, self.ledger.recent_queue

    # -- input ---------------------------------------------------------------------------------
    def feed(self, msg: AmiMessage, received_at: float = 0.0) -> None:
        ts, source = self._time_of(msg, received_at)
        if msg.kind == "event":
            self.last_event_ts = max(self.last_event_ts, ts)
        self.advance(ts)
        if msg.kind == "response":
            if msg.headers.get("Category-000000") is not None:
                self.known_queues.update(self.wraps.read_getconfig(msg.headers))
            return
        handler = HANDLERS.get(msg.name)
        if handler is not None:
            handler(self, msg, ts, source)

    def _time_of(self, msg: AmiMessage, received_at: float) -> tuple[float, str]:
        """The message's time and time_source: its Timestamp, else its receive time, else the
        clock so far; an event of a stream that never had either, the durations clock."""
        ts, source = _ts(msg, received_at)
        self.timeless = False
        if source == "event" or "Timestamp" in msg.headers:  # a bad one too: the stream has them
            self.stamped = True
        elif received_at <= 0 and msg.kind == "event":
            # a reply to an action (QueueStatus, CoreShowChannels) is never stamped by Asterisk
            if self.stamped or "ActionID" in msg.headers:
                return self.now, source
            self.timeless = True
            self.problems.count("timestamp_missing", timeless.PROBLEM)
            return timeless.time_of(self, msg), "durations"
        return ts, source

    def advance(self, ts: float) -> None:
        """Move the clock on without an event (the daemon's tick in a quiet spell), so wrap-ups
        and late AgentCompletes still resolve when no further event comes."""
        if ts > self.now:
            self.now = ts
            if not self.timeless:  # no grace on the durations clock: it leaps (core/timeless.py)
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
        """The agent ended after-call work (a disposition, a pause, a logout). On the durations
        clock when is not known: no wrap figure rather than a wrong one."""
        self.wraps.end(interface, ts, known=not self.timeless)

    def offered(self, interface: str, queue: str, ts: float) -> None:
        """An agent is offered a call (AgentCalled): his wrap-up of the last one is over."""
        if self.timeless:
            timeless.offered(self, interface, queue)
        else:
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
        self.now = max(self.now, float(snap["now"]))
        self.last_event_ts = max(self.last_event_ts, float(snap.get("last_event_ts", snap["now"])))
        self.known_queues.update(snap["known_queues"])
        self.ledger.restore(snap)
        for d in snap["active"]:
            v = visit_of(d)
            self.active[v.uniqueid] = v
            if v.state == "talking" and v.agent_uniqueid:
                self.by_agent_channel[v.agent_uniqueid] = v
            if v.hangup_ts is not None:
                self.hung_up[v.uniqueid] = v
        self.wraps.restore(snap)

    # -- output --------------------------------------------------------------------------------
    def emit(self, visit: Visit) -> None:
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

    def wrapups(self) -> dict[str, float]:
        """Each known queue's wrapuptime, where it is known."""
        return {q: w for q in self.known_queues if (w := self.wraps.wrapup_for(q)) is not None}

    # -- a visit's end (the handlers', core/callevents.py, and the gap's) -----------------------
    def forget(self, v: Visit) -> None:
        """Stop tracking a visit's call: its talk ended, or it is settled elsewhere (the gap's
        backfill reports it)."""
        if self.active.get(v.uniqueid) is v:
            del self.active[v.uniqueid]
        self.hung_up.pop(v.uniqueid, None)
        if v.agent_uniqueid:
            self.by_agent_channel.pop(v.agent_uniqueid, None)

    def answered(self, v: Visit, msg: AmiMessage) -> None:
        """AgentConnect has answered v: its agent channel's Hold/Unhold now find it."""
        if self.timeless:
            timeless.answered(v, msg)
        if v.agent_uniqueid:
            self.by_agent_channel[v.agent_uniqueid] = v
        if self.on_live is not None:
            self.on_live("call.answered", v, None)

    def answered_in_gap(self, v: Visit, ts: float, agent: str, agent_uniqueid: str) -> None:
        """queue_log's CONNECT, in a gap, of a caller tracked waiting: the answer AMI never told
        (the interface from the agent's ring attempt, when the tracker saw one)."""
        if not step(v, "AgentConnect", self.ignored):
            return
        interface = next((a.interface for a in v.ring_attempts if a.agent == agent), "")
        machine.answer(v, ts, agent, interface or None, agent_uniqueid or None)
        if v.agent_uniqueid:
            self.by_agent_channel[v.agent_uniqueid] = v

    def complete(self, v: Visit, ts: float, ended_by: str | None) -> None:
        """The talk ended at ts: the agent's wrap-up begins (the record waits for its end)."""
        if not step(v, "AgentComplete", self.ignored):
            return
        self.ledger.talk_ended(v.uniqueid, v.queue, v.agent_interface, ts)
        machine.talk_ended(v, ts, ended_by)
        self.forget(v)  # the caller may go on into another queue; the agent into wrap-up
        self.wraps.start(v, ts, self.now)

    def complete_target(self, msg: AmiMessage) -> Visit | None:
        """The visit of an AgentComplete that names no caller: on the durations clock, the talk
        of its agent in its queue (its TalkTime is the only measure of that talk)."""
        if not self.timeless or msg.headers.get("Uniqueid"):
            return None
        return unseen.talking_with(self, msg.headers.get("Interface", ""), msg.headers.get("Queue", ""))

    def close_unanswered(self, v: Visit, outcome: Outcome, ts: float) -> None:
        machine.left_unanswered(v, outcome, ts)
        self.emit(v)

    def finish_vanished(self, v: Visit, ts: float) -> None:
        """A caller gone while nobody listened, with no record of how: ended at `ts`."""
        if v.state == "talking":
            self.complete(v, ts, None)
        else:
            v.state = "done"
            self.close_unanswered(v, "abandoned", ts)

    def unseen_source(self, source: str) -> str:
        """The time_source of a visit whose join was never seen."""
        return "durations" if source == "durations" else "holdtime"

    def _expire_hangups(self, before: float) -> None:
        for uid, v in list(self.hung_up.items()):
            if v.time_source == "durations" and before < math.inf:
                continue  # the end of the stream ends it, or its AgentComplete
            if v.hangup_ts is not None and v.hangup_ts <= before:
                del self.hung_up[uid]
                if v.state == "talking":
                    self.ignored["missing:AgentComplete"] += 1
                    self.complete(v, v.hangup_ts, "caller")

    def _wrap_done(self, v: Visit) -> None:
        step(v, "WrapEnd", self.ignored)
        self.emit(v)
