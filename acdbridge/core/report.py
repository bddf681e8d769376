"""Interval reports (docs/reports.md): a period cut into intervals on the centre's local clock,
records put in the interval they belong to, and one row per (interval, group) with core/kpi.py's
`kpis_over`'s figures (queue-section groupings from core/reportsums.py's one pass, equal to it),
so a report and the live figures share every definition. Sans-IO.

- A visit belongs to the interval its end_ts falls in ([start, end)); an agent state stretch is
  in every interval it overlaps (kpis_over clips it); feedback by its ts.
- Fixed intervals (15m, 30m, 1h) are multiples of their length from local midnight, found by
  kpi.interval_bounds; days start at kpi.day_start; weeks on Monday, months on the 1st. So a DST
  day is one 23 or 25 h row, and the 30 min intervals across a change are each 30 real minutes.
- The first and last interval are clipped to [start, end): a row's start/end say what it covers.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acdbridge.core.kpi import DAY_S, KpiConfig, day_start, interval_bounds, kpis_over
from acdbridge.core.kpibase import Record
from acdbridge.core.reportsums import queue_section
from acdbridge.core.workforce import load_of, required

FIXED_S = {"15m": 900.0, "30m": 1800.0, "1h": 3600.0}
INTERVALS = (*FIXED_S, "day", "week", "month")
GROUPINGS = ("queue", "agent", "team", "call_type", "hotline", "pbx")
MAX_INTERVALS = 100_000  # a year by 15 minutes is 35,040: more is a mistake, not a report
_NOON_S = 12 * 3600.0  # a moment well inside a local day, whatever its DST change


class ReportError(ValueError):
    """A report that cannot be made as asked (the CLI says it and exits 2)."""


@dataclass(frozen=True)
class Target:
    """A KPI's target: the value should be >= min and <= max (None: no bound that side)."""

    min: float | None = None
    max: float | None = None

    def missed(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False  # null (no calls) misses nothing
        return (self.min is not None and value < self.min) or (self.max is not None and value > self.max)

    def as_json(self) -> dict[str, float]:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}


# the seeds' industry targets (shared docs, domain.md's KPI catalogue), by docs/kpi.md's names
DEFAULT_TARGETS: Mapping[str, Target] = {
    "service_level": Target(min=0.8),  # 80 % within 20 s (per queue: [queues.X] sl_target)
    "abandon_rate": Target(max=0.05),  # target 3-5 %, short abandons excluded
    "asa_s": Target(max=20.0),
    "avg_wait_s": Target(max=90.0),  # average queue time: target 30-90 s
    "avg_talk_s": Target(max=360.0),  # target 270-360 s
    "avg_hold_s": Target(max=60.0),
    "avg_wrap_s": Target(max=60.0),
    "aht_s": Target(max=600.0),  # target 3-10 min
    "avg_rings": Target(max=4.0),
    "percent_answered": Target(min=0.98),
    "transfer_rate": Target(max=0.01),
    "fcr": Target(min=0.85),
    "satisfaction": Target(min=0.98),
    "cost_per_call": Target(max=5.0),
    "occupancy": Target(min=0.9),
    "adherence": Target(min=0.92),
    "attendance": Target(min=0.95),
}  # fmt: skip
# which natural direction a bare number in [targets] sets
LOWER_IS_BETTER = frozenset(k for k, t in DEFAULT_TARGETS.items() if t.max is not None and t.min is None)


@dataclass(frozen=True)
class ReportConfig:
    targets: Mapping[str, Target] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    teams: Mapping[str, str] = field(default_factory=dict)  # agent -> team


@dataclass(frozen=True)
class Data:
    """What a report reads from the store: visits that ended in the period, agent stretches that
    overlap it, feedback given in it, and IVR legs (for call_type and hotline) by uniqueid."""

    visits: Sequence[Record]
    agent_states: Sequence[Record] = ()
    feedback: Sequence[Record] = ()
    legs: Mapping[tuple[str, str], Record] = field(default_factory=dict)  # (pbx, uniqueid) -> leg


def _fixed_cfg(cfg: KpiConfig, length_s: float) -> KpiConfig:
    return dataclasses.replace(cfg, interval_s=length_s)


def floor(ts: float, interval: str, cfg: KpiConfig) -> float:
    """The start of the interval `ts` falls in."""
    if interval in FIXED_S:
        return interval_bounds(ts, _fixed_cfg(cfg, FIXED_S[interval]))[1]
    day = day_start(ts, cfg)
    local = datetime.fromtimestamp(day + _NOON_S, cfg.tz)
    back = local.weekday() if interval == "week" else local.day - 1 if interval == "month" else 0
    return day_start(day + _NOON_S - back * DAY_S, cfg)  # noon that many days back: its midnight


