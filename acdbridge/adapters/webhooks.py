"""The webhooks' sender (docs/webhooks.md): the store's outbox out over HTTP(S) with aiohttp.

Thin: which rows go now, the signature and what a failure does to a row are core/webhooks.py's.
Per endpoint at most `concurrency` requests are in flight, each of a different call, and a call's
next event waits until the one before it is delivered or dead. A request that fails (not 2xx, a
timeout, a refused connection) is retried with backoff and jitter until `retry_for_s`, then the
row is dead (`acdbridge webhooks list --state dead`, `retry`). A row is marked delivered only after
the receiver's 2xx: a crash between the two sends it again (at least once; the idempotency key
lets the receiver see the duplicate). A stalled endpoint holds only its own slots, never the
writer or another endpoint, and every store call runs in a worker thread."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

import aiohttp
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from acdbridge import __version__
from acdbridge.adapters.metrics import histogram_family
from acdbridge.adapters.store.outbox import OutboxRow
from acdbridge.core.tallies import Histogram
from acdbridge.core.webhooks import DELIVERED, Due, Endpoint, Settled, after_failure, pick, signature

log = structlog.get_logger("acdbridge.webhooks")
DUE_LIMIT = 200  # pending rows read per endpoint per round (each call's oldest is among them)
POLL_S = 1.0  # a round at least this often (the writer's `outboxed` and each answer wake it sooner)
COUNT_S = 5.0  # backlog and dead gauges re-read this often
PRUNE_S = 3600.0
KEEP_DELIVERED_S = 7 * 86400.0  # delivered rows kept a week (`webhooks list`), then deleted
KEEP_DEAD_S = 30 * 86400.0  # dead rows a month after their retry window began: time to retry them
READ_LIMIT = 65536  # bytes of an answer read (and ignored): a receiver cannot flood the daemon
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
OUTCOMES = ("delivered", "http_error", "timeout", "network_error")
P = ParamSpec("P")
T = TypeVar("T")


class OutboxStore(Protocol):
    """What the sender needs of a store (adapters/store/outbox.py, both backends)."""

    def outbox_due(self, endpoint: str, limit: int = ...) -> list[OutboxRow]: ...
    def outbox_settle(self, row_id: int, result: Settled, now: float) -> None: ...
    def outbox_counts(self) -> dict[tuple[str, str], int]: ...
    def outbox_prune(self, before: float, dead_before: float | None = ...) -> int: ...


@dataclass
class WebhookStats:
    """Every counter is exported (/metrics, runtime/selfmetrics.py)."""

    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, outcome)
    dead_letters: Counter[str] = field(default_factory=Counter)  # rows gone dead in this run
    latency: dict[str, Histogram] = field(default_factory=dict)  # created -> delivered
    backlog: dict[str, int] = field(default_factory=dict)  # pending rows in the store
    dead: dict[str, int] = field(default_factory=dict)  # dead rows in the store
    in_flight: dict[str, int] = field(default_factory=dict)
    store_errors: int = 0  # reading or settling failed (the row stays pending: sent again later)
    errors: int = 0  # a delivery that failed in the sender itself (a bug): the row is sent again


class WebhookSender:
    def __init__(self, endpoints: tuple[Endpoint, ...], store: OutboxStore, wake: asyncio.Event | None = None,
                 *, poll_s: float = POLL_S, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.endpoints, self.store, self.poll_s, self.clock = endpoints, store, poll_s, clock
        self.wake = wake or asyncio.Event()
        self.stats = WebhookStats()
        for ep in endpoints:
            self.stats.latency[ep.name] = Histogram(LATENCY_BUCKETS)
            self.stats.backlog[ep.name] = self.stats.dead[ep.name] = self.stats.in_flight[ep.name] = 0
        self.busy: dict[str, dict[str, asyncio.Task[None]]] = {ep.name: {} for ep in endpoints}
        self._counted = self._pruned = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`; requests in flight then are cancelled and stay pending (sent next start)."""
        async with aiohttp.ClientSession(headers={"User-Agent": f"acdbridge/{__version__}"}) as session:
            try:
                while not stop.is_set():
                    self.wake.clear()
                    await self._round(session)
                    await _first(self.poll_s, self.wake.wait(), stop.wait())
            finally:
                tasks = [t for calls in self.busy.values() for t in calls.values()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _round(self, session: aiohttp.ClientSession) -> None:
        now = self.clock()
        for ep in self.endpoints:
            calls = self.busy[ep.name]
            free = ep.concurrency - len(calls)
            if free <= 0:
                continue
            rows = await self._store(self.store.outbox_due, ep.name, DUE_LIMIT)
            by_id = {r.id: r for r in rows or ()}
            due = [Due(r.id, r.call_key, r.next_attempt) for r in by_id.values()]
            for d in pick(due, now, set(calls), free):
                calls[d.call_key] = asyncio.create_task(self._deliver(session, ep, by_id[d.id]))
            self.stats.in_flight[ep.name] = len(calls)
        if now - self._counted >= COUNT_S:
            self._counted = now
            counts = await self._store(self.store.outbox_counts)
            for ep in self.endpoints:
                self.stats.backlog[ep.name] = (counts or {}).get((ep.name, "pending"), 0)
                self.stats.dead[ep.name] = (counts or {}).get((ep.name, "dead"), 0)
        if now - self._pruned >= PRUNE_S:
            self._pruned = now
            await self._store(self.store.outbox_prune, now - KEEP_DELIVERED_S, now - KEEP_DEAD_S)

    async def _store(self, call: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T | None:
        """A store call in a worker thread; a failure is logged and counted, never raised."""
        try:
            return await asyncio.to_thread(call, *args, **kw)
        except Exception as exc:  # PostgreSQL restarting, a locked file: the next round tries again
            self.stats.store_errors += 1
            log.error("webhook_store_failed", error=str(exc))
            return None

    async def _deliver(self, session: aiohttp.ClientSession, ep: Endpoint, row: OutboxRow) -> None:
        try:
            outcome, error = await self._post(session, ep, row)
            now = self.clock()
            self.stats.attempts[(ep.name, outcome)] += 1
            if outcome == "delivered":
                result = Settled(DELIVERED, row.attempts + 1, now, "")
                self.stats.latency[ep.name].observe(max(0.0, now - row.created))
            else:
                result = after_failure(row.attempts + 1, row.since, now, ep, random.uniform(0.5, 1.0), error)
                if result.state == "dead":
                    self.stats.dead_letters[ep.name] += 1
                    log.error("webhook_dead", endpoint=ep.name, id=row.id, hook_event=row.event,
                              key=row.idempotency_key, attempts=result.attempts, error=error)  # fmt: skip
                else:
                    log.warning("webhook_failed", endpoint=ep.name, id=row.id, hook_event=row.event,
                                attempt=result.attempts, error=error)  # fmt: skip
            await self._store(self.store.outbox_settle, row.id, result, now)
        except Exception:  # a bug here costs this attempt (the row stays pending), never the sender
            self.stats.errors += 1
            log.exception("webhook_delivery_failed", endpoint=ep.name, id=row.id)
        finally:
            self.busy[ep.name].pop(row.call_key, None)
            self.stats.in_flight[ep.name] = len(self.busy[ep.name])
            self.wake.set()  # the call's next event may go now

    async def _post(self, session: aiohttp.ClientSession, ep: Endpoint, row: OutboxRow) -> tuple[str, str]:
        """One request: (outcome, error text)."""
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json", "X-Acdbridge-Event": row.event,
            "X-Acdbridge-Idempotency-Key": row.idempotency_key,
            "X-Acdbridge-Signature": signature(ep.secret, int(self.clock()), body),
        }  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=ep.timeout_s)
        try:
            async with session.post(ep.url, data=body, headers=headers, timeout=timeout,
                                    allow_redirects=False) as answer:  # fmt: skip
                await answer.content.read(READ_LIMIT)
                if 200 <= answer.status < 300:
                    return "delivered", ""
                return "http_error", f"HTTP {answer.status}"
        except TimeoutError:
            return "timeout", f"no answer within {ep.timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # refused, reset, TLS, a bad URL
            return "network_error", f"{type(exc).__name__}: {exc}"[:300]


