"""Asterisk's queue_log turned into expected visits: the ground truth tracker records are
checked against. queue_log keeps whole seconds, so times compare within 1 s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acdbridge.lab.queuelog import QueueLogEntry

OUTCOMES = {
    "ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "exit_empty",
    "EXITWITHKEY": "exit_key", "COMPLETEAGENT": "answered", "COMPLETECALLER": "answered",
    "BLINDTRANSFER": "answered", "ATTENDEDTRANSFER": "answered",
}  # fmt: skip


@dataclass
class TruthVisit:
    callid: str
    queue: str
    outcome: str | None = None
    wait_s: float | None = None
    talk_s: float | None = None  # queue_log's call time: talk including hold
    agent: str | None = None
    ring_no_answer: int = 0
    transfer: str | None = None
    events: list[str] = field(default_factory=list)


def truth_visits(entries: list[QueueLogEntry]) -> list[TruthVisit]:
    open_: dict[tuple[str, str], TruthVisit] = {}
    done: list[TruthVisit] = []
    for e in entries:
        key = (e.callid, e.queue)
        if e.event == "ENTERQUEUE":
            open_[key] = TruthVisit(e.callid, e.queue)
        v = open_.get(key)
        if v is None:
            continue
        v.events.append(e.event)
        if e.event == "RINGNOANSWER":
            v.ring_no_answer += 1
        elif e.event == "CONNECT":
            v.wait_s, v.agent = float(e.data[0]), e.agent
        elif e.event in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
            v.wait_s = float(e.data[2])
        elif e.event == "EXITWITHKEY":  # key|position|original position|wait
            v.wait_s = float(e.data[3])
        elif e.event in ("COMPLETEAGENT", "COMPLETECALLER"):
            v.talk_s = float(e.data[1])
        elif e.event == "BLINDTRANSFER":
            v.talk_s, v.transfer = float(e.data[3]), "blind"
        elif e.event == "ATTENDEDTRANSFER":
            v.talk_s, v.transfer = float(e.data[3]), "attended"
        if e.event in OUTCOMES:
            v.outcome = OUTCOMES[e.event]
            done.append(open_.pop(key))
    return done


def compare(truth: list[TruthVisit], records: list[dict[str, Any]]) -> list[str]:
    """Every difference between queue_log's visits and the tracker's, as readable lines."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["outcome"] != "blocked":
            by_key.setdefault((r["uniqueid"], r["queue"]), []).append(r)
    for t in truth:
        candidates = by_key.get((t.callid, t.queue), [])
        if not candidates:
            problems.append(f"{t.callid} {t.queue}: in queue_log ({t.events}) but not tracked")
            continue
        r = candidates.pop(0)
        where = f"{t.callid} {t.queue}"
        if r["outcome"] != t.outcome:
            problems.append(f"{where}: outcome {r['outcome']} vs queue_log {t.outcome}")
        if t.wait_s is not None and abs(r["wait_s"] - t.wait_s) > 1.0:
            problems.append(f"{where}: wait {r['wait_s']} vs queue_log {t.wait_s}")
        hold = r["hold_s"] or 0.0  # null in a visit rebuilt from queue_log: its talk holds it
        if t.talk_s is not None and abs(r["talk_s"] + hold - t.talk_s) > 1.0:
            problems.append(f"{where}: talk+hold {r['talk_s'] + hold} vs queue_log {t.talk_s}")
        if t.agent is not None and r["agent"] != t.agent:
            problems.append(f"{where}: agent {r['agent']} vs queue_log {t.agent}")
        no_answer = sum(a["result"] == "no_answer" for a in r["ring_attempts"])
        if no_answer != t.ring_no_answer:
            problems.append(f"{where}: {no_answer} ring-no-answer vs queue_log {t.ring_no_answer}")
        kind = r["transfer"]["kind"] if r["transfer"] else None
        if kind != t.transfer:
            problems.append(f"{where}: transfer {kind} vs queue_log {t.transfer}")
    leftovers = [k for k, rs in by_key.items() if rs]
    if leftovers:
        problems.append(f"tracked but not in queue_log: {leftovers}")
    return problems
