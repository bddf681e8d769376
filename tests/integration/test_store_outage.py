"""PostgreSQL stopped for 30 s mid-traffic under `acdbridge run` on the real lab: the daemon keeps
tracking, its journal keeps every AMI byte, writes resume by themselves once the database is back,
and what ends up in PostgreSQL is checked against Asterisk's queue_log visit by visit (outcome,
wait, talk+hold, agent, ring-no-answer count, transfer): all match, none twice, none left out.

Why: a store outage is the one failure the AMI side never sees. The writer (runtime/writer.py)
retries an unreachable database (StoreUnavailable) without end, with capped backoff, the records
waiting in its bounded queue; the store (adapters/store/postgres.py) reconnects on the next call
and its idempotent keys make a batch resent after a lost COMMIT harmless. Here that is put to
work by a real server going away (`pg_ctl stop -m immediate`: every session dies, no goodbye)
while calls start and end, then coming back on the same port and data directory.

The AMI link is never cut and `ami.queue_log` is not set: every visit must come from the live
AMI tracking (time_source "event"), none rebuilt from queue_log, so a visit that ended while the
database was down reached the store only because the daemon held it and wrote it afterwards.
The daemon's /metrics are sampled twice a second throughout (a thread): they must show the
outage (store write errors, a records backlog), the tracking going on meanwhile (finished visits
counted), nothing dropped, lost or left out of the journal, and /metrics answering every time."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg

from acdbridge.adapters.store import PostgresStore, Record
from acdbridge.lab import pbx, queuelog, scenario, traffic
from acdbridge.replay import dumps, replay_records
from tests.pg import PgCluster
from tests.truth import compare, truth_visits

from .daemon_harness import DaemonProcess, free_port

OUTAGE_AFTER_S = 8.0  # into the traffic: the first calls are in progress
OUTAGE_S = 30.0
RESUME_WITHIN_S = 60.0  # after the traffic, for the backlog to reach the store (backoff <= 30 s)
SERIES = {  # field -> (series, label filter)
    "write_errors": ("acd_store_write_errors_total", ""),
    "backlog": ("acd_internal_queue_depth", 'queue_name="records"'),
    "dropped": ("acd_queue_drops_total", 'queue_name="records"'),
    "lost": ("acd_store_records_lost_total", ""),
    "writes_ok": ("acd_store_write_seconds_count", ""),  # batches written
    "visits_counted": ("acd_queue_calls_total", ""),
    "journal_records": ("acd_journal_records_total", ""),
    "journal_dropped": ("acd_journal_dropped_records_total", ""),
    "ami_connected": ("acd_ami_connected", ""),
}


def quiet(_line: str) -> None:
    pass


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    alive: bool  # the daemon process had not exited
    values: dict[str, float] | None  # None: /metrics did not answer
    rss_kib: int
    health: int  # /healthz's status (0: no answer)


def scrape(port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    values = {}
    for key, (series, labels) in SERIES.items():
        pattern = rf"^{series}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$"
        values[key] = sum(
            float(m.group(2)) for m in re.finditer(pattern, text, re.M) if labels in (m.group(1) or "")
        )
    return values


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else 0


class Monitor:
    """/metrics and the daemon's RSS every 0.5 s in a thread, until stopped."""

    def __init__(self, daemon: DaemonProcess, port: int) -> None:
        self.daemon, self.port = daemon, port
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        proc = self.daemon.proc
        assert proc is not None
        while not self._stop.is_set():
            alive = proc.poll() is None
            at = time.time()
            self.samples.append(Sample(at, alive, scrape(self.port), rss_kib(proc.pid), health(self.port)))
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def between(self, a: float, b: float) -> list[Sample]:
        return [s for s in self.samples if a <= s.at <= b]

    def last_before(self, t: float) -> dict[str, float]:
        answered = [s.values for s in self.samples if s.at <= t and s.values is not None]
        assert answered, f"no /metrics sample before {t}"
        return answered[-1]


def pg_visits(url: str, password: str) -> list[Record]:
    store = PostgresStore(url, password=password)
    try:
        return store.visits(0, 1e12)
    finally:
        store.close()


def stored_ending_between(url: str, password: str, a: float, b: float) -> int:
    with psycopg.connect(url, password=password, connect_timeout=5) as db:
        row = db.execute("SELECT count(*) FROM visits WHERE end_ts > %s AND end_ts < %s", (a, b)).fetchone()
    return int(row[0]) if row else 0


