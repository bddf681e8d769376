"""The gap while nobody listened: from the last event before an AMI connection was lost (or the
daemon died) to the resync of the next one. Sans-IO.

Asterisk keeps no AMI backlog, so what happened in the gap is only in its queue_log. The resync
(CoreShowChannels) tells which tracked callers vanished meanwhile; instead of guessing their end
at the resync's time, the pipeline holds them here until the runtime hands it the queue_log lines
of the gap (core/backfill.py rebuilds the visits that ended in it). A vanished visit found there
is reported as queue_log has it, with what the tracker knew and queue_log does not (linkedid,
interfaces); one not found there (no queue_log configured, or unreadable) is finished as before
the backfill existed: at the resync's time. The lines are an input like the AMI bytes: the
journal keeps them, so a replay rebuilds the same visits (docs/daemon.md, "After a gap")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.backfill import KNOWN_ENTER_SLACK_S
from acdbridge.core.qlines import parse_line
from acdbridge.core.values import Problems
from acdbridge.core.visit import Visit, visit_dict, visit_of

Record = dict[str, Any]


@dataclass
class Gap:
    since: float  # the tracker's clock at the new connection: its last event before the gap
    until: float | None = None  # the resync's time, once it came
    vanished: list[Visit] = field(default_factory=list)
    alive: set[str] = field(default_factory=set)  # the channels the resync listed


class GapBook:
    """At most one gap open: a second connection lost before the backfill widens it."""

    def __init__(self) -> None:
        self.gap: Gap | None = None
        self.requested = False  # the runtime has asked for the lines (not saved: asked again)

    def connected(self, now: float) -> None:
        """A new AMI connection began (its banner). The first connection ever opens no gap."""
        if self.gap is not None:
            self.gap.until = None  # lost again before the backfill: it waits for this resync
        elif now > 0:
            self.gap = Gap(now)
        self.requested = False

    def resynced(self, vanished: list[Visit], ts: float, alive: set[str]) -> bool:
        """The resync listed what is alive; False when no gap is open (the tracker finishes the
        vanished visits itself, as it always did)."""
        if self.gap is None:
            return False
        self.gap.vanished.extend(vanished)
        self.gap.alive = set(alive)
        self.gap.until = ts
        return True

    def due(self) -> tuple[float, float] | None:
        """(since, until) when a resync has closed the gap and nobody has asked for its lines."""
        gap = self.gap
        if gap is None or gap.until is None or self.requested:
            return None
        return gap.since, gap.until

    def take(self) -> Gap | None:
        """The closed gap, which the backfill now settles; None if there is none."""
        gap = self.gap
        if gap is None or gap.until is None:
            return None
        self.gap, self.requested = None, False
        return gap

    def snapshot(self) -> Record | None:
        gap = self.gap
        if gap is None:
            return None
        return {"since": gap.since, "until": gap.until, "vanished": [visit_dict(v) for v in gap.vanished],
                "alive": sorted(gap.alive)}  # fmt: skip

    def restore(self, snap: Record | None) -> None:
        if snap is not None:
            until = snap["until"]
            vanished = [visit_of(d) for d in snap["vanished"]]
            alive = {str(uid) for uid in snap.get("alive", [])}  # older snapshots have none
            self.gap = Gap(float(snap["since"]), None if until is None else float(until), vanished, alive)


def merge(vanished: list[Visit], rebuilt: list[Record]) -> tuple[list[Record], list[Visit]]:
    """The rebuilt records, those of vanished visits completed with what the tracker knew; and
    the vanished visits queue_log has no end for."""
    left = {(v.uniqueid, v.queue): v for v in vanished}
    out: list[Record] = []
    for r in rebuilt:
        key = (r["uniqueid"], r["queue"])
        v = left.get(key)
        if v is not None and abs(v.enter_ts - r["enter_ts"]) <= KNOWN_ENTER_SLACK_S:
            del left[key]
            r = with_known(r, v)
        out.append(r)
    return out, list(left.values())


def with_known(r: Record, v: Visit) -> Record:
    """queue_log's times and outcome; the tracker's ids, caller and interfaces (queue_log has the
    member's name only)."""
    r = dict(r, linkedid=v.linkedid)
    if r["caller"] is None:
        r["caller"], r["caller_name"] = v.caller, v.caller_name
    if r["agent"] is not None and r["agent"] == v.agent:
        r["agent_interface"] = v.agent_interface
    interfaces = {a.agent: a.interface for a in v.ring_attempts}
    r["ring_attempts"] = [
        dict(a, interface=a["interface"] or interfaces.get(a["agent"])) for a in r["ring_attempts"]
    ]
    return r


_ENDS = ("COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER", "ATTENDEDTRANSFER", "ABANDON", "WITHDRAW",
         "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY")  # fmt: skip


def answers_in_gap(lines: list[str], since: float) -> dict[tuple[str, str], tuple[float, str, str]]:
    """(caller, queue) -> (answer time, member name, agent channel's uniqueid) for each CONNECT
    from `since`'s second on whose visit queue_log has not seen end: a caller who waited across
    the gap was answered in it, and AMI never said so. (Bad lines are counted by the backfill.)"""
    out: dict[tuple[str, str], tuple[float, str, str]] = {}
    lo, quiet = float(int(since)), Problems()
    for text in lines:
        line = parse_line(text, quiet)
        if line is None:
            continue
        key = (line.callid, line.queue)
        if line.event == "CONNECT" and line.ts >= lo and len(line.data) >= 2:
            out[key] = (line.ts, line.agent, line.data[1])
        elif line.event in _ENDS:
            out.pop(key, None)
    return out


def joins_in_gap(lines: list[str]) -> dict[tuple[str, str], tuple[float, str]]:
    """(caller, queue) -> (join time, caller number) of each ENTERQUEUE in the lines: the join of
    a caller who came and was answered while nobody listened, whom AMI never named."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    quiet = Problems()
    for text in lines:
        line = parse_line(text, quiet)
        if line is not None and line.event == "ENTERQUEUE":
            out[(line.callid, line.queue)] = (line.ts, line.data[1] if len(line.data) >= 2 else "")
    return out