async def _first(seconds: float, *waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def webhook_families(stats: WebhookStats) -> list[Metric]:
    """/metrics: attempts by outcome, dead letters, backlog, delivery latency, per endpoint."""
    attempts = CounterMetricFamily("acd_webhook_deliveries", "Webhook requests by endpoint and outcome "
                                   "(delivered: a 2xx answer)", labels=["endpoint", "outcome"])  # fmt: skip
    for name in stats.backlog:
        for outcome in OUTCOMES:
            attempts.add_metric([name, outcome], stats.attempts[(name, outcome)])
    gauges = [
        _per_endpoint(CounterMetricFamily, "acd_webhook_dead_letters", "Webhook events that went dead "
                      "(retry_for_s over) in this run", dict(stats.dead_letters), stats),
        _per_endpoint(GaugeMetricFamily, "acd_webhook_backlog", "Webhook events pending in the outbox",
                      stats.backlog, stats),
        _per_endpoint(GaugeMetricFamily, "acd_webhook_dead", "Webhook events dead in the outbox (acdbridge "
                      "webhooks retry)", stats.dead, stats),
        _per_endpoint(GaugeMetricFamily, "acd_webhook_in_flight", "Webhook requests in flight",
                      stats.in_flight, stats),
    ]  # fmt: skip
    store = CounterMetricFamily("acd_webhook_store_errors", "Outbox reads or updates that failed "
                                "(retried: the event stays pending)", value=stats.store_errors)  # fmt: skip
    bugs = CounterMetricFamily("acd_webhook_sender_errors", "Deliveries that failed in the sender itself "
                               "(logged with a traceback; sent again)", value=stats.errors)  # fmt: skip
    latency = histogram_family("acd_webhook_delivery_seconds", "From an event's outbox insert to its "
                               "delivery (retries included)", ["endpoint"],
                               (((n,), h) for n, h in stats.latency.items()))  # fmt: skip
    return [attempts, *gauges, store, bugs, latency]


def _per_endpoint(kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, doc: str,
                  values: dict[str, int], stats: WebhookStats) -> Metric:  # fmt: skip
    family = kind(name, doc, labels=["endpoint"])
    for endpoint in stats.backlog:  # every endpoint's series from the start
        family.add_metric([endpoint], values.get(endpoint, 0))
    return family