def test_postgres_stopped_for_30_s_mid_traffic_loses_nothing_and_stores_nothing_twice(
    lab: pbx.LabSettings, pg_cluster: PgCluster, pg_url: str, tmp_path: Path
) -> None:
    password = tmp_path / "store-password"
    password.write_text(pg_cluster.password + "\n")
    password.chmod(0o600)
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port, extra="[journal]\ncheckpoint_s = 1\n")
    sqlite_store = f'[store]\npath = "{daemon.store_path}"\n'
    config = daemon.config.read_text()
    assert sqlite_store in config
    daemon.config.write_text(
        config.replace(sqlite_store, f'[store]\nurl = "{pg_url}"\npassword_file = "{password}"\n')
    )
    daemon.start()
    started = time.time()
    monitor = Monitor(daemon, port)
    deadline = time.monotonic() + 10  # the first metrics are published (before: no series at all)
    while not any(s.values and s.values["ami_connected"] == 1 for s in monitor.samples):
        assert time.monotonic() < deadline, "no acd_ami_connected 1 on /metrics"
        time.sleep(0.1)

    async def traffic_with_outage() -> tuple[traffic.TrafficReport, float, float]:
        run = asyncio.create_task(traffic.run_async(scenario.load("mixed"), lab, quiet))
        await asyncio.sleep(OUTAGE_AFTER_S)
        assert not run.done(), "the traffic ended before the outage"
        try:
            await asyncio.to_thread(pg_cluster.stop, "immediate")
            down = time.time()
            await asyncio.sleep(OUTAGE_S)
        finally:  # the session's cluster: whatever happens, it runs again for the next test
            await asyncio.to_thread(pg_cluster.start)
        up = time.time()
        return await asyncio.wait_for(run, 300), down, up

    try:
        report, down, up = asyncio.run(traffic_with_outage())
        assert report.ok, report.summary()
        time.sleep(13)  # the last wrap-ups (10 s at most in the sample config) end before the stop
        # the writes resumed by themselves, before any stop: the backlog reached PostgreSQL
        deadline = time.monotonic() + RESUME_WITHIN_S
        while time.monotonic() < deadline:
            backlog = monitor.last_before(time.time())["backlog"]
            if backlog == 0 and stored_ending_between(pg_url, pg_cluster.password, down, up) > 0:
                break
            time.sleep(0.5)
        resumed_by = time.time()
        assert stored_ending_between(pg_url, pg_cluster.password, down, up) > 0, "the outage's visits?"
        assert monitor.last_before(resumed_by)["backlog"] == 0
        time.sleep(1)  # one more sample with everything written
    finally:
        monitor.stop()
        samples_json = json.dumps([vars(s) for s in monitor.samples])
        (tmp_path / "samples.json").write_text(samples_json)  # for a look after a failure
    proc = daemon.proc
    assert proc is not None and proc.poll() is None, daemon.log_text()[-3000:]  # alive throughout
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
    log = daemon.log_text()

    # the outage really hit, and the daemon went on meanwhile
    samples = [s for s in monitor.samples if s.at >= started]
    samples = samples[next(i for i, s in enumerate(samples) if s.values and s.values["ami_connected"]) :]
    assert all(s.alive for s in samples), "the daemon exited during the test"
    unanswered = [s.at for s in samples if s.values is None]
    assert not unanswered, f"/metrics did not answer at {unanswered}"
    before, at_up = monitor.last_before(down), monitor.last_before(up)
    final = monitor.last_before(resumed_by + 1)
    assert before["write_errors"] == 0, log[-3000:]  # none before the outage
    assert at_up["write_errors"] >= 3, (at_up, log[-3000:])  # failed, retried with backoff
    assert "store_write_failed" in log and "is unavailable" in log, log[-3000:]
    assert pg_cluster.password not in log
    assert at_up["visits_counted"] > before["visits_counted"], (before, at_up)  # still tracking
    assert at_up["journal_records"] > before["journal_records"]  # and journaling
    assert all(s.values["ami_connected"] == 1 for s in samples if s.values is not None)
    outage = [s.values for s in monitor.between(down, up) if s.values is not None]
    peak_backlog = max(v["backlog"] for v in outage)
    assert peak_backlog >= 1, "nothing waited for the database"
    # nothing dropped, lost or left out of the journal; the memory stayed bounded
    assert final["dropped"] == 0 and final["lost"] == 0 and final["journal_dropped"] == 0, final
    written = [s for s in samples if s.at > up and s.values and s.values["writes_ok"] > at_up["writes_ok"]]
    first_write = written[0]  # the first batch written after the outage; no failure since
    assert first_write.values is not None and final["write_errors"] == first_write.values["write_errors"]
    # /healthz: 503 while writes fail, 200 again once one succeeds (not for ever after an outage)
    assert 503 in {s.health for s in monitor.between(down, up)}, "healthz never saw the outage"
    assert samples[-1].health == 200, samples[-1]
    rss = [s.rss_kib for s in samples if s.rss_kib]
    assert max(rss) < min(rss) + 64 * 1024, (min(rss), max(rss))

    # what PostgreSQL holds, visit by visit against queue_log
    entries = queuelog.read(lab.queue_log, since=started)
    truth = truth_visits(entries)
    stored = pg_visits(pg_url, pg_cluster.password)
    keys = [(v["uniqueid"], v["queue"], v["enter_ts"]) for v in stored]
    assert len(keys) == len(set(keys))  # none twice
    assert compare(truth, stored) == []
    assert len(truth) >= 12, len(truth)
    assert {v["time_source"] for v in stored} == {"event"}  # tracked live, none rebuilt
    ended_inside = [v for v in stored if down < v["end_ts"] < up]
    assert ended_inside, "no visit ended during the outage"
    # the journal kept everything: it replays to exactly what was stored
    assert sorted(map(dumps, replay_records(daemon.capture))) == sorted(map(dumps, stored))
    print(
        f"\noutage {down - started:.1f}-{up - started:.1f} s after the start; write errors "
        f"{at_up['write_errors']:.0f} during it, {final['write_errors']:.0f} in all; peak backlog "
        f"{peak_backlog:.0f} records; {len(ended_inside)} of {len(stored)} visits ended inside it; "
        f"RSS {min(rss) // 1024}-{max(rss) // 1024} MiB; the first write {first_write.at - up:.1f} s after"
    )
