"""One path from AMI bytes to records, shared by the live daemon and `acdbridge replay`."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from acdbridge.core.agents import AgentTracker
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.backfill import KNOWN_ENTER_SLACK_S, reconstruct, rings_in_gap
from acdbridge.core.calls import CallTracker
from acdbridge.core.desk import CallerCards
from acdbridge.core.gap import GapBook, answers_in_gap, joins_in_gap, merge
from acdbridge.core.legs import LegTracker
from acdbridge.core.limits import Janitor, Limits
from acdbridge.core.routing import MemberBook
from acdbridge.core.tallies import Tallies
from acdbridge.core.values import MAX_TS, MIN_TS, Problems, checked
from acdbridge.core.visit import RingAttempt, Visit
from acdbridge.core.webhooks import live_record

Record = dict[str, Any]
DEFAULT_SHORT_ABANDON_S = 5.0
# a checkpoint keeps the queues of this many recent calls, not all the tracker keeps (50,000): a
# disposition or survey score comes minutes after its call, and each checkpoint (every few
# seconds) would write and fsync 1.4 MB of them
RECENT_QUEUES_KEPT = 5_000


def recent(d: dict[str, str], n: int) -> dict[str, str]:
    """The newest n entries of an insertion-ordered dict, oldest first."""
    if len(d) <= n:
        return d
    newest = list(itertools.islice(reversed(d.items()), n))
    return dict(reversed(newest))


class Pipeline:
    def __init__(
        self,
        wrapup_s: dict[str, float] | None = None,
        on_visit: Callable[[Record], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_agent_state: Callable[[Record], None] | None = None,
        short_abandon_s: dict[str, float] | None = None,
        on_leg: Callable[[Record], None] | None = None,
        on_feedback: Callable[[Record], None] | None = None,
        limits: Limits | None = None,
        on_call_event: Callable[[Record], None] | None = None,
    ) -> None:
        # bad input and state evictions by short kind (a small fixed set, core/values.py
        # PROBLEM_KINDS: bounded metric labels); the first of each kind goes to on_problem
        self.problems = Problems(on_problem)
        self.problem_counts: dict[str, int] = self.problems.counts
        self.tallies = Tallies()
        self.short_abandon_s = short_abandon_s or {}
        self.parser = self.new_parser()
        self.agents = AgentTracker(on_state=on_agent_state)
        self.calls = CallTracker(
            wrapup_s, on_visit=self._visit_done, on_problem=on_problem, on_wrap_end=self.agents.wrap_ended,
            problems=self.problems,
        )  # fmt: skip
        self._on_visit = on_visit
        self._on_leg, self._on_feedback = on_leg, on_feedback
        self.members = MemberBook()
        self.gap = GapBook()
        self.calls.on_vanished = self.gap.resynced
        self.janitor = Janitor(limits or Limits(), self.problems, self.calls, self.agents, self.members)
        self.legs = LegTracker(self._leg_done, self._feedback, self.calls.call_of_agent, self.calls.queue_of)
        self.cards = CallerCards()  # what the greeting learnt about each caller: the desk's screen pop
        if on_call_event is not None:  # webhooks want call.offered / call.answered (core/webhooks.py)
            cards = self.cards.cards
            self.calls.on_live = lambda event, v, ring: on_call_event(
                live_record(event, v, ring, cards.get(v.uniqueid))
            )
        # kept only without callbacks (a replay)
        self.ivr_legs: list[Record] = []
        self.feedback: list[Record] = []

    def _leg_done(self, record: Record) -> None:
        self.tallies.add_ivr_leg(record)
        (self._on_leg or self.ivr_legs.append)(record)

    def _feedback(self, record: Record) -> None:
        if record["kind"] == "disposition":  # a disposition ends the agent's after-call work
            self.calls.end_wrap(record["agent"], record["ts"])
        self.tallies.add_feedback(record)
        (self._on_feedback or self.feedback.append)(record)

    def _visit_done(self, record: Record) -> None:
        # an agent rung for this caller but not the one who answered stops ringing now
        for attempt in record["ring_attempts"]:
            if attempt["result"] in ("canceled", "dumped"):
                self.agents.ring_canceled(attempt["interface"], attempt["end_ts"])
        self.tally(record)
        if self._on_visit is not None:
            self._on_visit(record)

    def tally(self, record: Record) -> None:
        """Count a finished visit in the Prometheus tallies (also a stored one, at start-up)."""
        self.tallies.add_visit(record, self.short_abandon_s.get(record["queue"], DEFAULT_SHORT_ABANDON_S))

    def new_connection(self) -> None:
        """A new AMI connection's bytes follow: parse them afresh (its banner, fed, does the rest)."""
        self.parser = self.new_parser()

    def new_parser(self) -> FrameParser:
        """A parser whose bad frames are counted here (the live AMI adapter may use one too)."""
        return FrameParser(count=self.problems.count)

    def feed_bytes(self, data: bytes, received_at: float = 0.0) -> list[AmiMessage]:
        messages = self.parser.feed(data)
        for msg in messages:
            self.feed(msg, received_at)
        return messages

    def feed(self, msg: AmiMessage, received_at: float = 0.0) -> None:
        """One message; received_at is when its bytes arrived (0: unknown, as in a replay)."""
        if not MIN_TS < received_at <= MAX_TS:  # a broken host clock (or NaN): as if unknown
            if received_at != 0.0:
                self.problems.count("timestamp_out_of_range", f"receive time {received_at!r}")
            received_at = 0.0
        clean = checked(msg, received_at, self.problems)
        if clean is not msg and "Timestamp" in msg.headers and "Timestamp" not in clean.headers:
            # a bad Timestamp: the receive time stands in, or in a replay the clock so far (a
            # stream with Timestamps, even bad ones, is not one without: core/timeless.py)
            received_at = received_at if received_at > 0 else self.calls.now
            self.calls.stamped = True
        msg = clean
        if msg.kind == "banner":  # a new AMI connection (live or replayed): maybe after a gap,
            self.gap.connected(self.calls.last_event_ts)
            self.members.new_connection()  # and the member book is stale until its QueueStatus
        self.calls.feed(msg, received_at)
        # the event's Timestamp (the tracker's clock has it), else its receive time; with neither,
        # the clock so far (in a stream that never had a Timestamp, core/timeless.py's)
        ts = received_at if received_at > 0 and "Timestamp" not in msg.headers else self.calls.now
        self.agents.feed(msg, ts)
        self.legs.feed(msg, ts)
        self.cards.feed(msg)
        if msg.kind == "event":
            self.members.feed(msg.name, msg.headers)
        self.janitor.after(self.calls.now)

    def snapshot(self) -> Record:
        """The trackers' state as JSON-able data (a checkpoint, the orderly stop's saved state):
        calls, agents and IVR legs in progress; the queues of recent calls (a disposition or a
        survey score comes after the talk); the member book, so routing and the membership sync
        need not wait for the next resync after a crash."""
        m = self.members
        return {
            "version": 1,
            "calls": self.calls.snapshot(),
            "agents": self.agents.snapshot(),
            "legs": self.legs.snapshot(),
            "gap": self.gap.snapshot(),
            "recent_queue": recent(self.calls.recent_queue, RECENT_QUEUES_KEPT),
            "members": {
                "penalty": [[q, i, n] for (q, i), n in m.penalty.items()],
                "paused": [[q, i, b] for (q, i), b in m.paused.items()],
                "synced": m.synced,
                "changes": m.changes,
            },
        }

    def restore(self, snap: Record) -> None:
        """A snapshot into this (fresh) pipeline; one from an older version lacks the last parts."""
        if snap.get("version") != 1:
            raise ValueError(f"unknown tracker snapshot version {snap.get('version')!r}")
        self.calls.restore(snap["calls"])
        self.agents.restore(snap["agents"])
        self.legs.restore(snap.get("legs", {}))
        self.gap.restore(snap.get("gap"))
        self.calls.recent_queue.update({str(u): str(q) for u, q in snap.get("recent_queue", {}).items()})
        if (book := snap.get("members")) is not None:
            m = self.members
            m.penalty.update({(str(q), str(i)): int(n) for q, i, n in book["penalty"]})
            m.paused.update({(str(q), str(i)): bool(b) for q, i, b in book["paused"]})
            m.synced = bool(book["synced"])
            m.changes = max(m.changes, int(book["changes"]))

    def backfill(self, lines: list[str] | None) -> int:
        """The queue_log lines of the gap a resync closed (core/backfill.py excerpt; None: no
        queue_log to read): its visits out as queue_log has them, once. Returns how many."""
        gap = self.gap.take()
        if gap is None or gap.until is None:
            return 0
        calls = self.calls
        rebuilt = [] if lines is None else reconstruct(
            lines, gap.since, gap.until, calls.known_keys(), calls.wrapups(), self.problems
        )  # fmt: skip
        ended = self._ended_in_gap(rebuilt)
        records, unmatched = merge([*gap.vanished, *ended], rebuilt)
        for v in unmatched:
            calls.finish_vanished(v, gap.until)
        for r in records:
            calls.emit_record((r["uniqueid"], r["queue"], r["enter_ts"]), r)
        answers = answers_in_gap(lines or [], gap.since)
        self._joined_in_gap(lines or [], answers, gap.alive)
        self._add_gap_rings(lines or [], gap.since)
        for (uid, queue), (ts, agent, agent_uid) in answers.items():
            waiting = calls.active.get(uid)
            if waiting is not None and waiting.queue == queue and waiting.state in ("waiting", "leaving"):
                calls.answered_in_gap(waiting, ts, agent, agent_uid)
        return len(records)

    def _joined_in_gap(self, lines: list[str], answers: dict[tuple[str, str], Any], alive: set[str]) -> None:
        """A caller who joined and was answered in the gap and is still in the call at the resync
        was never named by AMI: tracked from queue_log's ENTERQUEUE (time_source "queue_log"), so
        that the answer below puts it in talk and its hang-up ends it (an AgentComplete after the
        caller's channel is gone names no caller)."""
        joins = joins_in_gap(lines)
        calls = self.calls
        for uid, queue in answers:
            join = joins.get((uid, queue))
            if join is None or uid in calls.active or uid not in alive:
                continue
            last_end = calls.ledger.last_end(uid, queue)
            if last_end is not None and join[0] <= last_end + 1.0:
                continue  # a visit already seen to end
            calls.active[uid] = Visit(uid, uid, queue, join[1], "", join[0], "queue_log")
            calls.known_queues.add(queue)

    def _ended_in_gap(self, rebuilt: list[Record]) -> list[Visit]:
        """Visits still tracked whose caller was alive at the resync but which queue_log ended in
        the gap (the caller went on to a survey, or into another queue): no longer tracked."""
        ended = []
        for r in rebuilt:
            v = self.calls.active.get(r["uniqueid"])
            same = v is not None and v.queue == r["queue"]
            if v is not None and same and abs(v.enter_ts - r["enter_ts"]) <= KNOWN_ENTER_SLACK_S:
                self.calls.forget(v)
                ended.append(v)
        return ended

    def _add_gap_rings(self, lines: list[str], since: float) -> None:
        """A caller still waiting (or in talk) after the gap gets the ring-no-answers queue_log
        logged for it inside the gap; the interface is unknown there (queue_log names members)."""
        for (uid, queue), rings in rings_in_gap(lines, since, self.problems).items():
            v = self.calls.active.get(uid)
            if v is None or v.queue != queue:
                continue
            for agent, start, end in rings:
                self._add_ring(v.ring_attempts, agent, start, end)
            v.ring_attempts.sort(key=lambda a: a.start_ts)

    @staticmethod
    def _add_ring(attempts: list[RingAttempt], agent: str, start: float, end: float) -> None:
        """A ring-no-answer from queue_log (whole seconds): one the tracker saw end is not added
        again; one it saw begin (still open at the cut) is ended with it."""
        for a in attempts:
            if a.agent != agent:
                continue
            if a.end_ts is None and a.start_ts <= end + 1.0:
                a.end_ts, a.result = max(a.start_ts, end), "no_answer"
                return
            if a.result == "no_answer" and a.end_ts is not None and abs(a.end_ts - end) <= 1.0:
                return
        attempts.append(RingAttempt(agent, "", start, end, "no_answer"))

    def advance(self, ts: float) -> None:
        """The clock moves on with no event (see CallTracker.advance)."""
        self.calls.advance(ts)

    def finish(self) -> None:
        self.backfill(None)  # a gap whose lines never came: its callers ended at the resync
        self.calls.finish()
        self.agents.finish(self.calls.now)
