"""A real webhook receiver for the tests: an aiohttp server on loopback that checks each
signature, de-duplicates by idempotency key, records the order it accepted each call's events,
and fails (500) or stalls past the sender's timeout at random with a seeded generator."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from acdbridge.core.webhooks import verify

SECRET = "whsec-test"


@dataclass
class Receiver:
    """A CRM that checks signatures, de-duplicates by key and records the order it accepted."""

    rng: random.Random
    fail: float = 0.0  # share of requests answered 500 (not accepted)
    stall: float = 0.0  # share accepted and then answered too late (the sender times out)
    stall_s: float = 0.6
    accepted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # call -> keys
    duplicates: int = 0
    bad: list[str] = field(default_factory=list)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        key = request.headers.get("X-Acdbridge-Idempotency-Key", "")
        if not verify(SECRET, request.headers.get("X-Acdbridge-Signature", ""), body, time.time()):
            self.bad.append(f"signature of {key}")
            return web.Response(status=400)
        doc = json.loads(body)
        if doc["idempotency_key"] != key or doc["event"] != request.headers.get("X-Acdbridge-Event"):
            self.bad.append(f"headers of {key}")
        roll = self.rng.random()
        if roll < self.fail:
            return web.Response(status=500, text="try later")
        if self.accepted[key]:
            self.duplicates += 1  # at least once: seen before, acknowledged again
        else:
            self.order[doc["data"]["uniqueid"]].append(key)
        self.accepted[key] += 1
        if roll < self.fail + self.stall:
            await asyncio.sleep(self.stall_s)  # processed, but the answer comes after the timeout
        return web.Response(status=204)


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # loopback, a port of the kernel's choosing
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
