"""A real Prometheus (Debian's package) scrapes `acdbridge run` while lab traffic runs: what it
stored must agree with the call records in acdbridge's store, across a daemon restart."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from acdbridge.lab import pbx, scenario, traffic

from .daemon_harness import DaemonProcess, query


def test_prometheus_scrapes_what_the_store_holds(
    lab: pbx.LabSettings, tmp_path: Path, prometheus: tuple[int, int]
) -> None:
    web, target = prometheus
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=target)
    daemon.start()
    try:
        asyncio.run(traffic.run_async(scenario.load("smoke"), lab, print))
        assert daemon.stop() == 0
        daemon.start()  # counters must go on from the store, not restart at zero
        asyncio.run(traffic.run_async(scenario.load("sip_hold"), lab, print))
        deadline = time.monotonic() + 20  # the last wrap-up ends, then a few scrapes
        while len(daemon.stored_visits()) < 5 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
        check_prometheus_against_store(web, daemon)
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            assert daemon.stop() == 0


def check_prometheus_against_store(web: int, daemon: DaemonProcess) -> None:
    stored = Counter((v["queue"], v["outcome"]) for v in daemon.stored_visits())
    assert sum(stored.values()) == 5
    scraped = {
        (str(s["metric"]["queue"]), str(s["metric"]["outcome"])): int(float(s["value"][1]))  # type: ignore[index]
        for s in query(web, "acd_queue_calls_total")
    }
    assert scraped == dict(stored)
    assert query(web, "resets(acd_queue_calls_total[5m]) > 0") == []  # the restart was no reset
    assert [s["value"][1] for s in query(web, 'up{job="acdbridge"}')] == ["1"]  # type: ignore[index]
    holds = query(web, 'acd_hold_seconds_count{queue="water"}')
    assert holds and float(holds[0]["value"][1]) == stored[("water", "answered")]  # type: ignore[index]
