"""The incremental KPI windows (core/kpiwindows.py) against the full scan (core/kpi.py's
kpis_over, the reference): equal on random records and windows, with duplicates, out-of-order
arrival and eviction, and on every recorded trace."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acdbridge.core.kpi import KpiConfig, KpiEngine, QueueKpiConfig, day_start, interval_bounds, kpis_over
from acdbridge.core.kpibase import Record
from acdbridge.core.kpisums import fix, flt
from acdbridge.core.kpiwindows import WIDTHS, key_of
from acdbridge.core.pipeline import Pipeline
from acdbridge.replay import read_chunks

TRACES = Path(__file__).parent / "fixtures" / "traces"
ALL = sorted(p for p in TRACES.iterdir() if p.suffix in (".ami", ".gz"))
SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
BASES = (0.0, 1_795_305_600.0)  # near zero (float subtraction inexact) and a real epoch
AGENTS = ("Ana", "Bo", "Cy")
QUEUES = ("water", "power", "gas")
STATES = ("ready", "talking", "on_hold", "wrapup", "paused", "logged_out", "ringing")

CFG = KpiConfig(
    queues={"water": QueueKpiConfig(sl_threshold_s=15.0, short_abandon_s=3.0), "idle": QueueKpiConfig()},
    cost_per_hour=42.5,
    schedules={
        "Ana": [(1800.0, 5400.0), (1_795_305_600.0 + 600, 1_795_305_600.0 + 4000)],
        "Dee": [(0.0, 9e9)],
    },
    qa_scores={"Bo": 91.0},
)


def canonical(k: Any) -> str:
    return json.dumps(k, sort_keys=True)


# a time: often on a bucket boundary (or just beside one), else anywhere in 3 h
offsets = st.one_of(
    st.integers(0, 180).map(lambda m: 60.0 * m),
    st.integers(0, 12).map(lambda h: 900.0 * h),
    st.integers(0, 180).map(lambda m: math.nextafter(60.0 * m, -math.inf)),
    st.floats(0, 10_800, allow_nan=False),
    st.integers(0, 10_800),
)
secs = st.one_of(st.floats(0, 400, allow_nan=False), st.integers(0, 400), st.just(5e-324), st.just(0.1))


@st.composite
def visits(draw: st.DrawFn, base: float, n: int) -> Record:
    outcome = draw(
        st.sampled_from(["answered", "abandoned", "timeout", "exit_empty", "exit_key", "blocked", "odd"])
    )
    end = base + draw(offsets)
    attempts = draw(
        st.lists(st.tuples(st.sampled_from(AGENTS), st.sampled_from(["no_answer", "answered"])), max_size=2)
    )
    return {
        "uniqueid": f"u{n}", "queue": draw(st.sampled_from((*QUEUES, "water"))), "outcome": outcome,
        "enter_ts": end - 1, "end_ts": end, "wait_s": draw(secs), "talk_s": draw(secs),
        "hold_s": draw(st.one_of(st.none(), secs)), "wrap_s": draw(st.one_of(st.none(), secs)),
        "ring_s": draw(st.one_of(st.none(), secs)), "agent": draw(st.sampled_from((*AGENTS, "", None))),
        "transfer": draw(st.sampled_from([None, {"kind": "blind"}])),
        "ring_attempts": [{"agent": a, "result": r} for a, r in attempts],
    }  # fmt: skip


@st.composite
def states(draw: st.DrawFn, base: float) -> Record:
    start = base + draw(offsets)
    end = start + draw(st.one_of(st.floats(-10, 7200, allow_nan=False), st.integers(0, 3600), st.just(0.0)))
    return {
        "agent": draw(st.sampled_from((*AGENTS, "Dee"))), "interface": f"PJSIP/{draw(st.integers(0, 99))}",
        "state": draw(st.sampled_from(STATES)),
        "reason": draw(st.sampled_from([None, "", "lunch", "break"])), "start_ts": start, "end_ts": end,
    }  # fmt: skip


@st.composite
def feedback(draw: st.DrawFn, base: float, n: int) -> Record:
    kind = draw(st.sampled_from(["survey", "disposition", "other"]))
    value = draw(st.sampled_from(["1", "4", "5", "x", "123"]))
    ts = base + draw(offsets)
    queue = draw(st.sampled_from((*QUEUES, "fb")))
    return {"uniqueid": f"f{n}", "kind": kind, "value": value, "queue": queue, "ts": ts,
            "resolved": draw(st.booleans())}  # fmt: skip


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[Record], list[Record], list[Record], list[tuple[float, float]], int]:
    base = draw(st.sampled_from(BASES))
    vs = [draw(visits(base, i)) for i in range(draw(st.integers(0, 40)))]
    ss = draw(st.lists(states(base), max_size=40))
    fs = [draw(feedback(base, i)) for i in range(draw(st.integers(0, 10)))]
    windows = draw(
        st.lists(st.tuples(offsets, offsets).map(lambda w: (base + min(w), base + max(w))), min_size=1)
    )
    max_records = draw(st.sampled_from([10, 25, 500_000]))
    return vs, ss, fs, windows, max_records


def held(engine: KpiEngine) -> tuple[list[Record], list[Record], list[Record]]:
    return ([r[3] for r in engine._visits], [r[3] for r in engine._states],
            [r[3] for r in engine._feedback])  # fmt: skip


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_windows_equal_the_full_scan(scenario: Any, rng: random.Random) -> None:
    vs, ss, fs, windows, max_records = scenario
    engine = KpiEngine(CFG, max_records=max_records)
    adds = [(engine.add_visit, v) for v in vs] + [(engine.add_agent_state, s) for s in ss]
    adds += [(engine.add_feedback, f) for f in fs]
    rng.shuffle(adds)
    for i, (add, record) in enumerate(adds):
        add(record)
        if i % 7 == 0:  # a query between adds fills the cache and leaves buckets dirty
            lo, hi = windows[0]
            assert canonical(engine.over(lo, hi)) == canonical(engine.over_scan(lo, hi))
        if i % 5 == 0:
            add(record)  # seen twice: counts once
    hv, hs, hf = held(engine)
    for lo, hi in [*windows, windows[0]]:
        incremental = engine.over(lo, hi)
        assert incremental == engine.over_scan(lo, hi)
        assert incremental == kpis_over(hv, hs, CFG, lo, hi, hf)
        assert canonical(incremental) == canonical(kpis_over(hv, hs, CFG, lo, hi, hf))


@SETTINGS
@given(st.lists(st.one_of(st.floats(-1e10, 1e10, allow_nan=False, allow_infinity=False), secs), max_size=30))
def test_exact_sums_give_what_fsum_gives(values: list[float]) -> None:
    assert flt(sum(fix(x) for x in values)) == math.fsum(values)


@SETTINGS
@given(st.floats(-7e9, 7e9, allow_nan=False), st.sampled_from(WIDTHS))
def test_a_bucket_key_holds_its_value(x: float, width: float) -> None:
    k = key_of(x, width)
    assert k * width <= x < (k + 1) * width


def trace_records(trace: Path) -> tuple[list[Record], list[Record], list[Record]]:
    out: dict[str, list[Record]] = {"visit": [], "state": [], "feedback": []}
    pipeline = Pipeline(on_visit=out["visit"].append, on_agent_state=out["state"].append,
                        on_feedback=out["feedback"].append)  # fmt: skip
    for chunk in read_chunks(trace):
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return out["visit"], out["state"], out["feedback"]


@pytest.mark.parametrize("trace", ALL, ids=lambda p: p.name)
def test_windows_equal_the_full_scan_on_the_recorded_traces(trace: Path) -> None:
    vs, ss, fs = trace_records(trace)
    assert vs, "a trace without visits proves nothing"
    cfg = KpiConfig(cost_per_hour=30.0, schedules={"Ana Torres": [(1795395500.0, 1795395600.0)]})
    engine = KpiEngine(cfg)
    for v in vs:
        engine.add_visit(v)
    for s in ss:
        engine.add_agent_state(s)
    for f in fs:
        engine.add_feedback(dict(f))
    first, last = min(v["end_ts"] for v in vs), max(v["end_ts"] for v in vs)
    rng = random.Random(trace.name)
    cuts = [(first - 1, last + 1), (day_start(last, cfg), last + 1)]
    for _ in range(30):
        a, b = sorted((rng.uniform(first - 60, last + 60), rng.uniform(first - 60, last + 60)))
        cuts.append((a, b))
    for now in (last + 1, last + 600, first + (last - first) / 2):
        for window in (900.0, 3600.0, 86_400.0):
            assert engine.rolling(now, window) == kpis_over(vs, ss, cfg, now - window, now, fs)
        assert engine.interval(now) == engine.over_scan(*interval_bounds(now, cfg))
    for lo, hi in cuts:
        assert engine.over(lo, hi) == kpis_over(vs, ss, cfg, lo, hi, fs)


def test_buckets_of_dropped_records_are_dropped_too() -> None:
    engine = KpiEngine(KpiConfig())
    t0 = 1_795_000_000.0
    for minute in range(3 * 24 * 60):  # three days, one visit and one stretch a minute
        t = t0 + 60 * minute + 7
        engine.add_visit({
            "uniqueid": f"c{minute}", "queue": "water", "outcome": "answered", "enter_ts": t - 20,
            "end_ts": t, "wait_s": 10.0, "talk_s": 10.0, "hold_s": None, "wrap_s": None,
            "ring_s": None, "agent": "Ana", "transfer": None, "ring_attempts": [],
        })  # fmt: skip
        engine.add_agent_state({"agent": "Ana", "interface": "PJSIP/a", "state": "ready", "reason": None,
                                "start_ts": t - 60, "end_ts": t})  # fmt: skip
        if minute % 600 == 0:
            engine.rolling_24h(t + 1)
    kept_s = engine.retention_s + 3600  # what is held, and at most one partial bucket per width
    for buckets in (engine._windows.visits, engine._windows.states):
        for level, width in enumerate(WIDTHS):
            assert len(buckets.levels[level]) <= kept_s / width + 1
            assert len(buckets.version[level]) <= kept_s / width + 1
        assert len(buckets.dirty) <= len(WIDTHS)
    now = t0 + 3 * 86_400
    assert engine.rolling_24h(now) == engine.over_scan(now - 86_400, now)
    assert engine.today(now) == engine.over_scan(day_start(now, engine.cfg), now)
