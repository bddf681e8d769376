"""Workforce figures: the load a KPI window measured, the model it picks, staffed agents, the
forecast (weights, missing weeks, DST), and the daemon's forecast history read from a real
SQLite store into the views and /metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acdbridge.adapters.metrics import render, workforce_families
from acdbridge.adapters.store.sqlite import SqliteStore
from acdbridge.cli import main
from acdbridge.core import erlang
from acdbridge.core.forecast import Forecast, SlotLoad, forecast, history_for, slot_loads, week_back, weights
from acdbridge.core.kpi import KpiConfig, QueueKpiConfig
from acdbridge.core.tallies import LiveGauges
from acdbridge.core.workforce import Load, load_of, needs, patience_of, required, staffed
from acdbridge.replay import replay, replay_metrics
from acdbridge.runtime.forecastjob import ForecastJob
from tests.test_report import TRACES

QC = QueueKpiConfig(sl_threshold_s=20.0, sl_target=0.8)


def test_load_and_model_from_a_window() -> None:
    q = {"offered": 100, "blocked": 0, "abandoned": 10, "avg_wait_s": 12.0, "aht_s": 180.0}
    assert patience_of(q) == pytest.approx(12.0 * 100 / 10)  # every caller's wait / abandons
    load = load_of(q, 1800.0)
    assert load == Load(100.0, 1800.0, 180.0, 120.0) and load.erlangs == pytest.approx(10.0)
    assert required(load, QC) == erlang.required_agents_a(100 / 1800, 180.0, 120.0, 20.0, 0.8)
    few = dict(q, abandoned=4)  # too few abandons to tell the patience: Erlang C
    assert patience_of(few) is None
    assert required(load_of(few, 1800.0), QC) == erlang.required_agents(10.0, 180.0, 20.0, 0.8) == 14
    assert required(load_of({"offered": 0}, 1800.0), QC) == 0
    assert required(load_of({"offered": 3, "aht_s": None}, 1800.0), QC) is None  # nothing answered yet
    assert required(load_of(few, 1800.0), QueueKpiConfig(sl_target=1.0)) is None  # unreachable target


def test_staffed_counts_logged_in_and_not_paused() -> None:
    agents = {("water", "ready"): 2, ("water", "paused"): 3, ("water", "talking"): 1, ("water", "wrapup"): 1,
              ("water", "ringing"): 1, ("water", "on_hold"): 1, ("fire", "paused"): 2}  # fmt: skip
    live = LiveGauges({}, {}, agents, {})
    assert staffed(live) == {"water": 6, "fire": 0}


def test_forecast_weights_newer_weeks_heavier() -> None:
    assert weights(4) == [4.0, 3.0, 2.0, 1.0]
    hist: list[SlotLoad | None] = [SlotLoad(40, 30, 30 * 200.0), SlotLoad(30, 30, 30 * 100.0), None, None]
    f = forecast(hist, recent_calls=99.0, recent_aht_s=50.0)
    assert f == Forecast((4 * 40 + 3 * 30) / 7, (4 * 30 * 200 + 3 * 30 * 100) / (7 * 30), "history", 2)
    assert forecast([None] * 4, 12.0, 60.0) == Forecast(12.0, 60.0, "recent", 0)
    quiet = forecast([SlotLoad(0, 0, 0.0)] * 4, 12.0, 60.0)  # a quiet slot the store covers: 0 calls
    assert quiet.calls == 0 and quiet.aht_s == 60.0 and quiet.source == "history"


def test_week_back_keeps_the_local_clock_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 3, 30, 8, 0, tzinfo=berlin).timestamp()  # the Monday after spring forward
    back = datetime.fromtimestamp(week_back(after, 1, berlin), berlin)
    assert (back.day, back.hour, back.minute) == (23, 8, 0)
    assert after - week_back(after, 1, berlin) == 7 * 86400 - 3600


def test_slot_loads_sum_handle_time_as_aht_does() -> None:
    answered = {"queue": "water", "outcome": "answered", "talk_s": 100.0, "hold_s": 10.0, "wrap_s": None}
    visits: list[dict[str, Any]] = [answered, {"queue": "water", "outcome": "abandoned"},
                                    {"queue": "fire", "outcome": "blocked"}]  # fmt: skip
    assert slot_loads(visits) == {"water": SlotLoad(2, 1, 110.0), "fire": SlotLoad(1, 0, 0.0)}
    assert history_for([{"water": SlotLoad(2, 1, 1.0)}, None], ["water", "fire"]) == {
        "fire": [SlotLoad(0, 0, 0.0), None], "water": [SlotLoad(2, 1, 1.0), None]}  # fmt: skip


def test_needs_use_the_forecast_for_next_and_the_recent_rate_without_one() -> None:
    recent = {"water": {"offered": 100, "aht_s": 180.0}, "fire": {"offered": 50, "aht_s": 180.0}}
    qcs = {"water": QC, "fire": QC}
    got = needs(recent, 1800.0, qcs, {"water": Forecast(200.0, 180.0, "history", 4)})
    assert got["water"].now == 14 and got["water"].next == erlang.required_agents(20.0, 180.0, 20.0, 0.8)
    assert got["fire"].now == got["fire"].next == erlang.required_agents(5.0, 180.0, 20.0, 0.8)
    text = render_families(workforce_families(got, {"water": 9}))
    assert 'acd_queue_required_agents{horizon="now",queue="water"} 14.0' in text
    assert 'acd_queue_staffed_agents{queue="water"} 9.0' in text
    assert 'acd_queue_staffed_agents{queue="fire"} 0.0' in text
    assert 'acd_queue_forecast_calls{queue="water",source="history"} 200.0' in text


def render_families(families: list[Any]) -> str:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

    class One(Collector):
        def collect(self) -> Any:
            return iter(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    return render(registry).decode()


def _visit(i: int, end: float, outcome: str = "answered") -> dict[str, Any]:
    return {"uniqueid": f"u{i}", "queue": "water", "enter_ts": end - 30.0, "end_ts": end, "outcome": outcome,
            "agent": "Ana" if outcome == "answered" else None, "wait_s": 10.0, "talk_s": 150.0, "hold_s": 0.0,
            "wrap_s": 30.0, "ring_s": 5.0, "transfer": None, "ring_attempts": []}  # fmt: skip


def test_forecast_job_reads_the_weeks_from_a_real_store(tmp_path: Path) -> None:
    """The daemon's history read: the same half hour 1 and 2 weeks back from a real SQLite store;
    3 and 4 weeks back are before the store began (no history, not a quiet slot)."""
    cfg = KpiConfig(queues={"water": QC}, timezone="Europe/Berlin")
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=cfg.tz).timestamp()  # the Monday the next interval starts
    store = SqliteStore(tmp_path / "s.sqlite")
    week = 7 * 86400.0
    visits = [_visit(i, t0 - week + 60.0 * i) for i in range(20)]  # 20 calls a week ago
    visits += [_visit(100 + i, t0 - 2 * week + 90.0 * i) for i in range(10)]  # 10 two weeks ago
    visits += [_visit(200, t0 - 2 * week + 3000.0, "abandoned")]  # after the slot: not in it
    store.write(visits, [])
    views = replay_views(cfg)
    job = ForecastJob(store, views, clock=lambda: t0 - 600.0)  # 07:50: in progress 07:30-08:00
    asyncio.run(job.tick())
    assert views.history_for == t0 and job.reads == 1
    assert views.history["water"] == [SlotLoad(20, 20, 20 * 180.0), SlotLoad(10, 10, 10 * 180.0), None, None]
    asyncio.run(job.tick())  # same next interval: not read again
    assert job.reads == 1
    views.refresh_windows(t0 - 600.0)
    need = views.needs["water"]
    assert need.forecast == Forecast((4 * 20 + 3 * 10) / 7, 180.0, "history", 2)
    a = need.forecast.calls / 1800.0 * 180.0
    assert need.next == erlang.required_agents(a, 180.0, 20.0, 0.8) and need.now == 0
    store.close()


def replay_views(cfg: KpiConfig) -> Any:
    from acdbridge.runtime.engine import Engine
    from acdbridge.runtime.views import Views

    return Views(Engine(kpi=cfg), cfg)


def test_replayed_metrics_carry_required_and_staffed() -> None:
    """`replay --metrics` (the daemon's code): "now" from the last half hour's own KPIs; no store,
    so "next" is the recent rate too."""
    text = replay_metrics(TRACES / "mixed.ami.gz").decode()
    engine = replay(TRACES / "mixed.ami.gz", finish=False)
    recent = engine.kpis.rolling(engine.now, 1800.0)["queues"]
    for q in ("water", "broadband"):
        n = required(load_of(recent[q], 1800.0), KpiConfig().queue(q))
        assert n is not None and n >= 1
        assert f'acd_queue_required_agents{{horizon="now",queue="{q}"}} {n:.1f}' in text
        assert f'acd_queue_required_agents{{horizon="next",queue="{q}"}} {n:.1f}' in text
        assert f'acd_queue_staffed_agents{{queue="{q}"}} 0.0' in text  # the trace ends with everyone out


def test_workforce_csv_forecasts_each_interval_from_the_weeks_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --format workforce-csv` over a real SQLite store: 20, 30 and 40 calls in the
    08:00 half hour 3, 2 and 1 weeks before Monday 2026-11-23 (UTC), none at 08:30."""
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    week = 7 * 86400.0
    visits = [_visit(1000 * k + i, t0 - k * week + 30.0 * i) for k, n in ((3, 20), (2, 30), (1, 40))
              for i in range(n)]  # fmt: skip
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write(visits, [])
    store.close()
    args = ["report", "--db", str(tmp_path / "s.sqlite"), "--from", "2026-11-23T08:00", "--to",
            "2026-11-23T09:00", "--interval", "30m", "--by", "queue"]  # fmt: skip
    assert main([*args, "--format", "workforce-csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "queue,start,end,forecast_calls,aht_s,required_agents,model,weeks,source"
    calls = (4 * 40 + 3 * 30 + 2 * 20 + 0) / (4 + 3 + 2)  # week 4 is before the store began
    n = erlang.required_agents(calls / 1800 * 180.0, 180.0, 20.0, 0.8)
    first = "water,2026-11-23T08:00:00+00:00,2026-11-23T08:30:00+00:00"
    assert lines[1] == f"{first},{round(calls, 2)},180.0,{n},erlang_c,3,history"
    assert lines[2] == "water,2026-11-23T08:30:00+00:00,2026-11-23T09:00:00+00:00,0.0,,0,erlang_c,3,history"
    assert len(lines) == 3
    # a day before the store: no week to forecast from
    early = [*args[:4], "2026-10-01T08:00", "--to", "2026-10-01T08:30", *args[7:]]
    assert main([*early, "--format", "workforce-csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == []  # no queue known: no rows
    # the queue report's rows carry the interval's own required agents
    assert main([*args[:4], "2026-11-16T08:00", "--to", "2026-11-16T08:30", *args[7:]]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["offered"] == 40 and row["required_agents"] == erlang.required_agents(4.0, 180.0, 20.0, 0.8)
    assert main([*args[:-1], "agent", "--format", "workforce-csv"]) == 2
    assert "--format workforce-csv is per queue: give --by queue" in capsys.readouterr().err


def test_without_a_week_in_the_store_next_is_the_recent_load(tmp_path: Path) -> None:
    """An empty store (a new site): every week is None, no forecast, "next" = "now", so the daemon
    serves what `replay --metrics` serves."""
    cfg = KpiConfig(queues={"water": QC})
    store = SqliteStore(tmp_path / "empty.sqlite")
    views = replay_views(cfg)
    asyncio.run(ForecastJob(store, views, clock=lambda: 1.8e9).tick())
    assert views.history == {"water": [None, None, None, None]}
    views.refresh_windows(1.8e9)
    assert (
        views.needs["water"].forecast is None and views.needs["water"].next == views.needs["water"].now == 0
    )
    store.close()
