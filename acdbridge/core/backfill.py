"""Visits that ended while nobody listened, rebuilt from Asterisk's queue_log. Sans-IO: queue_log
lines in (strings, as read from the file), visit records out (the replay contract of
docs/daemon.md, with `time_source: "queue_log"`).

After a crash or an AMI outage the journal has nothing for the gap, and Asterisk keeps no AMI
backlog; queue_log is the only record. It has whole seconds, no hold, no agent interface and no
blocked callers, so a rebuilt record leaves null what it cannot know rather than guessing
(docs/daemon.md, "After a gap"). Line formats are Asterisk 22's apps/app_queue.c:

    time|callid|queue|agent|EVENT|data1|data2|...
    ENTERQUEUE url|caller number|position[|caller name]   CONNECT wait|agent channel|ring s
    ABANDON, EXITWITHTIMEOUT, EXITEMPTY, WITHDRAW pos|orig pos|wait   EXITWITHKEY key|pos|orig|wait
    COMPLETEAGENT, COMPLETECALLER wait|talk|orig pos   RINGNOANSWER, RINGCANCELED ring ms
    BLINDTRANSFER exten|context|wait|talk|orig   ATTENDEDTRANSFER BRIDGE|id (APP|app, LINK|a|b)|wait|talk|orig

A bad line is skipped and counted (the core's rules, core/values.py), never raised."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.qlines import PROBLEM_KIND, QueueLogLine, parse_line
from acdbridge.core.values import Problems, is_ascii_digits

Record = dict[str, Any]
VisitKey = tuple[str, str]  # (caller uniqueid, queue): a caller can visit two queues
Known = tuple[str, str] | tuple[str, str, float]  # with enter_ts: the store's key
MAX_OPEN = 100_000  # visits begun and not yet ended (a 1,000-seat centre has ~1,000 at once)
# queue_log floors times to the second, and enter_ts rebuilt from wait figures can be a second
# off when a line was written at a second's edge: a known visit matches within this.
KNOWN_ENTER_SLACK_S = 2.0
# A ring that ends an agent's wrap-up is logged when it ends: look this far past the wrap's due
# time for one that began before it (a queue's ring timeout is far shorter).
MAX_RING_S = 600.0
WRAP_ENDS = ("PAUSE", "PAUSEALL", "REMOVEMEMBER")  # as the tracker's QueueMemberPause/Removed

_UNANSWERED = {  # event -> (outcome as the live tracker names it, index of the wait field)
    "ABANDON": ("abandoned", 2),
    "WITHDRAW": ("abandoned", 2),  # the live tracker sees an Abandon, then a non-leave QUEUESTATUS
    "EXITWITHTIMEOUT": ("timeout", 2),
    "EXITEMPTY": ("exit_empty", 2),
    "EXITWITHKEY": ("exit_key", 3),
}
_MIN_FIELDS = {
    "ENTERQUEUE": 2, "CONNECT": 1, "RINGNOANSWER": 1, "RINGCANCELED": 1, "AGENTDUMP": 0,
    "COMPLETEAGENT": 2, "COMPLETECALLER": 2, "BLINDTRANSFER": 4, "ATTENDEDTRANSFER": 4,
    "ABANDON": 3, "WITHDRAW": 3, "EXITWITHTIMEOUT": 3, "EXITEMPTY": 3, "EXITWITHKEY": 4,
}  # fmt: skip


@dataclass
class _Attempt:
    agent: str
    start_ts: float | None
    end_ts: float | None
    result: str | None  # None: canceled by the caller; "dumped" or "canceled" once the visit ends


@dataclass
class _Visit:
    uniqueid: str
    queue: str
    entered: bool = False  # its ENTERQUEUE was read: caller known, every ring attempt seen
    enter_ts: float | None = None
    caller: str | None = None
    caller_name: str | None = None
    attempts: list[_Attempt] = field(default_factory=list)
    agent: str | None = None


def _seconds(line: QueueLogLine, index: int, problems: Problems, scale: float = 1.0) -> float | None:
    """A whole non-negative number field (app_queue writes %ld / %d), divided by scale."""
    raw = line.data[index] if -len(line.data) <= index < len(line.data) else ""
    if not is_ascii_digits(raw) or len(raw) > 12:
        problems.count("not_ascii_digits", f"queue_log {line.event} field {index} {raw[:40]!r}")
        return None
    return int(raw) / scale


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def _key_known(key: VisitKey, enter_ts: float, known: dict[VisitKey, list[float] | None]) -> bool:
    if key not in known:
        return False
    enters = known[key]
    return enters is None or any(abs(e - enter_ts) <= KNOWN_ENTER_SLACK_S for e in enters)


def _index_known(known_ids: Iterable[Known]) -> dict[VisitKey, list[float] | None]:
    """(uniqueid, queue) -> the known visits' enter times, None meaning any visit of that pair."""
    out: dict[VisitKey, list[float] | None] = {}
    for k in known_ids:
        key = (k[0], k[1])
        if len(k) == 2:
            out[key] = None
        else:
            enters = out.setdefault(key, [])
            if enters is not None:
                enters.append(float(k[-1]))
    return out


