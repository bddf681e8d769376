"""What webhooks cost: the store writer's batches with their outbox rows against the same batches
without, on SQLite and PostgreSQL; and the sender's delivery rate against a bare aiohttp client
posting the same bodies to the same loopback receiver (the baseline, same run, same concurrency).

Prints figures and ratios; it asserts nothing about timing. From the repository root (as root
PostgreSQL runs as the user acdtest-pg, as the tests do):

    nice -n 10 .venv/bin/python benchmarks/webhook_bench.py [--visits N] [--events N]

The visits are the recorded lab traces' own records (tests/fixtures/traces) with fresh uniqueids;
two endpoints subscribe to visit.ended and call.abandoned (about 2.4 outbox rows a visit)."""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from acdbridge.adapters.store import PostgresStore, SqliteStore  # noqa: E402
from acdbridge.adapters.webhooks import WebhookSender  # noqa: E402
from acdbridge.core.webhooks import Endpoint, events_of  # noqa: E402
from acdbridge.replay import replay_records  # noqa: E402
from tests.pg import remove_cluster, start_cluster  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "traces"
BATCH = 500
HOOKS = tuple(Endpoint(n, "http://127.0.0.1:1/", "k", frozenset({"visit.ended", "call.abandoned"}))
              for n in ("crm", "bi"))  # fmt: skip


def visits(n: int) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = []
    for name in ("mixed.ami.gz", "edge.ami", "smoke.ami"):
        base += replay_records(TRACES / name)
    return [base[i % len(base)] | {"uniqueid": f"bench-{i}.{i % 97}"} for i in range(n)]


def write_rate(store: SqliteStore | PostgresStore, rows: list[dict[str, Any]], hooks: bool) -> float:
    """Visits/s through store.write in the daemon's batches (with their outbox rows, or none)."""
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        batch = rows[i : i + BATCH]
        if hooks:
            store.write(batch, [], outbox=[e for v in batch for e in events_of(HOOKS, "", "visit", v)])
        else:
            store.write(batch, [])
    return len(rows) / (time.perf_counter() - started)


def writes(n: int, work: Path) -> None:
    rows = visits(2 * n)
    plain, hooked = rows[:n], rows[n:]
    sqlite = SqliteStore(work / "bench.sqlite")
    base, with_hooks = write_rate(sqlite, plain, False), write_rate(sqlite, hooked, True)
    outbox = sqlite.count("visits")
    sqlite.close()
    print(f"SQLite      write: {base:9.0f} visits/s plain, {with_hooks:9.0f} with outbox rows "
          f"(ratio {with_hooks / base:.2f}; {outbox} visits)")  # fmt: skip
    cluster = start_cluster()
    try:
        url = cluster.create_database()
        pg = PostgresStore(url, password=cluster.password)
        base, with_hooks = write_rate(pg, plain, False), write_rate(pg, hooked, True)
        pg.close()
        print(f"PostgreSQL  write: {base:9.0f} visits/s plain, {with_hooks:9.0f} with outbox rows "
              f"(ratio {with_hooks / base:.2f})")  # fmt: skip
    finally:
        remove_cluster(cluster)


async def deliveries(n: int, work: Path) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    ep = Endpoint("crm", url, "k", frozenset({"visit.ended"}), concurrency=4)
    store = SqliteStore(work / "deliver.sqlite")
    rows = visits(n)
    for i in range(0, n, BATCH):
        batch = rows[i : i + BATCH]
        store.write([], [], outbox=[e for v in batch for e in events_of([ep], "", "visit", v)])
    bodies = [r.payload.encode() for r in store.outbox_due("crm", limit=n)]
    try:
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            queue = list(bodies)

            async def post() -> None:
                while queue:
                    async with session.post(url, data=queue.pop(), headers={"X-A": "1"}) as answer:
                        await answer.read()

            await asyncio.gather(*(post() for _ in range(4)))
        bare = n / (time.perf_counter() - started)
        stop = asyncio.Event()
        sender = WebhookSender((ep,), store, poll_s=0.05)
        started = time.perf_counter()
        task = asyncio.create_task(sender.run(stop))
        deadline = time.monotonic() + 600
        while sender.stats.attempts[("crm", "delivered")] < n:
            if time.monotonic() > deadline:
                raise SystemExit("the sender did not deliver every event in 600 s")
            await asyncio.sleep(0.02)
        sent = n / (time.perf_counter() - started)
        stop.set()
        await task
    finally:
        store.close()
        await runner.cleanup()
    print(f"delivery (4 in flight, loopback): bare aiohttp {bare:7.0f} req/s, sender {sent:7.0f} "
          f"events/s with the outbox (ratio {sent / bare:.2f}; {n} events)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=3_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        writes(args.visits, Path(tmp))
        asyncio.run(deliveries(args.events, Path(tmp)))


if __name__ == "__main__":
    main()
