"""Mergeable, exact sums of the records in a stretch of time, from which the KPIs of docs/kpi.md
come out equal to the full scan of core/kpi.py (the reference). Sans-IO.

Exact, not approximated: the full scan adds seconds with math.fsum, the correctly rounded sum.
Here every float is held as an integer count of 2**-1074 (the smallest float step), so sums of
any number of records, merged in any order, stay exact; `n / ONE` (int true division, correctly
rounded) then gives the same float fsum gives. Counts are plain ints, maxima plain floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from acdbridge.core.kpibase import BUSY, SATISFIED_SCORE, Record, _handle_s, _r, _ratio, _score

if TYPE_CHECKING:
    from acdbridge.core.kpi import KpiConfig, QueueKpiConfig

ONE = 1 << 1074
_OUTCOMES = ("answered", "abandoned", "timeout", "exit_empty", "exit_key", "blocked")
# QueueSums counts: offered, the outcomes, short abandons, answered within SL, transfers, hold and
# ring values present; sums: waits (answered, queued, abandoned), talk, hold, wrap, handle, rings
_C_OFFERED, _C_SHORT, _C_WITHIN, _C_TRANSFERS, _C_HOLD, _C_RINGS = 0, 7, 8, 9, 10, 11
_S_WAIT_ANS, _S_WAIT_Q, _S_WAIT_AB, _S_TALK, _S_HOLD, _S_WRAP, _S_HANDLE, _S_RINGS = range(8)


def fix(x: float) -> int:
    """x as an exact integer multiple of 2**-1074."""
    n, d = float(x).as_integer_ratio()  # d is a power of two, at most 2**1074
    return n << (1075 - d.bit_length())


def flt(n: int) -> float:
    return n / ONE


def _add_into(into: list[int], other: list[int]) -> None:
    # in place and skipping zeros: a bucket gains one record's sums at a time, and adding 0 to a
    # 1,100-bit integer still costs a new one
    for i, x in enumerate(other):
        if x:
            into[i] += x


class QueueSums:
    """One queue's visits: every figure of `_queue_kpis`."""

    __slots__ = ("c", "max_wait", "s")

    def __init__(self) -> None:
        self.c = [0] * 12
        self.s = [0] * 8
        self.max_wait: float | None = None  # of visits that entered the queue (not blocked)

    def add(self, v: Record, qc: QueueKpiConfig, cadence: float) -> None:
        c, s, outcome, wait = self.c, self.s, v["outcome"], v["wait_s"]
        c[_C_OFFERED] += 1
        if outcome in _OUTCOMES:
            c[1 + _OUTCOMES.index(outcome)] += 1
        if outcome != "blocked":
            s[_S_WAIT_Q] += fix(wait)
            if self.max_wait is None or wait > self.max_wait:
                self.max_wait = wait
        if outcome == "answered":
            s[_S_WAIT_ANS] += fix(wait)
            c[_C_WITHIN] += wait <= qc.sl_threshold_s
            s[_S_TALK] += fix(v["talk_s"])
            if v["hold_s"] is not None:
                c[_C_HOLD] += 1
                s[_S_HOLD] += fix(v["hold_s"])
            s[_S_WRAP] += fix(v["wrap_s"] or 0.0)
            s[_S_HANDLE] += fix(_handle_s(v))
            if v["ring_s"] is not None:
                c[_C_RINGS] += 1
                s[_S_RINGS] += fix(v["ring_s"] / cadence)
        elif outcome == "abandoned":
            s[_S_WAIT_AB] += fix(wait)
            c[_C_SHORT] += wait <= qc.short_abandon_s
        c[_C_TRANSFERS] += bool(v["transfer"])

    def merge(self, o: QueueSums) -> None:
        _add_into(self.c, o.c)
        _add_into(self.s, o.s)
        if o.max_wait is not None and (self.max_wait is None or o.max_wait > self.max_wait):
            self.max_wait = o.max_wait

    def kpis(self, qc: QueueKpiConfig, cfg: KpiConfig) -> dict[str, Any]:
        c, s = self.c, self.s
        offered, answered, abandoned, timeout, exit_empty, exit_key, blocked = c[:7]
        short, within, transfers = c[_C_SHORT], c[_C_WITHIN], c[_C_TRANSFERS]
        base = offered - blocked - short  # the service-level and abandon-rate denominator
        return {
            "offered": offered,
            "answered": answered,
            "abandoned": abandoned,
            "short_abandoned": short,
            "timeout": timeout,
            "exit_empty": exit_empty,
            "exit_key": exit_key,
            "blocked": blocked,
            "answered_within_sl": within,
            "service_level": _ratio(within, base),
            "asa_s": _ratio(flt(s[_S_WAIT_ANS]), answered),
            "avg_wait_s": _ratio(flt(s[_S_WAIT_Q]), offered - blocked),
            "max_wait_s": None if self.max_wait is None else _r(self.max_wait),
            "avg_abandon_wait_s": _ratio(flt(s[_S_WAIT_AB]), abandoned),
            "avg_talk_s": _ratio(flt(s[_S_TALK]), answered),
            "avg_hold_s": _ratio(flt(s[_S_HOLD]), c[_C_HOLD]),
            "avg_wrap_s": _ratio(flt(s[_S_WRAP]), answered),
            "aht_s": _ratio(flt(s[_S_HANDLE]), answered),
            "avg_rings": _ratio(flt(s[_S_RINGS]), c[_C_RINGS]),
            "abandon_rate": _ratio(abandoned - short, base),
            "percent_answered": _ratio(answered, offered),
            "transfers": transfers,
            "transfer_rate": _ratio(transfers, answered),
            "sl_threshold_s": qc.sl_threshold_s,
            "short_abandon_s": qc.short_abandon_s,
            "ring_cadence_s": cfg.ring_cadence_s,
        }