class _Builder:
    """Reads lines in file order; keeps the visits begun and not yet ended."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.open: dict[VisitKey, _Visit] = {}
        self.done: list[tuple[Record, int]] = []  # with the line number of its end
        self.n = 0  # lines read
        self.last_ts = 0.0
        # member name -> (line number, time, line time) of what ends its wrap-up: a pause, a
        # logout, a ring's start (queue_log has no interface: the member name stands for it)
        self.marks: dict[str, list[tuple[int, float, float]]] = {}

    def visit(self, line: QueueLogLine) -> _Visit:
        key = (line.callid, line.queue)
        v = self.open.get(key)
        if v is None:  # begun before the lines we have: what its ENTERQUEUE said is lost
            v = self.open[key] = _Visit(line.callid, line.queue)
            self._bound()
        return v

    def _bound(self) -> None:
        # a queue_log cut off mid-call (or a forged one) must not grow this forever
        while len(self.open) > MAX_OPEN:
            del self.open[next(iter(self.open))]
            self.problems.count("evicted_caller", "queue_log visits never ended")

    def feed(self, line: QueueLogLine) -> None:
        ev = line.event
        self.n += 1
        self.last_ts = max(self.last_ts, line.ts)
        if ev in WRAP_ENDS and line.agent:
            self._mark(line, line.ts)
        if ev not in _MIN_FIELDS or line.callid in ("NONE", "MANAGER") or not line.queue:
            return  # member, pause and queue lines: not a visit
        if len(line.data) < _MIN_FIELDS[ev]:
            self.problems.count(PROBLEM_KIND, f"{ev} with {len(line.data)} fields")
            return
        if ev == "ENTERQUEUE":
            self._enter(line)
        elif ev in ("CONNECT", "RINGNOANSWER", "RINGCANCELED", "AGENTDUMP"):
            self._ring(line)
        elif ev in _UNANSWERED:
            self._unanswered(line)
        else:
            self._answered(line)

    def _mark(self, line: QueueLogLine, ts: float) -> None:
        self.marks.setdefault(line.agent, []).append((self.n, ts, line.ts))

    def wrap_s(self, r: Record, end_line: int, wrapup_s: Mapping[str, float]) -> float | None:
        """As the tracker: from the end until the queue's wrapuptime runs out, or earlier when the
        agent is offered a call, pauses or logs out. None when the wrapuptime is unknown, or when
        it runs past the last line read with no such end seen (one may still come)."""
        wrap = wrapup_s.get(r["queue"])
        if wrap is None or r["outcome"] != "answered" or not r["agent"]:
            return None
        end, marks = float(r["end_ts"]), self.marks.get(r["agent"], [])
        due = end + max(0.0, wrap)
        stop = due
        # walk on from the end line by index: a slice would copy the whole tail for every visit
        for i in range(bisect_right(marks, (end_line, float("inf"), 0.0)), len(marks)):
            _, ts, line_ts = marks[i]
            if line_ts > due + MAX_RING_S:
                break
            if end <= ts < stop:
                stop = ts
        if stop == due and due > self.last_ts:
            return None
        return round(stop - end, 6)

    def _enter(self, line: QueueLogLine) -> None:
        key = (line.callid, line.queue)
        # an ENTERQUEUE for a visit still open: its end line is missing; the new visit replaces it
        if key in self.open:
            self.problems.count(PROBLEM_KIND, "ENTERQUEUE for a visit that never ended")
            del self.open[key]
        v = self.visit(line)
        v.entered, v.enter_ts, v.caller = True, line.ts, line.data[1]
        # the name is logged only with queues.conf log_caller_id_name (newer Asterisk)
        v.caller_name = line.data[3] if len(line.data) > 3 else None

    def _ring(self, line: QueueLogLine) -> None:
        v = self.visit(line)
        if line.event == "AGENTDUMP":  # the agent hung up as the call was being connected
            v.attempts.append(_Attempt(line.agent, None, line.ts, "dumped"))
            return
        if line.event == "CONNECT":
            v.agent = line.agent
            ring = _seconds(line, 2, self.problems) if len(line.data) > 2 else None
            start = line.ts - ring if ring is not None else None
            if start is not None:
                self._mark(line, start)
            v.attempts.append(_Attempt(line.agent, start, line.ts, "answered"))
            return
        ms = _seconds(line, 0, self.problems, 1000.0)
        if ms is not None:
            result = "no_answer" if line.event == "RINGNOANSWER" else None
            self._mark(line, line.ts - ms)
            v.attempts.append(_Attempt(line.agent, line.ts - ms, line.ts, result))

    def _unanswered(self, line: QueueLogLine) -> None:
        outcome, index = _UNANSWERED[line.event]
        wait = _seconds(line, index, self.problems)
        if wait is None:
            return
        v = self.open.pop((line.callid, line.queue), None) or _Visit(line.callid, line.queue)
        enter = v.enter_ts if v.enter_ts is not None else line.ts - wait
        # as the live tracker closes a ring attempt still open when the caller leaves
        for a in v.attempts:
            if a.result is None:
                a.result = "dumped" if outcome == "abandoned" else "canceled"
        self.done.append((_record(v, outcome, enter, None, line.ts, wait, 0.0, None, None, None), self.n))

    def _answered(self, line: QueueLogLine) -> None:
        ev, d = line.event, line.data
        wait, talk = _seconds(line, -3 if "TRANSFER" in ev else 0, self.problems), None
        if wait is not None:
            talk = _seconds(line, -2 if "TRANSFER" in ev else 1, self.problems)
        if wait is None or talk is None:
            return
        v = self.open.pop((line.callid, line.queue), None) or _Visit(line.callid, line.queue)
        answer = line.ts - talk
        enter = v.enter_ts if v.enter_ts is not None else answer - wait
        transfer: dict[str, str | None] | None = None
        if ev == "BLINDTRANSFER":
            transfer = {"kind": "blind", "to": f"{d[0]}@{d[1]}"}
        elif ev == "ATTENDEDTRANSFER":  # queue_log names the bridge, not the target's exten@context
            transfer = {"kind": "attended", "to": None}
        ended_by = "transfer" if transfer else ("caller" if ev == "COMPLETECALLER" else "agent")
        for a in v.attempts:
            if a.result is None:
                a.result = "canceled"
        v.agent = line.agent or v.agent
        if not any(a.result == "answered" for a in v.attempts):  # its CONNECT was before the lines
            v.attempts.append(_Attempt(v.agent or "", None, answer, "answered"))
        record = _record(v, "answered", enter, answer, line.ts, wait, talk, transfer, ended_by, v.agent)
        self.done.append((record, self.n))


def _record(
    v: _Visit,
    outcome: str,
    enter: float,
    answer: float | None,
    end: float,
    wait: float,
    talk: float,
    transfer: dict[str, str | None] | None,
    ended_by: str | None,
    agent: str | None,
) -> Record:
    """The replay contract's keys in its order (core/visit.py record_of), null where unknown."""
    spans = [(a.start_ts, a.end_ts) for a in v.attempts if a.start_ts is not None and a.end_ts is not None]
    # every attempt is in queue_log only if its ENTERQUEUE is in the lines we read
    ring_s = round(_union_length(spans), 6) if v.entered else None
    return {
        "uniqueid": v.uniqueid,
        "linkedid": None,  # not in queue_log (a transfer's consult leg has another call's)
        "queue": v.queue,
        "caller": v.caller,
        "caller_name": v.caller_name,
        "outcome": outcome,
        "blocked_reason": None,  # a blocked caller writes no queue_log line at all
        "enter_ts": enter,
        "answer_ts": answer,
        "end_ts": end,
        "wait_s": wait,
        "ring_s": ring_s,
        "talk_s": talk,  # includes any hold: queue_log cannot tell them apart
        "hold_s": None,
        "hold_count": None,
        "wrap_s": None,  # the wrap-up's early end (next offer, pause, disposition) is not in queue_log
        "agent": agent,
        "agent_interface": None,  # queue_log names the member, not its interface
        "ring_attempts": [
            {
                "agent": a.agent,
                "interface": None,
                "start_ts": a.start_ts,
                "end_ts": a.end_ts,
                "result": a.result,
            }
            for a in v.attempts
        ],
        "transfer": transfer,
        "ended_by": ended_by,
        "time_source": "queue_log",
    }


