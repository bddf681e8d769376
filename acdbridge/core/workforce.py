"""How many agents each queue needs, now and for the next interval, beside how many it has.
Sans-IO: the load comes from the KPI windows' own figures (or a forecast), the staffing from the
live gauges, the targets from the queue's config (docs/kpi.md, "Workforce").

- Load: offered calls (blocked included: demand) over the window's length, and its aht_s.
- Model: Erlang A when the window has at least MIN_ABANDONS abandons, with patience estimated
  as every queued caller's total wait / abandons (the maximum-likelihood mean of an exponential
  patience censored by the answers); else Erlang C.
- Staffed: members logged in and not paused (ready, ringing, talking, on hold, wrap-up): a
  paused agent takes no call, and wrap-up is part of the AHT the model staffs for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from acdbridge.core import erlang
from acdbridge.core.forecast import Forecast
from acdbridge.core.kpi import QueueKpiConfig
from acdbridge.core.tallies import LiveGauges

MIN_ABANDONS = 5  # fewer abandons tell too little about the callers' patience
STAFFED_STATES = ("ready", "ringing", "talking", "on_hold", "wrapup")


@dataclass(frozen=True)
class Load:
    calls: float  # offered in the period
    period_s: float
    aht_s: float | None  # None: nothing answered to measure it from
    patience_s: float | None = None  # None: Erlang C

    @property
    def erlangs(self) -> float | None:
        return None if self.aht_s is None else self.calls / self.period_s * self.aht_s


def patience_of(q: Mapping[str, Any]) -> float | None:
    """Mean patience from one window's queue KPIs, or None when the abandons are too few."""
    abandoned = int(q.get("abandoned") or 0)
    entered = int(q.get("offered") or 0) - int(q.get("blocked") or 0)
    avg_wait = q.get("avg_wait_s")
    if abandoned < MIN_ABANDONS or not avg_wait or entered <= 0:
        return None
    return float(avg_wait) * entered / abandoned


def load_of(q: Mapping[str, Any], period_s: float) -> Load:
    """The load one window's queue KPIs (kpis_over's keys) measured."""
    aht = q.get("aht_s")
    return Load(float(q.get("offered") or 0), period_s, float(aht) if aht else None, patience_of(q))


def load_forecast(f: Forecast, period_s: float, patience_s: float | None) -> Load:
    """A forecast interval's load; the patience is the one measured recently."""
    return Load(f.calls, period_s, f.aht_s, patience_s)


def required(load: Load, qc: QueueKpiConfig, max_occupancy: float | None = None) -> int | None:
    """Agents needed for the queue's SL target (its sl_threshold_s and sl_target), or None when
    it cannot be said: no AHT measured yet, or a target no staffing meets (sl_target 1.0)."""
    if load.calls <= 0 or load.period_s <= 0:
        return 0
    if load.aht_s is None or not math.isfinite(load.aht_s) or load.aht_s <= 0:
        return None
    rate, aht, t, target = load.calls / load.period_s, load.aht_s, qc.sl_threshold_s, qc.sl_target
    try:
        if load.patience_s is not None:
            return erlang.required_agents_a(rate, aht, load.patience_s, t, target, max_occupancy)
        return erlang.required_agents(rate * aht, aht, t, target, max_occupancy)
    except ValueError:  # an unreachable target, a load beyond any centre: no figure, never a crash
        return None


def staffed(live: LiveGauges) -> dict[str, int]:
    """Per queue, members logged in and not paused, from the live gauges."""
    out: dict[str, int] = {}
    for (queue, state), n in live.agents.items():
        out[queue] = out.get(queue, 0) + (n if state in STAFFED_STATES else 0)
    return out


@dataclass(frozen=True)
class Need:
    """One queue's staffing figures: required now and for the next interval."""

    now: int | None
    next: int | None
    model: str  # "erlang_a" | "erlang_c": which one the "now" figure came from
    forecast: Forecast | None = None


def needs(
    recent: Mapping[str, Mapping[str, Any]],
    period_s: float,
    qcs: Mapping[str, QueueKpiConfig],
    forecasts: Mapping[str, Forecast],
) -> dict[str, Need]:
    """Per queue: `recent` is a rolling window's queue KPIs over period_s (also the forecast's
    length: one interval); a queue without a forecast uses the recent load for "next" too."""
    out = {}
    for q in sorted(set(recent) | set(forecasts)):
        qc = qcs[q]
        load = load_of(recent.get(q, {}), period_s)
        f = forecasts.get(q)
        later = load if f is None else load_forecast(f, period_s, load.patience_s)
        model = "erlang_c" if load.patience_s is None else "erlang_a"
        out[q] = Need(required(load, qc), required(later, qc), model, f)
    return out
