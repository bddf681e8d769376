"""The daily privacy job (runtime/privacy.py): rows pseudonymised per second, and how long the
event loop is held meanwhile. Prints figures and ratios from one run; asserts nothing about timing.

    nice -n 10 .venv/bin/python benchmarks/privacy_bench.py [--quick | --visits N] [--postgres]

A store of N visits (and N/2 IVR legs) that all ended 100 days ago is pseudonymised by the job,
in batches of 1,000 rows in a worker thread, while a ticker on the loop wakes every millisecond:
its longest gap is what a live AMI read would have waited. The same rows done directly in one
thread, with no loop, give the job's overhead as a ratio. --postgres runs the same against a
throwaway cluster of tests/pg.py (as root it starts PostgreSQL as acdtest-pg, as the tests do)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from acdbridge.adapters.store import PostgresStore, SqliteStore  # noqa: E402
from acdbridge.adapters.store.privacy import BATCH, KEYS  # noqa: E402
from acdbridge.core.pseudonym import pseudonymised  # noqa: E402
from acdbridge.runtime.privacy import PrivacyJob  # noqa: E402
from acdbridge.settings.privacyconf import PrivacyConfig  # noqa: E402
from tests.pg import remove_cluster, start_cluster  # noqa: E402

DAY = 86_400.0
KEY = bytes(32)


def _visit(n: int, end_ts: float) -> dict[str, Any]:
    return {"uniqueid": f"1712000000.{n}", "linkedid": f"1712000000.{n}", "queue": f"q{n % 8}",
            "caller": f"+86138{n % 50_000:08d}", "caller_name": f"Caller {n % 50_000}", "outcome": "answered",
            "blocked_reason": None, "enter_ts": end_ts - 200, "answer_ts": end_ts - 180, "end_ts": end_ts,
            "wait_s": 20.0, "ring_s": 6.0, "talk_s": 170.0, "hold_s": 0.0, "hold_count": 0, "wrap_s": 10.0,
            "agent": f"agent {n % 300}", "agent_interface": f"PJSIP/{9000 + n % 300}",
            "ring_attempts": [], "transfer": None, "ended_by": "caller", "time_source": "events"}  # fmt: skip


def _leg(n: int, end_ts: float) -> dict[str, Any]:
    return {"uniqueid": f"1712000000.{n}", "linkedid": f"1712000000.{n}", "hotline": "main",
            "caller": f"+86138{n % 50_000:08d}", "outcome": "routed", "start_ts": end_ts - 30,
            "end_ts": end_ts, "ivr_s": 30.0, "call_type": "", "language": "zh", "vip": False,
            "queue": "q1"}  # fmt: skip


def fill(store: SqliteStore | PostgresStore, visits: int, now: float) -> None:
    for start in range(0, visits, 5000):
        n = range(start, min(visits, start + 5000))
        store.write([_visit(i, now - 100 * DAY + i) for i in n], [])
        store.write_flow([_leg(i, now - 100 * DAY + i) for i in n if i % 2 == 0], [])


def direct(store: SqliteStore | PostgresStore, now: float) -> int:
    """The same batches, one after the other in this thread: no loop, no worker handoff."""
    total = 0
    for table in KEYS:
        change = partial(pseudonymised, table, key=KEY)
        while (n := store.pseudonymise_batch(table, now - 90 * DAY, now, change)) > 0:
            total += n
    return total


async def idle_gap(seconds: float) -> float:
    """The ticker's longest gap with no job: what this (shared) machine does to the loop anyway."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, done.set)
    return (await _ticking(done.wait()))[0]


async def _ticking(work: Any) -> tuple[float, int, Any]:
    done, gaps, ticks = asyncio.Event(), [0.0], [0]

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            t = time.perf_counter()
            gaps[0], last = max(gaps[0], t - last), t
            ticks[0] += 1

    task = asyncio.create_task(ticker())
    result = await work
    done.set()
    await task
    return gaps[0], ticks[0], result


async def with_loop(job: PrivacyJob, now: float) -> tuple[int, float, int]:
    """(rows, the loop's longest gap in s, ticks) while the job runs."""
    gap, ticks, report = await _ticking(job.run_once(now))
    return sum(report.rows.values()), gap, ticks


def run(name: str, make: Any, visits: int, tmp: Path) -> None:
    now = time.time()
    store = make("a")
    fill(store, visits, now)
    job = PrivacyJob(PrivacyConfig(tmp / f"{name}.key", retain_days=90), "UTC", store)
    started = time.perf_counter()
    rows, gap, ticks = asyncio.run(with_loop(job, now))
    job_s = time.perf_counter() - started
    idle = asyncio.run(idle_gap(min(job_s, 5.0)))
    store.close()
    store = make("b")
    fill(store, visits, now)
    started = time.perf_counter()
    assert direct(store, now) == rows
    direct_s = time.perf_counter() - started
    store.close()
    print(f"{name}: {rows:,} rows in {job_s:.2f} s = {rows / job_s:,.0f} rows/s on the job "
          f"({rows / direct_s:,.0f} rows/s directly; job/direct time {job_s / direct_s:.2f}); batches of "
          f"{BATCH:,}: the loop ticked {ticks:,} times, longest gap {gap * 1000:.1f} ms, "
          f"{gap / max(idle, 1e-6):.1f}x the idle loop's {idle * 1000:.1f} ms "
          f"(one batch {job_s / max(1, rows / BATCH) * 1000:.1f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 visits")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL too")
    args = parser.parse_args()
    visits = 20_000 if args.quick else args.visits
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", lambda tag: SqliteStore(Path(tmp) / f"{tag}.sqlite"), visits, Path(tmp))
        if args.postgres:
            cluster = start_cluster()
            try:
                make = lambda _tag: PostgresStore(cluster.create_database(), password=cluster.password)  # noqa: E731
                run("postgres", make, visits, Path(tmp))
            finally:
                remove_cluster(cluster)


if __name__ == "__main__":
    main()