def following(start: float, interval: str, cfg: KpiConfig) -> float:
    """The start of the interval after the one that starts at `start`."""
    if interval in FIXED_S:  # the next boundary on the local clock (30 real minutes across DST too)
        return floor(start + FIXED_S[interval], interval, cfg)
    days = {"day": 1, "week": 7, "month": 32}[interval]  # 32 days on: inside the next month
    return floor(day_start(start, cfg) + _NOON_S + days * DAY_S, interval, cfg)


def intervals(start: float, end: float, interval: str, cfg: KpiConfig) -> list[tuple[float, float]]:
    """The intervals covering [start, end), the first and last clipped to it."""
    if interval not in INTERVALS:
        raise ReportError(f"unknown interval {interval!r}: expected one of {', '.join(INTERVALS)}")
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise ReportError("the period is empty: --to must be after --from")
    out: list[tuple[float, float]] = []
    lo = start
    while lo < end:
        hi = min(following(floor(lo, interval, cfg), interval, cfg), end)
        out.append((lo, hi))
        lo = hi
        if len(out) > MAX_INTERVALS:
            raise ReportError(f"more than {MAX_INTERVALS} intervals: use a longer --interval or period")
    return out


def iso(ts: float, cfg: KpiConfig) -> str:
    """ISO 8601 with the centre's UTC offset at that moment: 2026-10-25T02:30:00+01:00."""
    moment = datetime.fromtimestamp(ts, cfg.tz)
    return moment.isoformat(timespec="microseconds" if ts % 1 else "seconds")


def bucket(bounds: list[tuple[float, float]], data: Data) -> list[Data]:
    """Each interval's records: visits by end_ts, feedback by ts, stretches in every overlapped."""
    starts = [lo for lo, _ in bounds]
    last = bounds[-1][1]
    visits: list[list[Record]] = [[] for _ in bounds]
    feedback: list[list[Record]] = [[] for _ in bounds]
    states: list[list[Record]] = [[] for _ in bounds]
    for v in data.visits:
        if starts[0] <= v["end_ts"] < last:
            visits[bisect.bisect_right(starts, v["end_ts"]) - 1].append(v)
    for f in data.feedback:
        if starts[0] <= f["ts"] < last:
            feedback[bisect.bisect_right(starts, f["ts"]) - 1].append(f)
    for s in data.agent_states:
        first = max(bisect.bisect_right(starts, s["start_ts"]) - 1, 0)
        for i in range(first, len(bounds)):
            if bounds[i][0] >= s["end_ts"]:
                break
            states[i].append(s)
    return [Data(v, s, f, data.legs) for v, s, f in zip(visits, states, feedback, strict=True)]


NO_GROUP = "\x00none"  # a record with no value for the grouping (no team, no greeting): null


def _relabel(data: Data, label: Callable[[Record], str]) -> Data:
    """The visits and feedback with `queue` set to their group, so kpis_over's queue figures are
    the group's (each row says the thresholds it used: sl_threshold_s, short_abandon_s)."""
    visits = [dict(v, queue=label(v)) for v in data.visits]
    feedback = [dict(f, queue=label(f)) for f in data.feedback]
    return Data(visits, data.agent_states, feedback, data.legs)


def _teamed(data: Data, teams: Mapping[str, str]) -> Data:
    """Agents renamed to their team: kpis_over's agent figures are then the team's (sums over its
    agents' calls and clipped time; aht, occupancy and calls per hour of those sums)."""

    def team(agent: Any) -> Any:
        return teams.get(agent, NO_GROUP) if agent else agent

    visits = [
        dict(
            v,
            agent=team(v["agent"]),
            ring_attempts=[dict(a, agent=team(a["agent"])) for a in v["ring_attempts"]],
        )
        for v in data.visits
    ]
    states = [dict(s, agent=team(s["agent"])) for s in data.agent_states]
    return Data(visits, states, data.feedback, data.legs)


def _leg_field(data: Data, key: str) -> Callable[[Record], str]:
    def label(record: Record) -> str:
        leg = data.legs.get((record.get("pbx", ""), record.get("uniqueid", "")))
        value = leg.get(key) if leg is not None else None
        return value if isinstance(value, str) and value else NO_GROUP

    return label


def _grouped(by: str, data: Data, cfg: KpiConfig, rcfg: ReportConfig) -> tuple[Data, KpiConfig, str]:
    """The records and KPI config for one grouping, and which section of kpis_over holds it."""
    if by == "queue":
        return data, cfg, "queues"
    if by == "agent":
        return data, cfg, "agents"
    if by == "team":
        # a team has no schedule or QA score of its own: adherence & co. stay per agent
        return _teamed(data, rcfg.teams), dataclasses.replace(cfg, schedules=None, qa_scores=None), "agents"
    plain = dataclasses.replace(cfg, queues={})  # groups of several queues: the default thresholds
    if by == "pbx":
        return _relabel(data, lambda r: str(r.get("pbx", ""))), plain, "queues"  # "": a one-PBX site
    if by in ("call_type", "hotline"):
        return _relabel(data, _leg_field(data, by)), plain, "queues"
    raise ReportError(f"unknown grouping {by!r}: expected one of {', '.join(GROUPINGS)}")


