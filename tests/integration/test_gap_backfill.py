"""A 30 s AMI outage mid-traffic on the real lab (the link cut through a proxy that refuses to
reconnect meanwhile), calls starting and ending inside it: with `ami.queue_log` set the daemon
rebuilds the gap's visits from Asterisk's queue_log, and what it stores is checked against
queue_log visit by visit, every visit once, none left out. The daemon's own journal, which now
holds the queue_log lines it read, replays to exactly what it stored (one engine)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from acdbridge.lab import pbx, queuelog, scenario, traffic
from acdbridge.replay import dumps, replay_records
from tests.truth import compare, truth_visits

from .daemon_harness import CuttableProxy, DaemonProcess

OUTAGE_S = 30.0


def quiet(_line: str) -> None:
    pass


def test_a_30_s_outage_is_backfilled_from_queue_log(lab: pbx.LabSettings, tmp_path: Path) -> None:
    proxy = CuttableProxy(lab.ami_port)
    daemon = DaemonProcess(tmp_path, proxy.port, ami_extra=f'queue_log = "{lab.queue_log}"\n')
    daemon.start()
    started = time.time()

    async def traffic_with_outage() -> tuple[traffic.TrafficReport, tuple[float, float]]:
        run = asyncio.create_task(traffic.run_async(scenario.load("mixed"), lab, quiet))
        await asyncio.sleep(8)
        cut = time.time()
        proxy.cut_for(OUTAGE_S)
        return await run, (cut, cut + OUTAGE_S)

    try:
        report, (cut, back) = asyncio.run(traffic_with_outage())
    finally:
        proxy.close()
    assert report.ok, report.summary()
    time.sleep(13)  # the last wrap-ups (10 s at most in the sample config) end before the stop
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
    log = daemon.log_text()
    assert log.count("ami_connected") >= 2 and '"event": "gap_backfilled"' in log, log[-3000:]
    entries = queuelog.read(lab.queue_log, since=started)
    inside = {(e.callid, e.queue) for e in entries if cut - 1 < e.time <= back}
    truth = truth_visits(entries)
    stored = daemon.stored_visits()
    keys = [(v["uniqueid"], v["queue"], v["enter_ts"]) for v in stored]
    assert len(keys) == len(set(keys))  # none twice
    rebuilt = [v for v in stored if v["time_source"] == "queue_log"]
    begun_and_ended_inside = [
        t
        for t in truth
        if (t.callid, t.queue) in inside and min(e.time for e in entries if e.callid == t.callid) > cut
    ]
    assert len(rebuilt) >= 3 and begun_and_ended_inside, (len(rebuilt), inside)
    assert compare(truth, stored) == [], [v for v in stored if v["time_source"] != "event"]
    # one engine: the journal, with the queue_log lines it read, replays to what was stored
    assert sorted(map(dumps, replay_records(daemon.capture))) == sorted(map(dumps, stored))
