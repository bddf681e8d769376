"""The next intervals' calls and AHT per queue: the same interval of the last N weeks, newer weeks
weighted heavier, falling back to the recent rate where the store has no such week. Sans-IO:
the store's visits come in, the clock is the interval's own start (docs/kpi.md, "Workforce").

Weights: week k back (k = 1..N) weighs N + 1 - k (4, 3, 2, 1 for N = 4), so a trend shows
within a few weeks while one odd week (a holiday, an outage) moves the forecast by at most
N / (N (N + 1) / 2) = 40 % of its deviation. Measured against the alternatives on a synthetic
history by benchmarks/forecast_bench.py (figures in docs/kpi.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Record = Mapping[str, Any]
DEFAULT_WEEKS = 4


@dataclass(frozen=True)
class SlotLoad:
    """One queue's traffic in one interval: what a forecast is made of."""

    calls: int  # offered, every outcome (blocked too: demand the agents did not meet)
    answered: int
    handle_s: float  # talk + hold + wrap of the answered calls (wrap null = 0), as aht_s sums it


@dataclass(frozen=True)
class Forecast:
    calls: float
    aht_s: float | None
    source: str  # "history" (weeks found) or "recent" (no week in the store: the recent rate)
    weeks: int  # how many past weeks it was made of


def week_back(ts: float, weeks: int, tz: ZoneInfo) -> float:
    """The same local clock time `weeks` weeks before ts (DST-correct: 08:00 stays 08:00)."""
    local = datetime.fromtimestamp(ts, tz) - timedelta(days=7 * weeks)
    return local.replace(tzinfo=None).replace(tzinfo=tz, fold=0).timestamp()


def slot_loads(visits: Iterable[Record]) -> dict[str, SlotLoad]:
    """Per queue, the traffic of the visits given (one interval's, as the store returns them)."""
    calls: dict[str, int] = {}
    answered: dict[str, int] = {}
    handle: dict[str, list[float]] = {}
    for v in visits:
        q = str(v.get("queue", ""))
        calls[q] = calls.get(q, 0) + 1
        if v.get("outcome") == "answered":
            answered[q] = answered.get(q, 0) + 1
            parts = (v.get("talk_s"), v.get("hold_s"), v.get("wrap_s"))
            handle.setdefault(q, []).append(math.fsum(float(x) for x in parts if isinstance(x, int | float)))
    return {q: SlotLoad(n, answered.get(q, 0), math.fsum(handle.get(q, []))) for q, n in calls.items()}


def weights(weeks: int) -> list[float]:
    """Week 1 back first: N, N - 1, ..., 1."""
    return [float(weeks - k) for k in range(weeks)]


def forecast(history: Sequence[SlotLoad | None], recent_calls: float, recent_aht_s: float | None) -> Forecast:
    """history[k]: the slot k + 1 weeks back, None where the store holds nothing that far back
    (a queue quiet in a week the store covers is SlotLoad(0, 0, 0.0), not None)."""
    w = weights(len(history))
    found = [(wk, s) for wk, s in zip(w, history, strict=True) if s is not None]
    if not found:
        return Forecast(recent_calls, recent_aht_s, "recent", 0)
    total = math.fsum(wk for wk, _ in found)
    calls = math.fsum(wk * s.calls for wk, s in found) / total
    answered = math.fsum(wk * s.answered for wk, s in found)
    aht = math.fsum(wk * s.handle_s for wk, s in found) / answered if answered else recent_aht_s
    return Forecast(calls, aht, "history", len(found))


def history_for(
    per_week: Sequence[Mapping[str, SlotLoad] | None], queues: Iterable[str]
) -> dict[str, list[SlotLoad | None]]:
    """Per queue, its slot in each past week: a week the store covers but the queue had no call
    in is a quiet slot (0 calls), a week the store does not cover is None."""
    empty = SlotLoad(0, 0, 0.0)
    return {q: [None if w is None else w.get(q, empty) for w in per_week] for q in sorted(set(queues))}
