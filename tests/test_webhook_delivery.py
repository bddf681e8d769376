"""The webhooks' sender (adapters/webhooks.py) against a real aiohttp receiver on loopback that
fails (500) and stalls past the timeout at random (a fixed seed), with the outbox a replay of
recorded lab traces made (`acdbridge replay --db`, the daemon's writer): every event is accepted
once by key (a duplicate after a stall is recognised by its key), in order per call, with a
valid signature; the sender restarted mid-delivery with the store reopened loses nothing. And: a
dead endpoint dead-letters without blocking the call's later events for ever, a stalled endpoint
never holds up another, and /metrics shows it all."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from acdbridge.adapters.store import SqliteStore
from acdbridge.adapters.webhooks import WebhookSender, webhook_families
from acdbridge.cli import main
from tests.webhook_receiver import SECRET, Receiver, serving

TRACES = Path(__file__).parent / "fixtures" / "traces"
EVERY = '["call.offered", "call.answered", "visit.ended", "disposition", "call.abandoned"]'


async def outbox_from_traces(
    tmp_path: Path, port: int, extra: str = "", traces: tuple[str, ...] = ()
) -> Path:
    """The config, and the store filled by `acdbridge replay TRACE --db` of recorded lab traces."""
    db = tmp_path / "s.sqlite"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[store]\npath = "{db}"\n[[webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:{port}/hook"\n'
        f'secret = "{SECRET}"\nevents = {EVERY}\ntimeout_s = 0.3\nbackoff_min_s = 0.05\n'
        f"backoff_max_s = 0.3\n{extra}"
    )
    for trace in traces or ("mixed.ami.gz", "callflow.ami"):
        args = ["replay", str(TRACES / trace), "--db", str(db), "--config", str(config)]
        assert await asyncio.to_thread(main, args) == 0  # its own event loop, in a thread
    return config


async def until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def endpoints_of(config: Path) -> Any:
    from acdbridge import config as cfgmod

    return cfgmod.load(config, for_daemon=False).webhooks


def test_every_event_arrives_once_by_key_in_call_order_across_a_restart(tmp_path: Path) -> None:
    async def scenario() -> tuple[Receiver, list[Any], list[Any]]:
        receiver = Receiver(random.Random(17), fail=0.2, stall=0.15)
        async with serving(receiver) as port:
            config = await outbox_from_traces(tmp_path, port)
            hooks = endpoints_of(config)
            store = SqliteStore(tmp_path / "s.sqlite")
            rows = store.outbox_due("crm", limit=10_000)
            stop = asyncio.Event()
            sender = WebhookSender(hooks, store, poll_s=0.1)
            task = asyncio.create_task(sender.run(stop))
            assert await until(lambda: len(receiver.accepted) >= len(rows) // 3, 30)
            task.cancel()  # a crash mid-delivery: requests in flight are cut off
            await asyncio.gather(task, return_exceptions=True)
            first_stats = sender.stats
            store.close()
            store = SqliteStore(tmp_path / "s.sqlite")  # the restarted daemon's store
            stop = asyncio.Event()
            sender = WebhookSender(hooks, store, poll_s=0.1)
            task = asyncio.create_task(sender.run(stop))
            done = await until(lambda: not store.outbox_due("crm"), 40)
            stop.set()
            await task
            left = store.outbox_list("pending") + store.outbox_list("dead")
            store.close()
            assert done, f"{len(left)} events not delivered"
            return receiver, rows, [first_stats, sender.stats]

    receiver, rows, stats = asyncio.run(scenario())
    assert receiver.bad == []
    keys = [r.idempotency_key for r in rows]
    assert len(rows) > 80 and len(set(keys)) == len(keys)
    assert {k: n for k, n in receiver.accepted.items() if n}.keys() == set(keys)  # each one, no stranger
    by_call: dict[str, list[str]] = defaultdict(list)
    for r in rows:  # the outbox's id order is the order the records came, per call
        by_call[r.call_key].append(r.idempotency_key)
    assert dict(receiver.order) == dict(by_call)
    failures = sum(s.attempts[("crm", o)] for s in stats for o in ("http_error", "timeout"))
    assert failures > 10 and receiver.duplicates > 0  # it did fail and stall, and retried
    assert sum(s.attempts[("crm", "delivered")] for s in stats) >= len(rows) - 4  # cut-off ones resent


def test_a_failing_endpoint_dead_letters_and_a_stalled_one_holds_up_no_other(tmp_path: Path) -> None:
    async def scenario() -> tuple[Receiver, Receiver, bytes, int]:
        good, broken = Receiver(random.Random(1)), Receiver(random.Random(2), fail=1.0)
        slow = Receiver(random.Random(3), stall=1.0, stall_s=5.0)  # answers nothing in time
        async with serving(good) as port, serving(broken) as bad_port, serving(slow) as slow_port:
            extra = (f'[[webhooks]]\nname = "dead"\nurl = "http://127.0.0.1:{bad_port}/hook"\n'
                     f'secret = "{SECRET}"\nevents = ["visit.ended"]\nretry_for_s = 0.5\n'
                     "backoff_min_s = 0.05\nbackoff_max_s = 0.1\n"
                     f'[[webhooks]]\nname = "stalled"\nurl = "http://127.0.0.1:{slow_port}/hook"\n'
                     f'secret = "{SECRET}"\nevents = {EVERY}\ntimeout_s = 0.2\n')  # fmt: skip
            config = await outbox_from_traces(tmp_path, port, extra, traces=("smoke.ami",))
            store = SqliteStore(tmp_path / "s.sqlite")
            ends = [r for r in store.outbox_due("dead")]
            mine = len(store.outbox_due("crm"))
            stop = asyncio.Event()
            sender = WebhookSender(endpoints_of(config), store, poll_s=0.05)
            task = asyncio.create_task(sender.run(stop))
            assert await until(lambda: len(good.accepted) == mine, 10)  # not held up by the others
            assert await until(lambda: not store.outbox_due("dead"), 10)
            sender._counted = 0.0  # the next round re-reads the gauges at once
            await until(lambda: sender.stats.dead["dead"] == len(ends), 5)
            stop.set()
            await task
            registry = CollectorRegistry()
            families = webhook_families(sender.stats)
            registry.register(type("C", (), {"collect": lambda self: families})())
            text = generate_latest(registry)
            dead_rows = len(store.outbox_list("dead"))
            store.close()
            return good, broken, text, dead_rows

    good, broken, text, dead_rows = asyncio.run(scenario())
    assert good.bad == broken.bad == [] and broken.requests >= dead_rows > 0
    lines = text.decode()
    assert f'acd_webhook_dead{{endpoint="dead"}} {float(dead_rows)}' in lines
    assert f'acd_webhook_dead_letters_total{{endpoint="dead"}} {float(dead_rows)}' in lines
    assert 'acd_webhook_deliveries_total{endpoint="dead",outcome="http_error"}' in lines
    timeouts = [
        ln
        for ln in lines.splitlines()
        if ln.startswith('acd_webhook_deliveries_total{endpoint="stalled",outcome="timeout"}')
    ]
    assert len(timeouts) == 1 and float(timeouts[0].split()[-1]) > 0, timeouts
    assert 'acd_webhook_backlog{endpoint="stalled"}' in lines
    assert 'acd_webhook_delivery_seconds_count{endpoint="crm"}' in lines
