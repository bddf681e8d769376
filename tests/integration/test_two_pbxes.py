"""Two PBXes, one PostgreSQL, one Prometheus (docs/scale.md): the centre-wide figures add up.

Two real `acdbridge run` daemons at once, each with its own `[store] pbx` id and the same
`[store] url`: "lab" on the real Asterisk lab while the lab's `mixed` traffic runs, "load" on a
fake Asterisk 22 AMI server (benchmarks/fake_pbx.py) replaying copies of the recorded lab traces
(benchmarks/ami_load.py's `load`, each copy with its own ids) at a fixed rate, each frame's
Timestamp its send time. One Prometheus scrapes both every second.

Checked afterwards:
- PostgreSQL holds, per pbx, exactly the expected visits: "lab" against Asterisk's queue_log
  (tests/truth.py) and against its own journal replayed; "load" equal, record by record, to what
  `acdbridge.replay.replay_records` finds in the very bytes the fake PBX sent. No row without one
  of the two ids, none twice.
- Prometheus: every `acd_queue_calls_total` series carries its daemon's pbx label (and only the
  target of that daemon serves it); `sum by (queue, outcome)` over both daemons is the PostgreSQL
  count over both PBXes (the centre-wide figure), and `sum by (pbx, queue, outcome)` the count
  per PBX; `up` is 1 for both targets and `count(acd_ami_connected == 1)` is 2.
- Neither daemon dropped an event or a record, failed a write or lost one (its daemon_stop line),
  and the load daemon logged in once (a reconnect would spoil the replayed count)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from acdbridge.adapters.store import PostgresStore, Record
from acdbridge.lab import pbx, queuelog, scenario, traffic
from acdbridge.replay import replay_records
from tests.pg import PgCluster
from tests.truth import compare, truth_visits

from .conftest import running_prometheus
from .daemon_harness import REPO, DaemonProcess, free_port, query

sys.path.insert(0, str(REPO / "benchmarks"))
from ami_load import load
from fake_pbx import FakePbx, Session, stream

COPIES = 5  # of the recorded traces: 3,327 event frames and 46 visits each
RATE = 800.0  # event frames/s: about 21 s of load, all of it during the lab's traffic
LAB_SCENARIO = "mixed"  # smoke has 3 calls; mixed about 30 visits in about 90 s
LAB_WRAPUP_S = 12.0  # the lab's queues in mixed (water 5 s, broadband 10 s), AgentComplete's grace
SETTLE_S = 30.0  # after that: PostgreSQL and Prometheus agree, and stay so over two looks
T = TypeVar("T")


def quiet(_line: str) -> None:
    pass


@pytest.fixture
def prometheus_two(tmp_path: Path) -> Iterator[tuple[int, tuple[int, int]]]:
    """One Prometheus scraping two targets every second: (its port, (target 1, target 2))."""
    targets = (free_port(), free_port())
    with running_prometheus(tmp_path / "prometheus", list(targets)) as web:
        yield web, targets


class FakePbxThread:
    """benchmarks/fake_pbx.py's FakePbx on its own event loop in a thread: it answers the daemon's
    pings while the test does anything else (lab traffic, sleeps, queries)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-pbx", daemon=True)
        self._thread.start()
        self.pbx = self.call(self._start(), 10)
        self.port = self.pbx.port

    @staticmethod
    async def _start() -> FakePbx:
        fake = FakePbx()
        await fake.start()
        return fake

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return self.submit(coro).result(timeout)

    def resynced(self, timeout: float) -> Session:
        """The daemon's session once it has logged in and sent its resync."""

        return self.call(asyncio.wait_for(self.pbx.resynced(), timeout), timeout + 1)

    def close(self) -> None:
        try:
            self.call(self.pbx.close(), 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def pg_daemon(
    workdir: Path, ami_port: int, http_port: int, url: str, password: Path, pbx_id: str
) -> DaemonProcess:
    """A DaemonProcess whose [store] is the shared PostgreSQL under its own pbx id."""
    workdir.mkdir()
    daemon = DaemonProcess(workdir, ami_port, http_port=http_port)
    sqlite_store = f'[store]\npath = "{daemon.store_path}"\n'
    config = daemon.config.read_text()
    assert sqlite_store in config
    pg_store = f'[store]\nurl = "{url}"\npassword_file = "{password}"\npbx = "{pbx_id}"\n'
    daemon.config.write_text(config.replace(sqlite_store, pg_store))
    return daemon


def pg_visits(url: str, password: str, pbx_id: str | None = None) -> list[Record]:
    store = PostgresStore(url, password=password)
    try:
        return store.visits(0, 1e12, pbx=pbx_id)
    finally:
        store.close()


def canonical(record: Record) -> str:
    """A visit as sorted JSON, without the pbx key a multi-PBX store adds when read."""
    return json.dumps({k: v for k, v in record.items() if k != "pbx"}, sort_keys=True)


def by_labels(web: int, promql: str, *labels: str) -> dict[tuple[str, ...], int]:
    """{label values: value} of an instant query, zero samples left out."""
    out = {}
    for s in query(web, promql):
        metric, value = s["metric"], s["value"]
        assert isinstance(metric, dict) and isinstance(value, list)
        if float(value[1]):
            out[tuple(str(metric.get(label, "")) for label in labels)] = int(float(value[1]))
    return out


def stop_stats(daemon: DaemonProcess) -> dict[str, Any]:
    lines = [line for line in daemon.log_text().splitlines() if '"daemon_stop"' in line]
    assert len(lines) == 1, daemon.log_text()[-3000:]
    stats: dict[str, Any] = json.loads(lines[0])
    return stats


def test_two_daemons_into_one_postgresql_and_one_prometheus(
    lab: pbx.LabSettings, pg_cluster: PgCluster, pg_url: str, tmp_path: Path,
    prometheus_two: tuple[int, tuple[int, int]],
) -> None:  # fmt: skip
    t0 = time.monotonic()
    web, (lab_port, load_port) = prometheus_two
    password = tmp_path / "store-password"
    password.write_text(pg_cluster.password + "\n")
    password.chmod(0o600)
    frames, times, _ = load(COPIES)
    fake = FakePbxThread()
    daemons = {
        "lab": pg_daemon(tmp_path / "lab", lab.ami_port, lab_port, pg_url, password, "lab"),
        "load": pg_daemon(tmp_path / "load", fake.port, load_port, pg_url, password, "load"),
    }
    statuses: dict[str, int | None] = {}
    try:
        # both at once, as after a power cut: one migration of the fresh database, two pbx locks
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(DaemonProcess.start, daemons.values()))
        session = fake.resynced(20)
        started = time.time()
        load_run = fake.submit(stream(session, frames, RATE, times))
        report = asyncio.run(traffic.run_async(scenario.load(LAB_SCENARIO), lab, quiet))
        send_s = load_run.result(timeout=10)  # long over: about 21 s of load in about 90 s of traffic
        assert report.ok, report.summary()
        time.sleep(LAB_WRAPUP_S)  # the load's wrap-ups ended long ago, on the pings' clock

        # PostgreSQL and Prometheus agree and nothing moves any more (bounded)
        deadline = time.monotonic() + SETTLE_S
        previous: dict[tuple[str, ...], int] | None = None
        while True:
            stored = Counter[tuple[str, ...]](
                (str(v["pbx"]), str(v["queue"]), str(v["outcome"]))
                for v in pg_visits(pg_url, pg_cluster.password)
            )
            scraped = by_labels(
                web, "sum by (pbx, queue, outcome) (acd_queue_calls_total)", "pbx", "queue", "outcome"
            )
            if scraped == dict(stored) and previous == dict(stored):
                break
            assert time.monotonic() < deadline, (sorted(stored.items()), sorted(scraped.items()))
            previous = dict(stored)
            time.sleep(1.5)

        # the centre-wide figure: both PBXes summed by Prometheus = both PBXes counted in PostgreSQL
        centre = Counter[tuple[str, ...]]()
        for (_pbx, queue, outcome), n in stored.items():
            centre[(queue, outcome)] += n
        assert by_labels(web, "sum by (queue, outcome) (acd_queue_calls_total)", "queue", "outcome") == dict(
            centre
        )
        # each daemon's series carry its pbx id, and only its own target serves them
        assert by_labels(
            web, "count by (instance, pbx) (acd_queue_calls_total)", "instance", "pbx"
        ).keys() == {
            (f"127.0.0.1:{lab_port}", "lab"),
            (f"127.0.0.1:{load_port}", "load"),
        }
        assert query(web, 'acd_queue_calls_total{pbx=""}') == []
        assert by_labels(web, 'up{job="acdbridge"}', "instance") == {
            (f"127.0.0.1:{lab_port}",): 1,
            (f"127.0.0.1:{load_port}",): 1,
        }
        connected = query(web, "count(acd_ami_connected == 1)")
        assert [s["value"][1] for s in connected] == ["2"], connected  # type: ignore[index]
        assert by_labels(web, "acd_ami_connected", "pbx") == {("lab",): 1, ("load",): 1}
        for name, daemon in daemons.items():
            proc = daemon.proc
            assert proc is not None and proc.poll() is None, f"{name} exited:\n{daemon.log_text()[-3000:]}"
    finally:
        try:
            for name, daemon in daemons.items():
                if daemon.proc is not None and daemon.proc.poll() is None:
                    statuses[name] = daemon.stop()
        finally:
            fake.close()
    for name, daemon in daemons.items():
        assert statuses.get(name) == 0, f"{name}: exit {statuses.get(name)}\n{daemon.log_text()[-3000:]}"
        stats = stop_stats(daemon)
        for key in ("events_dropped", "records_dropped", "records_lost", "store_write_errors"):
            assert stats[key] == 0, (name, key, stats)
    assert daemons["load"].log_text().count("ami_connected") == 1, daemons["load"].log_text()[-3000:]

    # PostgreSQL: exactly the two PBXes' visits, none twice
    every = pg_visits(pg_url, pg_cluster.password)
    assert {v["pbx"] for v in every} == {"lab", "load"}
    keys = [(v["pbx"], v["uniqueid"], v["queue"], v["enter_ts"]) for v in every]
    assert len(keys) == len(set(keys)), "a visit stored twice"
    lab_rows = pg_visits(pg_url, pg_cluster.password, "lab")
    load_rows = pg_visits(pg_url, pg_cluster.password, "load")
    assert len(lab_rows) + len(load_rows) == len(every)

    # "lab": what Asterisk's queue_log says, and what the daemon's own journal replays to
    truth = truth_visits(queuelog.read(lab.queue_log, since=started))
    assert len(truth) >= 25, len(truth)
    assert compare(truth, lab_rows) == []
    lab_journal = sorted(map(canonical, replay_records(daemons["lab"].capture)))
    assert lab_journal == sorted(map(canonical, lab_rows))

    # "load": what the bytes the fake PBX sent replay to, record by record
    sent = tmp_path / "load-sent.ami"
    assert fake.pbx.session is not None
    sent.write_bytes(b"".join(fake.pbx.session.sent))
    expected = replay_records(sent)
    assert len(expected) == 46 * COPIES, len(expected)
    assert sorted(map(canonical, load_rows)) == sorted(map(canonical, expected))

    print(
        f"\nvisits in PostgreSQL: lab {len(lab_rows)} (queue_log {len(truth)}), load {len(load_rows)} "
        f"(replay {len(expected)}); load: {len(frames):,} frames in {send_s:.1f} s "
        f"({len(frames) / send_s:,.0f}/s); centre-wide by (queue, outcome): {dict(sorted(centre.items()))}; "
        f"wall {time.monotonic() - t0:.0f} s"
    )