def reconstruct(
    lines: Iterable[str],
    since: float,
    until: float,
    known_ids: Iterable[Known] = (),
    wrapup_s: Mapping[str, float] | None = None,
    problems: Problems | None = None,
) -> list[Record]:
    """The visits whose queue_log end line falls in the gap [since, until), in end order, minus
    those in `known_ids` ((uniqueid, queue), or (uniqueid, queue, enter_ts) as the store keys
    visits: then only a visit entered within KNOWN_ENTER_SLACK_S of it is left out).

    `lines` should start qlines.MARGIN_S before `since`, so that a visit begun before the gap has its
    ENTERQUEUE (caller, ring attempts); without it the visit is still rebuilt from its end line,
    with caller and ring_s null. They should run to the end of the file as it is now, so that a
    wrap-up that began in the gap can be seen to end. `wrapup_s` is each queue's wrapuptime as
    the tracker has it (config, or GetConfig); without it wrap_s is null. queue_log times are
    whole seconds (floored), so the gap is taken from the second `since` falls in: a visit that
    ended in that second before `since` is also returned, and `known_ids` must hold it if the
    journal produced it. Bad lines are counted in `problems` (a Problems of its own if not given)."""
    problems = problems if problems is not None else Problems()
    builder = _Builder(problems)
    for text in lines:
        line = parse_line(text, problems)
        if line is not None:
            builder.feed(line)
    known = _index_known(known_ids)
    lo = float(int(since))
    out: list[Record] = []
    for r, end_line in builder.done:
        if lo <= r["end_ts"] < until and not _key_known((r["uniqueid"], r["queue"]), r["enter_ts"], known):
            r["wrap_s"] = builder.wrap_s(r, end_line, wrapup_s or {})
            out.append(r)
    return out


def rings_in_gap(
    lines: Iterable[str], since: float, problems: Problems
) -> dict[VisitKey, list[tuple[str, float, float]]]:
    """The ring-no-answers from `since`'s second on of the visits queue_log has not seen end: a
    caller who waited across the gap rang agents in it that AMI never told (agent, start, end).
    queue_log's whole seconds: a ring that ended at 502.4, just after a cut at 502.2, is logged
    at 502 (seen on the lab); one the tracker did see end in that second is not added twice
    (Pipeline._add_ring)."""
    lo = float(int(since))
    builder = _Builder(problems)
    for text in lines:
        line = parse_line(text, problems)
        if line is not None:
            builder.feed(line)
    out: dict[VisitKey, list[tuple[str, float, float]]] = {}
    for key, v in builder.open.items():
        for a in v.attempts:
            if a.result == "no_answer" and a.start_ts is not None and a.end_ts is not None and a.end_ts >= lo:
                out.setdefault(key, []).append((a.agent, a.start_ts, a.end_ts))
    return out
