"""Cost of one /metrics scrape and of one KPI refresh for a large centre: 50 queues, 500 agents.

Builds a day of synthetic finished visits and agent stretches (no PBX needed), loads them into
the KPI engine and the tallies as the daemon does, then times, best of several runs:
  - one KPI refresh: every window the daemon exports (rolling windows, today, 24 h, interval),
    by the incremental buckets (core/kpiwindows.py) and by today's full scan (`over_scan`, the
    reference) in the same run: cold (nothing cached) and steady (10 s of new records between
    refreshes, as the daemon's KPI_REFRESH_S), with the ratio;
  - building the metric families from the tallies, live gauges and window KPIs (on the loop);
  - rendering the exposition text (what a scrape costs, in the HTTP worker thread);
and prints figures with the sample count. Run: .venv/bin/python benchmarks/scrape_bench.py"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from acdbridge.adapters.metrics import build_families, new_registry, render, window_kpis
from acdbridge.core.agents import AgentTracker
from acdbridge.core.calls import CallTracker
from acdbridge.core.kpi import KpiConfig, KpiEngine, Kpis, day_start, interval_bounds
from acdbridge.core.kpiwindows import WindowIndex
from acdbridge.core.tallies import Tallies, live_gauges

DAY_START = 1_795_305_600.0  # a midnight, UTC


def visit(rng: random.Random, queue: str, agent: str, end: float, n: int) -> dict[str, Any]:
    outcome = rng.choices(["answered", "abandoned", "timeout", "blocked"], [80, 14, 3, 3])[0]
    wait = 0.0 if outcome == "blocked" else rng.expovariate(1 / 25)
    answered = outcome == "answered"
    talk = rng.uniform(60, 400) if answered else 0.0
    attempt = {
        "agent": agent,
        "interface": f"PJSIP/{agent}",
        "start_ts": end - talk - 5,
        "end_ts": end - talk,
    }
    attempts = [{**attempt, "result": "answered" if answered else "canceled"}]
    return {
        "uniqueid": f"pbx-{n}", "linkedid": f"pbx-{n}", "queue": queue, "caller": "5550", "caller_name": "",
        "outcome": outcome, "blocked_reason": "full" if outcome == "blocked" else None,
        "enter_ts": end - talk - wait, "answer_ts": end - talk if answered else None, "end_ts": end,
        "wait_s": wait, "ring_s": 5.0 if answered else 0.0, "talk_s": talk, "hold_s": rng.choice([0.0, 30.0]),
        "hold_count": 0, "wrap_s": rng.uniform(10, 60) if answered else None,
        "agent": agent if answered else None,
        "agent_interface": f"PJSIP/{agent}" if answered else None, "ring_attempts": attempts,
        "transfer": None, "ended_by": "agent" if answered else None, "time_source": "event",
    }  # fmt: skip


def windows_by_scan(engine: KpiEngine, cfg: KpiConfig, now: float) -> dict[str, Kpis]:
    """window_kpis' windows, each by a scan of every held record (the reference path)."""
    bounds = {f"{w / 60:g}m": (now - w, now) for w in cfg.windows_s}
    bounds |= {
        "today": (day_start(now, cfg), now),
        "24h": (now - 86_400, now),
        "interval": interval_bounds(now, cfg),
    }
    return {label: engine.over_scan(lo, hi) for label, (lo, hi) in bounds.items()}


def steady(
    engine: KpiEngine, agents: list[str], queues: list[str], now: float, refresh: Callable[[float], Any]
) -> float:
    """Seconds of one refresh after 10 s more traffic (about one visit and two stretches a second)."""
    rng = random.Random(2)
    took = []
    for step in range(5):
        now += 10.0
        for i in range(10):
            agent = rng.choice(agents)
            engine.add_visit(visit(rng, rng.choice(queues), agent, now - 10 + i, 10_000_000 + 100 * step + i))
            for state, start, end in (
                ("ready", now - 40 + i, now - 10 + i),
                ("talking", now - 10 + i, now - 9 + i),
            ):
                stretch = {"agent": agent, "interface": f"PJSIP/{agent}", "state": state, "reason": None}
                engine.add_agent_state(
                    {**stretch, "start_ts": start, "end_ts": end, "duration_s": end - start}
                )
        started = time.perf_counter()
        refresh(now)
        took.append(time.perf_counter() - started)
    return min(took)