class AgentSums:
    """One agent's answered visits and ring attempts (counts: answered, no answer; sums: talk,
    hold, wrap, handle) and its state time (sums: logged in, paused, busy; paused by reason)."""

    __slots__ = ("c", "paused", "s", "stretches")

    def __init__(self) -> None:
        self.c = [0, 0]
        self.s = [0, 0, 0, 0, 0, 0, 0]
        self.paused: dict[str, int] = {}
        self.stretches = 0  # state records overlapping the stretch of time

    def add_visit(self, v: Record) -> None:
        self.c[0] += 1
        s = self.s
        s[0] += fix(v["talk_s"])
        s[1] += fix(v["hold_s"] or 0.0)
        s[2] += fix(v["wrap_s"] or 0.0)
        s[3] += fix(_handle_s(v))

    def add_state(self, state: Record, d: float) -> None:
        """One state record and its part inside the window (d > 0)."""
        self.stretches += 1
        name, x = state["state"], fix(d)
        if name != "logged_out":
            self.s[4] += x
        if name == "paused":
            reason = state["reason"] or ""
            self.paused[reason] = self.paused.get(reason, 0) + x
            self.s[5] += x
        if name in BUSY:
            self.s[6] += x

    def merge(self, o: AgentSums) -> None:
        _add_into(self.c, o.c)
        _add_into(self.s, o.s)
        self.stretches += o.stretches
        for reason, x in o.paused.items():
            self.paused[reason] = self.paused.get(reason, 0) + x

    def kpis(self, states: AgentSums | None = None) -> dict[str, Any]:
        """The agent's figures; `states`: its state time kept apart (else in these sums)."""
        (answered, no_answer), s = self.c, self.s
        t = self if states is None else states  # the state sums: s[4:7] and paused
        logged_in = flt(t.s[4])
        return {
            "answered": answered,
            "talk_s": _r(flt(s[0])),
            "hold_s": _r(flt(s[1])),
            "wrap_s": _r(flt(s[2])),
            "aht_s": _ratio(flt(s[3]), answered),
            "ring_no_answer": no_answer,
            "logged_in_s": _r(logged_in),
            "paused_s": {reason: _r(flt(x)) for reason, x in sorted(t.paused.items())},
            "occupancy": _ratio(flt(t.s[6]), logged_in - flt(t.s[5])),
            "calls_per_hour": _ratio(answered * 3600.0, logged_in),
        }


class FeedbackSums:
    """One queue's survey scores and dispositions (counts only)."""

    __slots__ = ("c",)

    def __init__(self) -> None:
        self.c = [0, 0, 0, 0, 0]  # scores, satisfied, score total, dispositions, resolved

    def add(self, f: Record) -> None:
        if f["kind"] == "survey" and _score(f["value"]):
            score = int(f["value"])
            self.c[0] += 1
            self.c[1] += score >= SATISFIED_SCORE
            self.c[2] += score
        elif f["kind"] == "disposition":
            self.c[3] += 1
            self.c[4] += bool(f.get("resolved"))

    def merge(self, o: FeedbackSums) -> None:
        _add_into(self.c, o.c)

    def kpis(self) -> dict[str, Any]:
        scores, satisfied, total, codes, resolved = self.c
        return {
            "surveys": scores,
            "satisfaction": _ratio(satisfied, scores),
            "avg_survey_score": _ratio(total, scores),
            "dispositions": codes,
            "fcr": _ratio(resolved, codes),
        }


def merge_into(into: dict[str, Any], other: Mapping[str, Any], make: type[Any]) -> None:
    """Merge a name -> sums map into another (the sums are QueueSums, AgentSums or FeedbackSums)."""
    for name, sums in other.items():
        mine = into.get(name)
        if mine is None:
            mine = into[name] = make()
        mine.merge(sums)
