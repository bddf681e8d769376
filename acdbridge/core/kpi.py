"""Queue and agent KPIs over finished visit records and agent state records. Sans-IO.

Time comes only from the records' timestamps and a `now` argument. One set of definitions
serves the wallboard's rolling windows, the half-hour interval reports and "today", so they
agree. Rules (docs/kpi.md has every definition):
- a visit belongs to a window [start, end) when start <= end_ts < end;
- agent state records are clipped to the window;
- a ratio or mean with an empty denominator is None, never 0;
- seconds and ratios are rounded to 6 decimals, sums are exact (math.fsum): the output does not
  depend on the order records came in, and its JSON is byte-stable.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acdbridge.core.kpibase import (
    BUSY,
    SATISFIED_SCORE,
    Record,
    _handle_s,
    _mean,
    _overlap,
    _r,
    _ratio,
    _score,
    schedule_kpis,
)
from acdbridge.core.kpiwindows import WindowIndex
from acdbridge.core.values import MAX_TS

Kpis = dict[str, dict[str, dict[str, Any]]]  # {"queues": {name: {metric: value}}, "agents": {...}}
Row = tuple[float, int, tuple[Any, ...], Record]  # (end_ts, arrival number, dedup key, record)

DAY_S = 86_400.0
LONGEST_DAY_S = DAY_S + 3600.0  # a local day with a DST fall-back lasts 25 h
# The numbers of a record the KPIs read. A record with any of them not finite or beyond MAX_TS
# (a stored row from before values were checked, say) is left out: with every number at most
# ~7e9 s no sum can overflow and no date computation can fail.
_NUMBERS = ("end_ts", "enter_ts", "start_ts", "ts", "wait_s", "talk_s", "hold_s", "ring_s", "wrap_s")
MAX_RECORDS = 500_000  # per table in KpiEngine: about a busy centre's day and a bit


def sane(record: Record, _keys: tuple[str, ...] = _NUMBERS, _lo: float = -MAX_TS, _hi: float = MAX_TS
         ) -> bool:  # fmt: skip
    """Every number the KPIs read is a finite float within +-MAX_TS (bool and int included).
    (Called once per record of a report: the plain float's test first, names bound as defaults.)"""
    for x in map(record.get, _keys):
        if x is None or (x.__class__ is float and _lo <= x <= _hi):
            continue
        if not isinstance(x, (int, float)) or not _lo <= x <= _hi:  # False for NaN too
            return False
    return True


def _any(_record: Record) -> bool:
    return True


def _clamp(now: float) -> float:
    """A time datetime can take: 1e20 or inf would raise OverflowError there."""
    return min(max(now, 0.0), MAX_TS) if math.isfinite(now) else 0.0


@dataclass(frozen=True)
class QueueKpiConfig:
    sl_threshold_s: float = 20.0  # service level: answered with wait <= this
    short_abandon_s: float = 5.0  # abandoned with wait <= this is a short abandon
    sl_target: float = 0.8  # the service level the queue aims at (alerting compares against it)

    def __post_init__(self) -> None:
        if self.sl_threshold_s < 0 or self.short_abandon_s < 0:
            raise ValueError("sl_threshold_s and short_abandon_s must be >= 0")
        if not 0 <= self.sl_target <= 1:
            raise ValueError("sl_target must be a ratio between 0 and 1")


@dataclass(frozen=True)
class KpiConfig:
    queues: Mapping[str, QueueKpiConfig] = field(default_factory=dict)
    default: QueueKpiConfig = field(default_factory=QueueKpiConfig)
    ring_cadence_s: float = 6.0  # one ring of the caller's ringback
    windows_s: tuple[float, ...] = (900.0, 3600.0)  # rolling windows the engine keeps data for
    interval_s: float = 1800.0  # closed report intervals, aligned to local midnight
    timezone: str = "UTC"  # the centre's zone: "today" and interval boundaries
    cost_per_hour: float | None = None  # the whole centre's cost rate: enables cost_per_call
    schedules: Mapping[str, Sequence[tuple[float, float]]] | None = None  # agent -> scheduled spans
    qa_scores: Mapping[str, float] | None = None  # agent -> QA monitoring score, passed through

    def __post_init__(self) -> None:
        if self.ring_cadence_s <= 0:
            raise ValueError("ring_cadence_s must be > 0")
        if not self.windows_s or min(self.windows_s) <= 0:
            raise ValueError("windows_s must be positive window lengths")
        if self.interval_s <= 0 or DAY_S % self.interval_s:
            raise ValueError("interval_s must divide a day (86400 s)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    def queue(self, name: str) -> QueueKpiConfig:
        return self.queues.get(name, self.default)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _queue_kpis(visits: list[Record], qc: QueueKpiConfig, cfg: KpiConfig) -> dict[str, Any]:
    def outcome(name: str) -> list[Record]:
        return [v for v in visits if v["outcome"] == name]

    answered, abandoned = outcome("answered"), outcome("abandoned")
    queued = [v for v in visits if v["outcome"] != "blocked"]
    short = [v for v in abandoned if v["wait_s"] <= qc.short_abandon_s]
    within = [v for v in answered if v["wait_s"] <= qc.sl_threshold_s]
    offered, blocked = len(visits), len(visits) - len(queued)
    base = offered - blocked - len(short)  # the service-level and abandon-rate denominator
    transfers = sum(1 for v in visits if v["transfer"])
    return {
        "offered": offered,
        "answered": len(answered),
        "abandoned": len(abandoned),
        "short_abandoned": len(short),
        "timeout": len(outcome("timeout")),
        "exit_empty": len(outcome("exit_empty")),
        "exit_key": len(outcome("exit_key")),
        "blocked": blocked,
        "answered_within_sl": len(within),
        "service_level": _ratio(len(within), base),
        "asa_s": _mean([v["wait_s"] for v in answered]),
        "avg_wait_s": _mean([v["wait_s"] for v in queued]),
        "max_wait_s": _r(max(v["wait_s"] for v in queued)) if queued else None,
        "avg_abandon_wait_s": _mean([v["wait_s"] for v in abandoned]),
        "avg_talk_s": _mean([v["talk_s"] for v in answered]),
        "avg_hold_s": _mean([v["hold_s"] for v in answered if v["hold_s"] is not None]),
        "avg_wrap_s": _mean([v["wrap_s"] or 0.0 for v in answered]),
        "aht_s": _mean([_handle_s(v) for v in answered]),
        "avg_rings": _mean([v["ring_s"] / cfg.ring_cadence_s for v in answered if v["ring_s"] is not None]),
        "abandon_rate": _ratio(len(abandoned) - len(short), base),
        "percent_answered": _ratio(len(answered), offered),
        "transfers": transfers,
        "transfer_rate": _ratio(transfers, len(answered)),
        "sl_threshold_s": qc.sl_threshold_s,
        "short_abandon_s": qc.short_abandon_s,
        "ring_cadence_s": cfg.ring_cadence_s,
    }


def _agent_kpis(
    name: str,
    answered: list[Record],
    no_answer: int,
    states: list[Record],
    cfg: KpiConfig,
    lo: float,
    hi: float,
) -> dict[str, Any]:
    clipped = [(s, _overlap(s["start_ts"], s["end_ts"], lo, hi)) for s in states]
    logged_in = math.fsum(d for s, d in clipped if s["state"] != "logged_out")
    paused: dict[str, list[float]] = {}
    for s, d in clipped:
        if s["state"] == "paused":
            paused.setdefault(s["reason"] or "", []).append(d)
    paused_total = math.fsum(d for s, d in clipped if s["state"] == "paused")
    busy = math.fsum(d for s, d in clipped if s["state"] in BUSY)
    out: dict[str, Any] = {
        "answered": len(answered),
        "talk_s": _r(math.fsum(v["talk_s"] for v in answered)),
        "hold_s": _r(math.fsum(v["hold_s"] or 0.0 for v in answered)),
        "wrap_s": _r(math.fsum(v["wrap_s"] or 0.0 for v in answered)),
        "aht_s": _mean([_handle_s(v) for v in answered]),
        "ring_no_answer": no_answer,
        "logged_in_s": _r(logged_in),
        "paused_s": {reason: _r(math.fsum(ds)) for reason, ds in sorted(paused.items())},
        "occupancy": _ratio(busy, logged_in - paused_total),
        "calls_per_hour": _ratio(len(answered) * 3600.0, logged_in),
    }
    if cfg.schedules is not None and name in cfg.schedules:
        out.update(schedule_kpis(cfg.schedules[name], clipped, lo, hi))
    if cfg.qa_scores is not None and name in cfg.qa_scores:
        out["monitoring_score"] = cfg.qa_scores[name]
    return out


def kpis_over(
    visits: Iterable[Record],
    agent_states: Iterable[Record],
    cfg: KpiConfig,
    start: float | None = None,
    end: float | None = None,
    feedback: Iterable[Record] = (),
    *,
    assume_sane: bool = False,
) -> Kpis:
    """KPIs of the visits that ended in [start, end) and the agent time inside it (None: unbounded).
    Configured queues are always present; cost_per_call needs cost_per_hour and both bounds.
    Records that are not `sane` are left out (assume_sane: the KpiEngine checked them already)."""
    ok = _any if assume_sane else sane
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    in_window = [v for v in visits if lo <= v["end_ts"] < hi and ok(v)]
    states = [s for s in agent_states if _overlap(s["start_ts"], s["end_ts"], lo, hi) > 0 and ok(s)]
    by_queue: dict[str, list[Record]] = {q: [] for q in cfg.queues}
    for v in in_window:
        by_queue.setdefault(v["queue"], []).append(v)
    queues = {q: _queue_kpis(vs, cfg.queue(q), cfg) for q, vs in sorted(by_queue.items())}
    if cfg.cost_per_hour is not None and start is not None and end is not None:
        cost_per_call = _ratio(cfg.cost_per_hour * (end - start) / 3600.0, len(in_window))
        for q in queues.values():
            q.update(cost_per_call=cost_per_call, cost_per_hour=cfg.cost_per_hour)
    answered: dict[str, list[Record]] = {name: [] for name in cfg.schedules or ()}
    no_answer: dict[str, int] = {}
    by_agent: dict[str, list[Record]] = {}
    for v in in_window:
        if v["outcome"] == "answered" and v["agent"]:
            answered.setdefault(v["agent"], []).append(v)
        for a in v["ring_attempts"]:
            no_answer[a["agent"]] = no_answer.get(a["agent"], 0) + (a["result"] == "no_answer")
    for s in states:
        by_agent.setdefault(s["agent"], []).append(s)
    agents = {
        n: _agent_kpis(n, answered.get(n, []), no_answer.get(n, 0), by_agent.get(n, []), cfg, lo, hi)
        for n in sorted(answered.keys() | no_answer.keys() | by_agent.keys())
    }
    in_window_feedback = [f for f in feedback if lo <= f["ts"] < hi and ok(f)]
    return feedback_kpis(in_window_feedback, {"queues": queues, "agents": agents})


def feedback_kpis(feedback: Iterable[Record], kpis: Kpis) -> Kpis:
    """Add survey and disposition figures per queue (in place, and returned): satisfaction = scores
    of 4 or 5 / scores given; first-call resolution = dispositions that resolved the call /
    dispositions entered (the catalogue's #17 from wrap-up codes)."""
    by_queue: dict[str, list[Record]] = {}
    for f in feedback:
        by_queue.setdefault(f["queue"], []).append(f)
    for queue in sorted(by_queue.keys() | kpis["queues"].keys()):
        rows = by_queue.get(queue, [])
        # a stored score that is not 0-9 digits (from before legs.py checked them) is left out
        scores = [int(f["value"]) for f in rows if f["kind"] == "survey" and _score(f["value"])]
        codes = [f for f in rows if f["kind"] == "disposition"]
        kpis["queues"].setdefault(queue, {}).update(
            surveys=len(scores),
            satisfaction=_ratio(sum(1 for s in scores if s >= SATISFIED_SCORE), len(scores)),
            avg_survey_score=_ratio(sum(scores), len(scores)),
            dispositions=len(codes),
            fcr=_ratio(sum(1 for f in codes if f.get("resolved")), len(codes)),
        )
    return kpis


def day_start(now: float, cfg: KpiConfig) -> float:
    """Local midnight (cfg.timezone) of the day `now` falls in, as epoch seconds."""
    local = datetime.fromtimestamp(_clamp(now), cfg.tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0).timestamp()


def interval_bounds(now: float, cfg: KpiConfig) -> tuple[float, float]:
    """The last closed interval at `now`: boundaries are local clock times, multiples of interval_s
    from local midnight; an interval ending exactly at `now` is closed."""
    now = _clamp(now)
    offset = datetime.fromtimestamp(now, cfg.tz).utcoffset()
    off_s = offset.total_seconds() if offset is not None else 0.0
    end = now - (now + off_s) % cfg.interval_s
    return end - cfg.interval_s, end


class KpiEngine:
    """Incremental: keeps the records a query can still need, and answers the same structure as
    kpis_over. Memory: records whose end_ts is older than retention_s before the newest record
    seen are dropped. A record seen twice (same key, as in the store) counts once."""

    def __init__(self, cfg: KpiConfig, max_records: int = MAX_RECORDS) -> None:
        self.cfg = cfg
        self.max_records = max_records
        self.rejected = 0  # records left out: a number not finite or out of range (see sane)
        self.evicted = 0  # records dropped, oldest first, beyond max_records in a table
        self.retention_s = max(*cfg.windows_s, 2 * cfg.interval_s, LONGEST_DAY_S)
        self.newest_ts = -math.inf
        self._seq = 0
        self._visits: list[Row] = []  # sorted by end_ts
        self._states: list[Row] = []
        self._feedback: list[Row] = []
        self._keys: set[tuple[Any, ...]] = set()
        self._windows = WindowIndex(cfg, self._visits, self._states, self._feedback)

    def _add(self, rows: list[Row], key: tuple[Any, ...], record: Record) -> None:
        if not sane(record):
            self.rejected += 1
            return
        if key in self._keys:
            return
        self._keys.add(key)
        self._seq += 1
        row = (float(record["end_ts"]), self._seq, key, record)
        bisect.insort(rows, row)
        self._windows.add(rows, row)
        self.newest_ts = max(self.newest_ts, float(record["end_ts"]))
        horizon = (self.newest_ts - self.retention_s,)
        for table in (self._visits, self._states, self._feedback):
            cut = bisect.bisect_left(table, horizon)
            if len(table) - cut > self.max_records:
                self.evicted += len(table) - cut - self.max_records
                cut = len(table) - self.max_records
            if cut:
                gone = table[:cut]
                del table[:cut]
                self._keys.difference_update(row[2] for row in gone)
                self._windows.removed(table, gone)

    def add_visit(self, record: Record) -> None:
        self._add(self._visits, ("visit", record["uniqueid"], record["queue"], record["enter_ts"]), record)

    def add_agent_state(self, record: Record) -> None:
        key = ("state", record["interface"], record["state"], record["start_ts"])
        self._add(self._states, key, record)

    def add_feedback(self, record: Record) -> None:
        """A survey score or a disposition (core/legs.py); its ts stands in for end_ts."""
        key = ("feedback", record["uniqueid"], record["kind"])
        self._add(self._feedback, key, dict(record, end_ts=record["ts"]))

    def visits_since(self, start: float) -> list[Record]:
        """The visit records held that ended at or after `start` (the supervisor's abandons)."""
        return [row[3] for row in self._visits[bisect.bisect_left(self._visits, (start,)) :]]

    def retained(self) -> tuple[int, int]:
        """How many visit and agent state records are held."""
        return len(self._visits), len(self._states)

    def over(self, start: float, end: float) -> Kpis:
        # a window longer than what is kept is a caller's mistake; a window that starts before the
        # newest record's horizon (a record from the future) just finds fewer records
        if end - start > self.retention_s:
            raise ValueError(f"window longer than the {self.retention_s:g} s the engine keeps")
        return self._windows.over(start, end)

    def over_scan(self, start: float, end: float) -> Kpis:
        """`over` by a scan of every record held (the reference `over` is checked against)."""
        first = bisect.bisect_left(self._visits, (start,))
        last = bisect.bisect_left(self._visits, (end,))
        states_from = bisect.bisect_right(self._states, (start, math.inf))
        visits = [row[3] for row in self._visits[first:last]]
        fb = self._feedback
        in_window = [row[3] for row in fb[bisect.bisect_left(fb, (start,)) : bisect.bisect_left(fb, (end,))]]
        states = [row[3] for row in self._states[states_from:]]
        return kpis_over(visits, states, self.cfg, start, end, in_window, assume_sane=True)

    # `now` is clamped to the times the core believes in (core/values.py), so no clock a caller
    # passes can make a window's dates fail
    def rolling(self, now: float, window_s: float) -> Kpis:
        now = _clamp(now)
        return self.over(now - window_s, now)

    def interval(self, now: float) -> Kpis:
        return self.over(*interval_bounds(_clamp(now), self.cfg))

    def today(self, now: float) -> Kpis:
        now = _clamp(now)
        return self.over(day_start(now, self.cfg), now)

    def rolling_24h(self, now: float) -> Kpis:
        now = _clamp(now)
        return self.over(now - DAY_S, now)