def targets_of(cfg: KpiConfig, rcfg: ReportConfig) -> dict[str, Any]:
    """The "targets" object: each KPI's bounds, and per queue the service level its sl_target sets."""
    out: dict[str, Any] = {k: t.as_json() for k, t in sorted(rcfg.targets.items())}
    if "service_level" in rcfg.targets:
        queues = {q: {"service_level": {"min": c.sl_target}} for q, c in sorted(cfg.queues.items())}
        if queues:
            out["queues"] = queues
    return out


def _misses(row: Mapping[str, Any], targets: Mapping[str, Target], sl_target: float | None) -> list[str]:
    out = []
    for key, target in targets.items():
        if key == "service_level" and sl_target is not None:
            target = Target(min=sl_target)
        if target.missed(row.get(key)):
            out.append(key)
    return sorted(out)


QUEUE_SECTIONS = ("queue", "pbx", "call_type", "hotline")


def _label(by: str, data: Data) -> Callable[[Record], str] | None:
    """A queue-section grouping's group of a record (None: its queue), as _grouped relabels it."""
    if by == "pbx":
        return lambda r: str(r.get("pbx", ""))
    return _leg_field(data, by) if by in ("call_type", "hotline") else None


def section_of(part: Data, lo: float, hi: float, by: str, cfg: KpiConfig, rcfg: ReportConfig, *,
               scan: bool = False) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The grouping's section of kpis_over over the interval's records, name -> figures. The
    queue-section groupings come from the exact one-pass sums (core/reportsums.py: equal to
    kpis_over, property-tested); agent and team figures, and scan=True, from kpis_over itself."""
    if by in QUEUE_SECTIONS and not scan:
        qcfg = cfg if by == "queue" else dataclasses.replace(cfg, queues={})
        return queue_section(part.visits, part.feedback, qcfg, lo, hi, _label(by, part))
    grouped, gcfg, section = _grouped(by, part, cfg, rcfg)
    return kpis_over(grouped.visits, grouped.agent_states, gcfg, lo, hi, grouped.feedback)[section]


def interval_rows(part: Data, lo: float, hi: float, by: str, cfg: KpiConfig, rcfg: ReportConfig, *,
                  scan: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """One interval's rows (one per group, by name; the null group last) from that interval's
    records: the grouping's KPIs (section_of), each row's missed targets."""
    kpis = section_of(part, lo, hi, by, cfg, rcfg, scan=scan)
    rows = []
    for name, figures in sorted(kpis.items(), key=lambda kv: (kv[0] == NO_GROUP, kv[0])):
        # a configured queue's own sl_target; any other row: [targets] service_level
        sl_target = cfg.queues[name].sl_target if by == "queue" and name in cfg.queues else None
        row: dict[str, Any] = {
            "start": iso(lo, cfg),
            "end": iso(hi, cfg),
            by: None if name == NO_GROUP else name,
        }
        row.update(figures)
        if by in QUEUE_SECTIONS:  # from the interval's own arrivals and AHT (docs/kpi.md, "Workforce")
            qc = cfg.queue(name) if by == "queue" else cfg.default  # the thresholds its figures used
            row["required_agents"] = required(load_of(figures, hi - lo), qc)
        row["misses"] = _misses(figures, rcfg.targets, sl_target)
        rows.append(row)
    return rows


def check_grouping(by: str, rcfg: ReportConfig) -> None:
    if by not in GROUPINGS:
        raise ReportError(f"unknown grouping {by!r}: expected one of {', '.join(GROUPINGS)}")
    if by == "team" and not rcfg.teams:
        raise ReportError('--by team: no agent has a team; set team = "..." in [agents."Name"]')


def report(data: Data, cfg: KpiConfig, rcfg: ReportConfig, start: float, end: float, interval: str,
           by: str) -> dict[str, Any]:  # fmt: skip
    """{"rows": [...], "targets": {...}} over records in memory: rows in time, then name order.
    (acdbridge report loads one interval at a time from the store and calls interval_rows.)"""
    check_grouping(by, rcfg)
    bounds = intervals(start, end, interval, cfg)
    rows = []
    for (lo, hi), part in zip(bounds, bucket(bounds, data), strict=True):
        rows += interval_rows(part, lo, hi, by, cfg, rcfg)
    return {"rows": rows, "targets": targets_of(cfg, rcfg)}
