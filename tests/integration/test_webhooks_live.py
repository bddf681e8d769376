"""`acdbridge run` with `[[webhooks]]` on the real lab: calls placed by the traffic generator, a
loopback receiver that fails (500) and stalls past the timeout at random (a fixed seed), and
the daemon SIGKILLed as soon as the first event was accepted, restarted 2 s later. Every event
in the outbox reaches the receiver and is accepted once by key, in order per call, signed; every
stored visit has its visit.ended among them (nothing lost across the kill, nothing doubled by
the journal replay after it)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

from acdbridge.adapters.store import SqliteStore
from acdbridge.core.webhooks import idempotency_key
from acdbridge.lab import pbx, scenario, traffic
from tests.webhook_receiver import SECRET, Receiver, serving

from .daemon_harness import DaemonProcess, free_port

EVENTS = ["call.offered", "call.answered", "visit.ended", "disposition", "call.abandoned"]


def hooks_config(port: int) -> str:
    return (f"[journal]\ncheckpoint_s = 1\n[[webhooks]]\nname = \"crm\"\n"
            f'url = "http://127.0.0.1:{port}/hook"\nsecret = "{SECRET}"\nevents = {json.dumps(EVENTS)}\n'
            "timeout_s = 0.3\nbackoff_min_s = 0.1\nbackoff_max_s = 0.5\n")  # fmt: skip


async def until(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def pending(store_path: Path) -> int:
    store = SqliteStore(store_path)  # a reader beside the daemon (no lock)
    try:
        return len(store.outbox_list("pending", 100))
    finally:
        store.close()


def test_events_survive_a_sigkill_mid_delivery_once_each_in_call_order(
    lab: pbx.LabSettings, tmp_path: Path
) -> None:
    receiver = Receiver(random.Random(23), fail=0.5, stall=0.2)  # before the kill: a backlog builds
    smoke = scenario.load("smoke")

    async def traffic_with_kill() -> tuple[DaemonProcess, int]:
        async with serving(receiver) as port:
            daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=free_port(), extra=hooks_config(port),
                                   ami_extra=f'queue_log = "{lab.queue_log}"\n')  # fmt: skip
            await asyncio.to_thread(daemon.start)
            first = asyncio.create_task(traffic.run_async(smoke, lab, lambda _line: None))
            mid = lambda: bool(receiver.order) and pending(daemon.store_path) > 0  # noqa: E731
            assert await until(mid, 60), daemon.log_text()[-3000:]
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGKILL)  # mid-delivery: events pending, maybe in flight
            await asyncio.to_thread(daemon.proc.wait)
            left_at_kill = pending(daemon.store_path)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(daemon.start)
            receiver.fail, receiver.stall = 0.2, 0.15
            assert (await first).ok
            report = await traffic.run_async(smoke, lab, lambda _line: None)  # live calls after the restart
            assert report.ok, report.summary()
            await asyncio.sleep(12)  # the last wrap-ups end (10 s at most in the sample config)
            assert await until(lambda: pending(daemon.store_path) == 0, 30), daemon.log_text()[-3000:]
            assert await asyncio.to_thread(daemon.stop) == 0, daemon.log_text()[-3000:]
            return daemon, left_at_kill

    daemon, left_at_kill = asyncio.run(traffic_with_kill())
    store = SqliteStore(daemon.store_path)
    rows = sorted(store.outbox_list(None, 10_000), key=lambda r: r.id)
    visits = store.visits(0, 1e12)
    store.close()
    assert left_at_kill > 0 and receiver.bad == []
    assert {r.state for r in rows} == {"delivered"}
    keys = [r.idempotency_key for r in rows]
    assert len(keys) == len(set(keys))
    assert set(receiver.accepted) == set(keys)  # every one, and nothing else
    by_call: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_call[r.call_key].append(r.idempotency_key)
    assert dict(receiver.order) == dict(by_call)  # in order per call
    assert len(visits) >= 6
    for v in visits:  # nothing lost across the kill
        assert idempotency_key("", "visit.ended", v) in receiver.accepted, v["uniqueid"]
    assert {r.event for r in rows} >= {"call.offered", "call.answered", "visit.ended"}
    assert receiver.requests > len(keys)  # it failed and stalled, and was retried