def best(runs: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--calls-per-agent", type=int, default=40, help="answered calls per agent in the day")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(1)
    queues = [f"queue{i:02d}" for i in range(args.queues)]
    agents = [f"agent{i:03d}" for i in range(args.agents)]
    cfg = KpiConfig()
    engine, tallies = KpiEngine(cfg), Tallies()
    now = DAY_START + 20 * 3600
    n = 0
    for agent in agents:
        t = DAY_START + 8 * 3600
        for _ in range(args.calls_per_agent):
            t += rng.uniform(300, 900)
            n += 1
            record = visit(rng, rng.choice(queues), agent, min(t, now - 1), n)
            engine.add_visit(record)
            tallies.add_visit(record)
        for state, start, end in (
            ("ready", DAY_START + 8 * 3600, now - 600),
            ("talking", now - 600, now - 1),
        ):
            stretch = {"agent": agent, "interface": f"PJSIP/{agent}", "state": state, "reason": None}
            engine.add_agent_state({**stretch, "start_ts": start, "end_ts": end, "duration_s": end - start})
    # live state: every agent a member of five queues, some callers waiting
    calls, trackers = CallTracker(), AgentTracker()
    calls.known_queues.update(queues)
    for i, agent in enumerate(agents):
        member = trackers._agent({"Interface": f"PJSIP/{agent}", "MemberName": agent})
        for q in rng.sample(queues, 5):
            member.memberships[q] = i % 10 == 0
    registry, collector = new_registry()

    def kpi_refresh() -> dict[str, Any]:
        return window_kpis(engine, cfg, now)

    def cold() -> None:
        engine._windows = WindowIndex(cfg, engine._visits, engine._states, engine._feedback)
        for table in (engine._visits, engine._states):
            for row in table:
                engine._windows.add(table, row)
        started = time.perf_counter()
        kpi_refresh()
        cold_s.append(time.perf_counter() - started)

    cold_s: list[float] = []
    for _ in range(args.runs):
        cold()
    scan_s = best(args.runs, lambda: windows_by_scan(engine, cfg, now))
    windows = kpi_refresh()
    assert windows == windows_by_scan(engine, cfg, now), "the incremental windows differ from the scan"
    steady_inc = steady(engine, agents, queues, now, lambda t: window_kpis(engine, cfg, t))
    steady_scan = steady(engine, agents, queues, now + 60, lambda t: windows_by_scan(engine, cfg, t))

    def build() -> None:
        collector.publish(build_families(tallies, live_gauges(calls, trackers, now), None, windows))

    build()
    text = render(registry)
    sample_count = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
    print(f"{args.queues} queues, {args.agents} agents, {n:,} visits in the day; "
          f"exposition {len(text):,} bytes, {sample_count:,} samples")  # fmt: skip
    print(f"each figure: best of {args.runs} runs")
    rows = [
        ("KPI refresh by full scan (the reference), cold", scan_s),
        ("KPI refresh incremental, cold (no cached run)", min(cold_s)),
        ("KPI refresh by full scan, steady (10 s of new records)", steady_scan),
        ("KPI refresh incremental, steady (10 s of new records)", steady_inc),
        ("build metric families (tallies, live gauges, window KPIs)", best(args.runs, build)),
        ("render exposition text (one scrape)", best(args.runs, lambda: render(registry))),
    ]
    ratios = f"cold {scan_s / min(cold_s):.1f}x, steady {steady_scan / steady_inc:.1f}x"
    print(f"KPI refresh, full scan / incremental: {ratios}")
    print("\n| step | ms |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.1f} |")
    print("\ncommand: .venv/bin/python benchmarks/scrape_bench.py")


if __name__ == "__main__":
    main()
