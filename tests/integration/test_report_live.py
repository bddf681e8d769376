"""`acdbridge report` on the live daemon's own store, after real lab traffic: its rows equal the KPI
windows the running daemon served on /metrics (the last closed 15-minute interval and "today"),
and its day totals equal KPIs computed from the queue_log Asterisk wrote for the same calls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from acdbridge.adapters.metrics import QUEUE_WINDOW_METRICS
from acdbridge.config import load
from acdbridge.core.kpi import day_start, interval_bounds
from acdbridge.lab import pbx, queuelog, scenario, traffic
from tests.test_kpi import queue_log_kpis
from tests.truth import truth_visits

from .daemon_harness import DaemonProcess
from .test_daemon import WINDOWS_AT, quiet, settled

KPI = '[kpi]\ninterval_min = 15\ntimezone = "Europe/Berlin"\n'


def report(daemon: DaemonProcess, since: float, until: float, interval: str) -> list[dict[str, Any]]:
    period = ["--from", repr(since), "--to", repr(until), "--interval", interval, "--by", "queue"]
    argv = [sys.executable, "-m", "acdbridge", "report", "--config", str(daemon.config), *period]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)["rows"]
    return rows


def served(scraped: dict[str, float], window: str) -> dict[str, dict[str, float]]:
    """The queue KPI gauges the daemon served for one window: queue -> {kpi: value}."""
    names = {metric: kpi for kpi, metric in QUEUE_WINDOW_METRICS.items()}
    out: dict[str, dict[str, float]] = {}
    for sample, value in scraped.items():
        name, _, labels = sample.partition("{")
        if name in names and f'window="{window}"' in labels:
            queue = labels.split('queue="')[1].split('"')[0]
            out.setdefault(queue, {})[names[name]] = value
    return out


def as_served(row: dict[str, Any]) -> dict[str, float]:
    """A report row as /metrics shows it: a null figure is no sample."""
    return {k: float(row[k]) for k in QUEUE_WINDOW_METRICS if row.get(k) is not None}


def test_report_equals_the_live_windows_and_queue_log(lab: pbx.LabSettings, tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, lab.ami_port, extra=KPI)
    daemon.start()
    started = time.time()
    run = asyncio.run(traffic.run_async(scenario.load("mixed"), lab, quiet))
    assert run.ok, run.summary()
    time.sleep(12)  # the last wrap-up ends and is stored (as test_daemon does)
    scraped = settled(daemon)
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
    cfg = load(daemon.config, for_daemon=False)
    at = scraped[WINDOWS_AT]
    # the last closed 15-minute interval at the daemon's last KPI refresh: one report row a queue
    lo, hi = interval_bounds(at, cfg.kpi)
    assert hi - lo == 900
    rows = report(daemon, lo, hi, "15m")
    assert {r["queue"]: as_served(r) for r in rows} == served(scraped, "interval")
    # "today" so far: one day row, the whole run's calls unless it began before local midnight
    today = report(daemon, day_start(at, cfg.kpi), at, "day")
    live_today = served(scraped, "today")
    assert {r["queue"]: as_served(r) for r in today} == live_today
    assert sum(q["offered"] for q in live_today.values()) >= 25
    # day totals: the calls of the run's day(s) against queue_log's own figures for the same calls
    days = report(daemon, day_start(started, cfg.kpi), at, "day")
    truth = queue_log_kpis(truth_visits(queuelog.read(lab.queue_log, since=started)), cfg.kpi)
    totals: dict[str, dict[str, float]] = {}
    for r in days:
        for key in (
            "offered",
            "blocked",
            "answered",
            "abandoned",
            "timeout",
            "exit_empty",
            "exit_key",
            "transfers",
        ):
            totals.setdefault(r["queue"], {}).setdefault(key, 0)
            totals[r["queue"]][key] += r[key]
    assert set(truth) <= set(totals)
    for queue, t in totals.items():
        q = truth.get(queue, {"offered": 0})
        assert t["offered"] - t["blocked"] == q["offered"], queue  # queue_log never sees a blocked caller
        if queue in truth:
            exact = ("answered", "abandoned", "timeout", "exit_empty", "exit_key", "transfers")
            assert {k: t[k] for k in exact} == {k: q[k] for k in exact}, queue
