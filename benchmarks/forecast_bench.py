"""The forecast's error: core/forecast.py's choice (the same half hour of the last 4 weeks,
weighted 4:3:2:1) against the alternatives, on a synthetic history.

The lab's recorded traces (tests/fixtures/traces) are minutes long: no week has a "same interval
last week", so the error is measured on a made-up centre instead, 16 weeks of half hours from
08:00 to 20:00: a two-peak day, weekday factors (Monday busiest, Sunday quietest), a growth of
`--trend` per week, Poisson-like noise (normal with variance = mean), a holiday (volume x 0.4)
on one day in 30, and an AHT wandering around 240 s. Weeks 5-16 are forecast from the weeks
before (8-week weights from week 9 on). For each method it prints the calls' WAPE (sum of
|forecast - actual| / sum of actual), the mean error in required agents (Erlang C, 80/20, with
the forecast vs the actual calls and AHT) and the share of half hours the forecast leaves 2 or
more agents short. The "recent" row is the fallback: the half hour before; the "noise floor"
row knows the mean each half hour was drawn from (what no forecast can beat).

    .venv/bin/python benchmarks/forecast_bench.py [--seed 1] [--trend 0.01] [--peak 120]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable

from acdbridge.core import erlang
from acdbridge.core.forecast import SlotLoad, forecast

SLOTS = 24  # 08:00-20:00 by half hour
DAY_FACTOR = (1.3, 1.15, 1.05, 1.0, 1.1, 0.7, 0.5)  # Monday first
Week = list[list[SlotLoad]]  # [day][slot]


def _profile(slot: int) -> float:
    """Two peaks, mid-morning and early afternoon."""
    h = 8 + slot / 2
    return 0.35 + 0.65 * math.exp(-(((h - 10.5) / 1.6) ** 2)) + 0.5 * math.exp(-(((h - 14.5) / 1.8) ** 2))


MEANS: dict[tuple[int, int, int], tuple[float, float]] = {}  # (week, day, slot) -> true mean, AHT


def history(weeks: int, seed: int, trend: float, peak: float) -> list[Week]:
    rng = random.Random(seed)
    out: list[Week] = []
    for w in range(weeks):
        week: Week = []
        for d in range(7):
            holiday = rng.random() < 1 / 30
            aht = 240.0 * (1 + 0.05 * math.sin(w / 3 + d))
            day = []
            for s in range(SLOTS):
                mean = peak * _profile(s) * DAY_FACTOR[d] * (1 + trend) ** w * (0.4 if holiday else 1.0)
                MEANS[(w, d, s)] = (mean, aht)
                calls = max(0, round(rng.gauss(mean, math.sqrt(mean))))
                handle = sum(max(30.0, rng.gauss(aht, 60.0)) for _ in range(calls))
                day.append(SlotLoad(calls, calls, handle))
            week.append(day)
        out.append(week)
    return out


def _agents(calls: float, aht: float | None) -> int:
    if calls <= 0 or not aht:
        return 0
    return erlang.required_agents(calls / 1800.0 * aht, aht, 20.0, 0.8)


Method = Callable[[list[Week], int, int, int], tuple[float, float | None]]


def weighted(n: int) -> Method:
    def f(h: list[Week], w: int, d: int, s: int) -> tuple[float, float | None]:
        past = [h[w - k][d][s] if w - k >= 0 else None for k in range(1, n + 1)]
        got = forecast(past, 0.0, None)
        return got.calls, got.aht_s

    return f


def mean_of(n: int) -> Method:
    def f(h: list[Week], w: int, d: int, s: int) -> tuple[float, float | None]:
        past = [h[w - k][d][s] for k in range(1, n + 1) if w - k >= 0]
        calls = sum(p.calls for p in past) / len(past)
        answered = sum(p.answered for p in past)
        return calls, sum(p.handle_s for p in past) / answered if answered else None

    return f


def recent(h: list[Week], w: int, d: int, s: int) -> tuple[float, float | None]:
    prev = h[w][d][s - 1] if s else h[w][d - 1][-1] if d else h[w - 1][6][-1]
    return float(prev.calls), prev.handle_s / prev.answered if prev.answered else None


def truth(h: list[Week], w: int, d: int, s: int) -> tuple[float, float | None]:
    """The noise floor: a forecast that knows the mean each half hour was drawn from."""
    return MEANS[(w, d, s)]


def score(h: list[Week], method: Method, first: int) -> tuple[float, float, float]:
    err = total = agent_err = short = n = 0.0
    for w in range(first, len(h)):
        for d in range(7):
            for s in range(SLOTS):
                actual = h[w][d][s]
                calls, aht = method(h, w, d, s)
                true_aht = actual.handle_s / actual.answered if actual.answered else None
                err += abs(calls - actual.calls)
                total += actual.calls
                gap = _agents(actual.calls, true_aht) - _agents(calls, aht or true_aht)
                agent_err += abs(gap)
                short += gap >= 2
                n += 1
    return err / total, agent_err / n, short / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trend", type=float, default=0.01, help="growth per week (0.01: 1 %%)")
    ap.add_argument("--peak", type=float, default=120.0, help="calls in a Monday's busiest half hour / 1.3")
    args = ap.parse_args()
    h = history(16, args.seed, args.trend, args.peak)
    print(f"synthetic centre: 16 weeks, seed {args.seed}, trend {args.trend:+.1%}/week, peak {args.peak:g}")
    print(f"{'method':<28}{'WAPE calls':>12}{'mean |agents|':>15}{'>=2 short':>11}")
    for name, method in (("weighted 4:3:2:1 (chosen)", weighted(4)), ("mean of 4 weeks", mean_of(4)),
                         ("last week only", mean_of(1)), ("weighted 8..1", weighted(8)),
                         ("recent (half hour before)", recent),
                         ("noise floor (true mean)", truth)):  # fmt: skip
        wape, agents, short = score(h, method, 8)  # weeks 9-16: every method has its weeks
        print(f"{name:<28}{wape:>12.1%}{agents:>15.2f}{short:>11.1%}")


if __name__ == "__main__":
    main()
