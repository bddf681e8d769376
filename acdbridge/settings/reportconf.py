"""`[targets]` (each KPI's target, shown in reports and marked when missed) and the `team` key of
`[agents."Name"]` (what `acdbridge report --by team` groups by). docs/reports.md has the defaults.

    [targets]
    service_level = 0.9                    # a number: the KPI's natural bound (min here, max for asa_s)
    asa_s = 30
    avg_talk_s = { min = 270, max = 360 }  # a table: explicit bounds
    occupancy = {}                         # an empty table: no target for it

`service_level` is also the default `sl_target` of every queue ([queues.X] sl_target overrides
it, as the wallboard and the alert rules read it)."""

from __future__ import annotations

import math
from typing import Any

from acdbridge.core.report import DEFAULT_TARGETS, LOWER_IS_BETTER, ReportConfig, Target
from acdbridge.settings.problems import Problems, dotted, get, known, table, toml_type

TEAM_KEY = "team"


def _bound(p: Problems, value: Any, where: str) -> float | None:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        p.error(where, f"expected a number >= 0, got {toml_type(value)} {value!r}")
        return None
    return float(value)


def _target(p: Problems, key: str, value: Any) -> Target | None:
    where = dotted("targets", key)
    if isinstance(value, dict):
        known(p, value, where, {"min", "max"})
        lo, hi = (_bound(p, value[k], dotted(where, k)) if k in value else None for k in ("min", "max"))
        if lo is not None and hi is not None and lo > hi:
            p.error(where, f"min {lo:g} is above max {hi:g}")
        return Target(lo, hi) if lo is not None or hi is not None else None
    bound = _bound(p, value, where)
    if bound is None:
        return DEFAULT_TARGETS[key]
    return Target(max=bound) if key in LOWER_IS_BETTER else Target(min=bound)


def parse_targets(p: Problems, t: dict[str, Any]) -> dict[str, Target]:
    known(p, t, "targets", set(DEFAULT_TARGETS))
    out = dict(DEFAULT_TARGETS)
    for key, value in t.items():
        if key not in DEFAULT_TARGETS:
            continue
        target = _target(p, key, value)
        if target is None:
            out.pop(key, None)
        else:
            out[key] = target
    sl = out.get("service_level")
    if sl is not None and sl.min is not None and sl.min > 1:
        p.error("targets.service_level", f"is a ratio between 0 and 1, got {sl.min:g}")
        out["service_level"] = DEFAULT_TARGETS["service_level"]
    return out


def parse_teams(p: Problems, agents: dict[str, Any]) -> dict[str, str]:
    """agent -> team, from each [agents."Name"] team (a non-empty string)."""
    teams = {}
    for agent, value in agents.items():
        if not isinstance(value, dict) or TEAM_KEY not in value:
            continue  # a non-table is reported by the agents' own parser
        team = get(p, value, TEAM_KEY, dotted("agents", agent), str, None, empty=False)
        if team is not None:
            teams[agent] = team
    return teams


def parse_report(p: Problems, targets: dict[str, Any], agents: dict[str, Any]) -> ReportConfig:
    return ReportConfig(parse_targets(p, table(p, targets, "targets")), parse_teams(p, agents))


def default_sl_target(report: ReportConfig) -> float:
    """The sl_target of a queue that sets none: [targets] service_level (0.8 unless changed)."""
    sl = report.targets.get("service_level")
    return sl.min if sl is not None and sl.min is not None else 0.8
