"""The KPI engine: every definition on hand-built records with known answers, window rules, the
incremental engine, and the recorded traces checked against KPIs computed from Asterisk's queue_log."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import acdbridge.core.kpi as kpi_module
from acdbridge.config import Config
from acdbridge.config import load as load_config
from acdbridge.core.kpi import (
    KpiConfig,
    KpiEngine,
    Kpis,
    QueueKpiConfig,
    day_start,
    interval_bounds,
    kpis_over,
)
from acdbridge.core.pipeline import Pipeline
from acdbridge.lab import queuelog
from acdbridge.replay import read_chunks, replay_kpis
from tests.truth import TruthVisit, truth_visits

TRACES = Path(__file__).parent / "fixtures" / "traces"
ALL = sorted(p for p in TRACES.iterdir() if p.suffix in (".ami", ".gz"))
Rec = dict[str, Any]


def visit(
    outcome: str,
    end_ts: float = 100.0,
    wait: float = 0.0,
    *,
    queue: str = "water",
    uid: str | None = None,
    talk: float = 0.0,
    hold: float = 0.0,
    wrap: float | None = None,
    ring: float = 0.0,
    agent: str | None = None,
    transfer: str | None = None,
    attempts: tuple[tuple[str, str], ...] = (),
) -> Rec:
    """A visit record as calls.record_of() makes them (only the fields the KPIs read vary)."""
    return {
        "uniqueid": uid or f"{queue}-{outcome}-{end_ts}-{wait}", "linkedid": "L", "queue": queue,
        "caller": "555", "caller_name": "", "outcome": outcome,
        "blocked_reason": "full" if outcome == "blocked" else None,
        "enter_ts": end_ts - wait - talk - hold, "answer_ts": None, "end_ts": end_ts, "wait_s": wait,
        "ring_s": ring, "talk_s": talk, "hold_s": hold, "hold_count": int(hold > 0), "wrap_s": wrap,
        "agent": agent, "agent_interface": None,
        "ring_attempts": [
            {"agent": a, "interface": f"PJSIP/{a}", "start_ts": 0.0, "end_ts": 1.0, "result": r}
            for a, r in attempts
        ],
        "transfer": None if transfer is None else {"kind": transfer, "to": "6100@inbound"},
        "ended_by": None, "time_source": "event",
    }  # fmt: skip


def state(agent: str, name: str, start: float, end: float, reason: str | None = None) -> Rec:
    return {"agent": agent, "interface": f"PJSIP/{agent}", "state": name, "reason": reason,
            "start_ts": start, "end_ts": end, "duration_s": end - start}  # fmt: skip


def dumps(k: Kpis) -> str:
    return json.dumps(k, ensure_ascii=False, sort_keys=False, separators=(",", ":"))


# --- queue metrics -------------------------------------------------------------------------------

ONE_OF_EACH = [
    visit("answered", 100, 10, talk=100, hold=20, wrap=30, ring=12, agent="Ana"),
    visit("answered", 200, 30, talk=200, wrap=None, ring=6, agent="Bo", transfer="blind"),
    visit("abandoned", 110, 3),  # short
    visit("abandoned", 120, 40),
    visit("timeout", 130, 60),
    visit("exit_empty", 140, 2),
    visit("exit_key", 150, 7),
    visit("blocked", 160, 0),
]


def test_every_queue_metric_on_known_records() -> None:
    q = kpis_over(ONE_OF_EACH, [], KpiConfig())["queues"]["water"]
    base = 8 - 1 - 1  # offered - blocked - short abandoned
    assert q == {
        "offered": 8, "answered": 2, "abandoned": 2, "short_abandoned": 1, "timeout": 1, "exit_empty": 1,
        "exit_key": 1, "blocked": 1, "answered_within_sl": 1,
        "service_level": round(1 / base, 6),
        "asa_s": 20.0,
        "avg_wait_s": round((10 + 30 + 3 + 40 + 60 + 2 + 7) / 7, 6),  # blocked callers never waited
        "max_wait_s": 60.0,
        "avg_abandon_wait_s": 21.5,  # short abandons included
        "avg_talk_s": 150.0, "avg_hold_s": 10.0,
        "avg_wrap_s": 15.0,  # wrap_s None counts as 0
        "aht_s": 175.0,  # ((100 + 20 + 30) + (200 + 0 + 0)) / 2
        "avg_rings": 1.5,  # (12 / 6 + 6 / 6) / 2
        "abandon_rate": round((2 - 1) / base, 6),
        "percent_answered": 0.25,  # blocked count in offered here
        "transfers": 1, "transfer_rate": 0.5,
        "sl_threshold_s": 20.0, "short_abandon_s": 5.0, "ring_cadence_s": 6.0,
        # no survey scores or dispositions given: counts of 0, no ratio rather than a wrong one
        "surveys": 0, "satisfaction": None, "avg_survey_score": None, "dispositions": 0, "fcr": None,
    }  # fmt: skip
    assert q["aht_s"] == q["avg_talk_s"] + q["avg_hold_s"] + q["avg_wrap_s"]


def test_satisfaction_and_first_call_resolution_from_survey_scores_and_dispositions() -> None:
    def fb(kind: str, value: str, ts: float, resolved: bool = False) -> dict[str, object]:
        return {"uniqueid": f"c{ts}", "kind": kind, "value": value, "resolved": resolved, "queue": "water",
                "agent": "", "ts": ts}  # fmt: skip

    feedback = [fb("survey", "5", 10), fb("survey", "4", 11), fb("survey", "2", 12), fb("survey", "1", 99),
                fb("disposition", "resolved", 13, True), fb("disposition", "needs_callback", 14)]  # fmt: skip
    q = kpis_over([], [], KpiConfig(), 0, 50, feedback)["queues"]["water"]  # ts 99 is outside [0, 50)
    assert (q["surveys"], q["satisfaction"], q["avg_survey_score"]) == (3, round(2 / 3, 6), round(11 / 3, 6))
    assert (q["dispositions"], q["fcr"]) == (2, 0.5)


def test_thresholds_are_inclusive_per_queue_and_shown_beside_the_figures() -> None:
    visits = [visit("answered", 100, 10.0), visit("answered", 101, 10.5), visit("abandoned", 102, 3.0)]
    visits += [visit("answered", 100, 10.0, queue="bb"), visit("abandoned", 102, 3.0, queue="bb")]
    cfg = KpiConfig(
        queues={"water": QueueKpiConfig(sl_threshold_s=10.0, short_abandon_s=3.0)},
        default=QueueKpiConfig(sl_threshold_s=5.0, short_abandon_s=2.0),
        ring_cadence_s=4.0,
    )
    out = kpis_over(visits, [], cfg)["queues"]
    water, bb = out["water"], out["bb"]
    assert (water["answered_within_sl"], water["short_abandoned"]) == (1, 1)
    assert water["service_level"] == 0.5 and water["abandon_rate"] == 0.0
    assert (bb["answered_within_sl"], bb["short_abandoned"]) == (0, 0)
    assert bb["service_level"] == 0.0 and bb["abandon_rate"] == 0.5
    assert (water["sl_threshold_s"], water["short_abandon_s"], water["ring_cadence_s"]) == (10.0, 3.0, 4.0)
    assert (bb["sl_threshold_s"], bb["short_abandon_s"]) == (5.0, 2.0)


RATIOS_AND_MEANS = ("service_level", "asa_s", "avg_wait_s", "max_wait_s", "avg_abandon_wait_s",
                    "avg_talk_s", "avg_hold_s", "avg_wrap_s", "aht_s", "avg_rings", "abandon_rate",
                    "percent_answered", "transfer_rate")  # fmt: skip


def test_a_configured_queue_without_calls_has_zero_counts_and_null_ratios() -> None:
    q = kpis_over([], [], KpiConfig(queues={"water": QueueKpiConfig()}))["queues"]["water"]
    assert all(q[m] is None for m in RATIOS_AND_MEANS)
    assert q["offered"] == q["answered"] == q["transfers"] == q["blocked"] == 0
    assert kpis_over([], [], KpiConfig()) == {"queues": {}, "agents": {}}


def test_null_denominators_one_by_one() -> None:
    only_blocked = kpis_over([visit("blocked")], [], KpiConfig())["queues"]["water"]
    assert only_blocked["service_level"] is None and only_blocked["abandon_rate"] is None
    assert only_blocked["percent_answered"] == 0.0  # offered counts the blocked call
    assert only_blocked["avg_wait_s"] is None and only_blocked["max_wait_s"] is None

    only_short = kpis_over([visit("abandoned", wait=2), visit("blocked")], [], KpiConfig())["queues"]["water"]
    assert only_short["service_level"] is None and only_short["abandon_rate"] is None
    assert only_short["avg_abandon_wait_s"] == 2.0 and only_short["percent_answered"] == 0.0

    unanswered = kpis_over([visit("abandoned", wait=30), visit("timeout", 101, 60)], [], KpiConfig())
    q = unanswered["queues"]["water"]
    for metric in ("asa_s", "avg_talk_s", "avg_hold_s", "avg_wrap_s", "aht_s", "avg_rings", "transfer_rate"):
        assert q[metric] is None, metric
    assert (q["service_level"], q["abandon_rate"], q["percent_answered"]) == (0.0, 0.5, 0.0)
    assert (q["avg_wait_s"], q["max_wait_s"]) == (45.0, 60.0)


# --- agent metrics -------------------------------------------------------------------------------

ANA_DAY = [
    state("Ana", "ready", 0, 600),
    state("Ana", "ringing", 600, 610),
    state("Ana", "talking", 610, 910),
    state("Ana", "on_hold", 910, 970),
    state("Ana", "talking", 970, 1030),
    state("Ana", "wrapup", 1030, 1090),
    state("Ana", "paused", 1090, 1390, "break"),
    state("Ana", "ready", 1390, 1800),
    state("Ana", "paused", 1800, 2400, "lunch"),
    state("Ana", "logged_out", 2400, 3600),
]
ANA_CALLS = [
    visit("answered", 1030, 5, talk=360, hold=60, wrap=60, agent="Ana", attempts=(("Bo", "no_answer"),
                                                                                  ("Ana", "answered"))),
    visit("abandoned", 2000, 40, attempts=(("Ana", "no_answer"), ("Bo", "no_answer"), ("Ana", "dumped"))),
]  # fmt: skip


def test_every_agent_metric_on_known_records() -> None:
    agents = kpis_over(ANA_CALLS, ANA_DAY, KpiConfig(), 0, 3600)["agents"]
    assert agents["Ana"] == {
        "answered": 1, "talk_s": 360.0, "hold_s": 60.0, "wrap_s": 60.0, "aht_s": 480.0,
        "ring_no_answer": 1,
        "logged_in_s": 2400.0,  # every state but logged_out, paused included
        "paused_s": {"break": 300.0, "lunch": 600.0},
        "occupancy": 0.32,  # (300 + 60 + 60 + 60) / (2400 - 900), from the state records
        "calls_per_hour": 1.5,  # 1 / (2400 / 3600)
    }  # fmt: skip
    # an agent seen only in ring attempts: no state records, so no logged-in time
    assert agents["Bo"] == {
        "answered": 0, "talk_s": 0.0, "hold_s": 0.0, "wrap_s": 0.0, "aht_s": None, "ring_no_answer": 2,
        "logged_in_s": 0.0, "paused_s": {}, "occupancy": None, "calls_per_hour": None,
    }  # fmt: skip


def test_agent_paused_all_the_time_has_no_occupancy_but_calls_per_hour() -> None:
    states = [state("Li", "paused", 0, 1800, None), state("Li", "paused", 1800, 3600, "training")]
    li = kpis_over([], states, KpiConfig())["agents"]["Li"]
    assert li["paused_s"] == {"": 1800.0, "training": 1800.0}  # no reason given: ""
    assert (li["occupancy"], li["calls_per_hour"], li["aht_s"]) == (None, 0.0, None)


def test_metrics_needing_outside_inputs_are_absent_without_them() -> None:
    out = kpis_over(ANA_CALLS, ANA_DAY, KpiConfig(), 0, 3600)
    assert not {"cost_per_call", "cost_per_hour"} & set(out["queues"]["water"])
    assert not {"adherence", "scheduled_s", "monitoring_score"} & set(out["agents"]["Ana"])


def test_cost_per_call_is_the_centres_cost_over_all_calls_offered() -> None:
    visits = [*ONE_OF_EACH, visit("answered", 300, 1, queue="bb"), visit("blocked", 400, queue="bb")]
    cfg = KpiConfig(cost_per_hour=36.0)
    out = kpis_over(visits, [], cfg, 0, 3600)["queues"]
    for q in out.values():  # 36 for the hour / 10 calls offered (blocked ones included)
        assert (q["cost_per_call"], q["cost_per_hour"]) == (3.6, 36.0)
    assert "cost_per_call" not in kpis_over(visits, [], cfg)["queues"]["bb"]  # no period: no cost
    empty = kpis_over([], [], KpiConfig(queues={"water": QueueKpiConfig()}, cost_per_hour=36.0), 0, 60)
    assert empty["queues"]["water"]["cost_per_call"] is None  # no calls: null, not 0


def test_adherence_is_working_time_inside_the_schedule() -> None:
    cfg = KpiConfig(schedules={"Ana": [(0.0, 3600.0)], "Zoe": [(7200.0, 9000.0)]}, qa_scores={"Ana": 92.5})
    ana = kpis_over(ANA_CALLS, ANA_DAY, cfg, 0, 3600)["agents"]["Ana"]
    # ready, ringing, talking, on hold, wrap-up: 1500 s of the 3600 scheduled (pauses do not count)
    assert (ana["adherence"], ana["scheduled_s"]) == (round(1500 / 3600, 6), 3600.0)
    assert ana["monitoring_score"] == 92.5
    half = kpis_over(ANA_CALLS, ANA_DAY, cfg, 0, 1800)["agents"]["Ana"]
    assert (half["adherence"], half["scheduled_s"]) == (round(1500 / 1800, 6), 1800.0)
    out = kpis_over([], [], cfg, 0, 3600)["agents"]
    assert out["Zoe"]["adherence"] is None and out["Zoe"]["scheduled_s"] == 0.0  # not scheduled then
    late = KpiConfig(schedules={"Ana": [(3000.0, 4000.0)]})
    assert kpis_over([], ANA_DAY, late, 0, 7200)["agents"]["Ana"]["adherence"] == 0.0  # logged out
    # attendance: present at all during the schedule
    assert ana["attendance"] == 1.0
    assert kpis_over([], ANA_DAY, late, 0, 7200)["agents"]["Ana"]["attendance"] == 0.0
    assert out["Zoe"]["attendance"] is None  # nothing scheduled in the window
    assert "attendance" not in kpis_over(ANA_CALLS, ANA_DAY, KpiConfig(), 0, 3600)["agents"]["Ana"]


# --- windows -------------------------------------------------------------------------------------


def test_a_visit_belongs_to_the_window_it_ended_in() -> None:
    visits = [
        visit("answered", 1000.0, 500, uid="started-before-ended-inside"),
        visit("answered", 999.999, 5, uid="ended-before"),
        visit("answered", 2000.0, 5, uid="ended-at-the-end"),
        visit("abandoned", 1999.5, 1, uid="inside"),
    ]
    q = kpis_over(visits, [], KpiConfig(), 1000.0, 2000.0)["queues"]["water"]
    assert (q["offered"], q["answered"], q["abandoned"], q["asa_s"]) == (3 - 1, 1, 1, 500.0)
    assert kpis_over(visits, [], KpiConfig(), 2000.0, 3000.0)["queues"]["water"]["offered"] == 1


def test_agent_states_are_clipped_to_the_window() -> None:
    ana = kpis_over([], ANA_DAY, KpiConfig(), 900, 1500)["agents"]["Ana"]
    # talking 900-910, on hold 910-970, talking 970-1030, wrap-up 1030-1090, break 1090-1390, ready 1390-1500
    assert ana["logged_in_s"] == 600.0 and ana["paused_s"] == {"break": 300.0}
    assert ana["occupancy"] == round(190 / 300, 6)
    assert "Ana" not in kpis_over([], ANA_DAY, KpiConfig(), 3600, 4000)["agents"]  # nothing overlaps


def test_today_follows_the_centres_time_zone() -> None:
    sh = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 11, 24, 1, 0, tzinfo=sh).timestamp()  # 2026-11-23 17:00 UTC
    before = datetime(2026, 11, 23, 23, 59, 59, tzinfo=sh).timestamp()
    midnight = datetime(2026, 11, 24, 0, 0, tzinfo=sh).timestamp()
    visits = [visit("answered", before, 1, uid="yesterday"), visit("answered", midnight, 2, uid="today")]
    shanghai, utc = KpiConfig(timezone="Asia/Shanghai"), KpiConfig(timezone="UTC")
    assert day_start(now, shanghai) == midnight
    assert day_start(now, utc) == datetime(2026, 11, 23, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    for cfg, offered in ((shanghai, 1), (utc, 2)):
        engine = KpiEngine(cfg)
        for v in visits:
            engine.add_visit(v)
        assert engine.today(now)["queues"]["water"]["offered"] == offered
        assert engine.rolling_24h(now)["queues"]["water"]["offered"] == 2


def test_intervals_are_closed_and_aligned_to_the_local_clock() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: hour boundaries are not UTC hour boundaries
    cfg = KpiConfig(timezone="Asia/Kolkata", interval_s=3600)
    now = datetime(2026, 11, 24, 10, 20, tzinfo=kolkata).timestamp()
    start, end = interval_bounds(now, cfg)
    assert (datetime.fromtimestamp(start, kolkata).hour, datetime.fromtimestamp(end, kolkata).hour) == (9, 10)
    assert end - start == 3600 and datetime.fromtimestamp(end, kolkata).minute == 0
    on_boundary = datetime(2026, 11, 24, 10, 0, tzinfo=kolkata).timestamp()
    assert interval_bounds(on_boundary, cfg) == (on_boundary - 3600, on_boundary)
    half_hours = KpiConfig()
    assert interval_bounds(1800 * 1000 + 5, half_hours) == (1800 * 999, 1800 * 1000)
    engine = KpiEngine(cfg)
    engine.add_visit(visit("answered", start, 3, uid="first-second-of-the-interval"))
    engine.add_visit(visit("answered", end, 3, uid="belongs-to-the-next"))
    assert engine.interval(now)["queues"]["water"]["offered"] == 1


def test_config_is_checked() -> None:
    for bad in ({"interval_s": 7 * 60}, {"ring_cadence_s": 0}, {"windows_s": ()}, {"timezone": "Mars/Base"}):
        with pytest.raises(ValueError):  # noqa: PT011 - each message names its key
            KpiConfig(**bad)
    with pytest.raises(ValueError, match="sl_threshold_s"):
        QueueKpiConfig(sl_threshold_s=-1)


# --- the incremental engine ----------------------------------------------------------------------


def test_engine_matches_the_pure_function_and_is_deterministic() -> None:
    visits, states = pipeline_records(TRACES / "mixed.ami.gz")
    cfg = KpiConfig(cost_per_hour=30.0, schedules={"Ana Torres": [(1795395500.0, 1795395600.0)]})
    now = max(v["end_ts"] for v in visits) + 1
    outputs = set()
    for seed in range(3):
        order_v, order_s = visits[:], states[:]
        random.Random(seed).shuffle(order_v)
        random.Random(seed).shuffle(order_s)
        engine = KpiEngine(cfg)
        for v in order_v:
            engine.add_visit(v)
            engine.add_visit(v)  # a record seen twice (after a restart, say) counts once
        for s in order_s:
            engine.add_agent_state(s)
        rolling = engine.rolling(now, 900)
        assert rolling == kpis_over(visits, states, cfg, now - 900, now)
        assert engine.today(now) == kpis_over(visits, states, cfg, day_start(now, cfg), now)
        outputs.add(dumps(rolling) + dumps(engine.rolling_24h(now)) + dumps(engine.interval(now)))
    assert len(outputs) == 1


def test_engine_memory_is_bounded_and_long_windows_are_refused() -> None:
    cfg = KpiConfig(windows_s=(900, 3600), interval_s=1800)
    engine = KpiEngine(cfg)
    assert engine.retention_s == 90_000  # 25 h: the longest local day
    t0 = 1_795_000_000.0
    for minute in range(3 * 24 * 60):
        t = t0 + 60 * minute
        engine.add_visit(visit("answered", t, 10, uid=f"c{minute}", agent="Ana", talk=30))
        engine.add_agent_state(state("Ana", "talking" if minute % 2 else "ready", t - 60, t))
    held_visits, held_states = engine.retained()
    assert held_visits <= 90_000 / 60 + 1 and held_states <= 90_000 / 60 + 1
    now = t0 + 60 * (3 * 24 * 60 - 1) + 1
    day = engine.rolling_24h(now)
    # the last record ends 1 s before now: the day's window holds 24 h of calls, and 24 h - 1 s of states
    assert day["queues"]["water"]["offered"] == 24 * 60 and day["agents"]["Ana"]["logged_in_s"] == 86_399
    assert engine.rolling(now, 3600)["agents"]["Ana"]["calls_per_hour"] == round(60 / (3599 / 3600), 6)
    with pytest.raises(ValueError, match="keeps"):
        engine.rolling(now, 2 * 86_400)
    assert len(engine._keys) == held_visits + held_states  # dedup keys are dropped with their records


def test_today_on_a_25_hour_day_is_kept_whole() -> None:
    ny = ZoneInfo("America/New_York")  # clocks go back on 2026-11-01
    cfg = KpiConfig(timezone="America/New_York")
    early = datetime(2026, 11, 1, 0, 10, tzinfo=ny).timestamp()
    now = datetime(2026, 11, 1, 23, 30, tzinfo=ny).timestamp()
    assert now - day_start(now, cfg) == 24.5 * 3600
    engine = KpiEngine(cfg)
    engine.add_visit(visit("answered", early, 1, uid="just-after-midnight"))
    engine.add_visit(visit("answered", now - 1, 1, uid="late"))
    assert engine.today(now)["queues"]["water"]["offered"] == 2
    assert engine.rolling_24h(now)["queues"]["water"]["offered"] == 1


@pytest.mark.parametrize("name", ["kpi", "kpibase", "kpisums", "kpiwindows"])
def test_core_kpi_module_is_sans_io(name: str) -> None:
    tree = ast.parse((Path(kpi_module.__file__).parent / f"{name}.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    # the core's own sans-IO modules (the value checks of core/values.py) are allowed
    assert all(m.startswith("acdbridge.core.") for m in modules if m.startswith("acdbridge"))
    imported |= {m.split(".")[0] for m in modules if not m.startswith("acdbridge")}
    imported -= {"__future__"}
    assert imported <= set(sys.stdlib_module_names)
    assert not imported & {"asyncio", "socket", "time", "threading", "selectors"}


# --- recorded traces against Asterisk's queue_log --------------------------------------------------


def pipeline_records(trace: Path) -> tuple[list[Rec], list[Rec]]:
    visits: list[Rec] = []
    states: list[Rec] = []
    pipeline = Pipeline(on_visit=visits.append, on_agent_state=states.append)
    for chunk in read_chunks(trace):
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return visits, states


def queue_log_of(trace: Path) -> Path:
    return trace.with_name(trace.name.removesuffix(".gz") + ".queue_log")


def queue_log_kpis(truth: list[TruthVisit], cfg: KpiConfig) -> dict[str, dict[str, Any]]:
    """The KPIs queue_log can give, from its own fields (ENTERQUEUE .. the visit's last event)."""
    out: dict[str, dict[str, Any]] = {}
    for queue in sorted({t.queue for t in truth}):
        qc = cfg.queue(queue)
        visits = [t for t in truth if t.queue == queue]
        n = Counter(t.outcome for t in visits)
        answered_waits = [float(t.wait_s or 0.0) for t in visits if t.outcome == "answered"]
        abandon_waits = [float(t.wait_s or 0.0) for t in visits if t.outcome == "abandoned"]
        short = sum(1 for w in abandon_waits if w <= qc.short_abandon_s)
        within = sum(1 for w in answered_waits if w <= qc.sl_threshold_s)
        base = len(visits) - short
        out[queue] = {
            "offered": len(visits),  # queue_log never sees a blocked caller
            "answered": n["answered"], "abandoned": n["abandoned"], "timeout": n["timeout"],
            "exit_empty": n["exit_empty"], "exit_key": n["exit_key"],
            "short_abandoned": short, "answered_within_sl": within,
            "service_level": round(within / base, 6) if base else None,
            "abandon_rate": round((n["abandoned"] - short) / base, 6) if base else None,
            "asa_s": sum(answered_waits) / len(answered_waits) if answered_waits else None,
            "percent_answered": round(n["answered"] / len(visits), 6),
            "transfers": sum(1 for t in visits if t.transfer),
            # visits whose whole-second wait is within 1 s of a threshold may fall either side
            "borderline_sl": sum(1 for w in answered_waits if abs(w - qc.sl_threshold_s) <= 1.0),
            "borderline_short": sum(1 for w in abandon_waits if abs(w - qc.short_abandon_s) <= 1.0),
        }  # fmt: skip
    return out


DEFAULTS = KpiConfig()
# thresholds no recorded wait comes within 1 s of, in queue_log or in the tracker: counts are exact
CLEAR = KpiConfig(
    queues={
        "water": QueueKpiConfig(sl_threshold_s=10.5, short_abandon_s=3.5),
        "broadband": QueueKpiConfig(sl_threshold_s=3.5, short_abandon_s=10.0),
        "complaints": QueueKpiConfig(sl_threshold_s=20.0, short_abandon_s=4.0),
    }
)


@pytest.mark.parametrize("cfg", [CLEAR, DEFAULTS], ids=["clear-thresholds", "defaults"])
@pytest.mark.parametrize("trace", ALL, ids=lambda p: p.name)
def test_trace_kpis_match_kpis_from_queue_log(trace: Path, cfg: KpiConfig) -> None:
    ours = replay_kpis(trace, Config(kpi=cfg))["queues"]  # what `acdbridge replay TRACE --kpi` prints
    truth = queue_log_kpis(truth_visits(queuelog.read(queue_log_of(trace))), cfg)
    assert truth and set(truth) <= set(ours)
    for queue, q in ours.items():
        if queue not in truth:  # only blocked callers: queue_log has no line for them
            assert q["offered"] == q["blocked"], queue
            continue
        t = truth[queue]
        exact = ("answered", "abandoned", "timeout", "exit_empty", "exit_key", "transfers")
        assert {m: q[m] for m in exact} == {m: t[m] for m in exact}, queue
        assert q["offered"] - q["blocked"] == t["offered"], queue
        assert round(q["answered"] / (q["offered"] - q["blocked"]), 6) == t["percent_answered"], queue
        assert abs(q["short_abandoned"] - t["short_abandoned"]) <= t["borderline_short"], queue
        assert abs(q["answered_within_sl"] - t["answered_within_sl"]) <= t["borderline_sl"], queue
        if t["asa_s"] is None:
            assert q["asa_s"] is None
        else:
            assert abs(q["asa_s"] - t["asa_s"]) <= 1.0, queue  # queue_log has whole seconds
        if cfg is CLEAR:
            assert t["borderline_sl"] == t["borderline_short"] == 0, queue
            assert (q["service_level"], q["abandon_rate"]) == (t["service_level"], t["abandon_rate"]), queue
            assert (q["short_abandoned"], q["answered_within_sl"]) == (
                t["short_abandoned"],
                t["answered_within_sl"],
            )


def test_the_traces_exercise_the_interesting_cases() -> None:
    """The queue_log comparison above is only as good as what the traces hold."""
    totals: Counter[str] = Counter()
    for trace in ALL:
        visits, states = pipeline_records(trace)
        for q in kpis_over(visits, states, CLEAR)["queues"].values():
            totals.update({m: q[m] for m in ("blocked", "short_abandoned", "exit_key", "timeout")})
            totals["transfers"] += q["transfers"]
            totals["sl_missed"] += q["answered"] - q["answered_within_sl"]
            totals["long_abandoned"] += q["abandoned"] - q["short_abandoned"]
    assert all(totals[m] > 0 for m in ("blocked", "short_abandoned", "exit_key", "timeout", "transfers",
                                        "sl_missed", "long_abandoned")), totals  # fmt: skip


def test_replay_kpi_command_prints_the_same_with_its_config(tmp_path: Path) -> None:
    config = tmp_path / "acd.toml"
    config.write_text(
        '[kpi]\ntimezone = "Asia/Shanghai"\n[queues.water]\nsl_threshold_s = 30\nshort_abandon_s = 3\n'
        '[ami]\nsecret = "test-secret"\n'  # a config without an AMI secret is refused (issue 11)
    )
    cmd = [
        sys.executable,
        "-m",
        "acdbridge",
        "replay",
        str(TRACES / "mixed.ami.gz"),
        "--kpi",
        "--config",
        str(config),
    ]
    printed = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    expected = replay_kpis(TRACES / "mixed.ami.gz", load_config(config))
    assert printed == json.loads(json.dumps(expected))
    assert (
        printed["queues"]["water"]["sl_threshold_s"] == 30.0
        and printed["queues"]["water"]["short_abandon_s"] == 3.0
    )


def test_a_visit_without_hold_or_ring_time_counts_without_them() -> None:
    """Visits backfilled from queue_log know neither (their talk_s includes the hold)."""
    from acdbridge.replay import replay_records

    visits = replay_records(TRACES / "sip_hold.ami")
    answered = [v for v in visits if v["outcome"] == "answered"]
    assert answered and any(v["hold_s"] for v in answered)
    blind = [{**v, "hold_s": None, "hold_count": None, "ring_s": None} for v in answered]
    both = kpis_over([*answered, *blind], [], KpiConfig())["queues"]
    only_known = kpis_over(answered, [], KpiConfig())["queues"]
    for queue, figures in both.items():
        assert figures["answered"] == 2 * only_known[queue]["answered"]
        assert figures["avg_hold_s"] == only_known[queue]["avg_hold_s"]  # the unknown ones are left out
        assert figures["avg_rings"] == only_known[queue]["avg_rings"]
        assert figures["aht_s"] is not None and figures["aht_s"] < only_known[queue]["aht_s"]
