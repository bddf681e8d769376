"""The store writer: finished records from the loop, in batches, to the store's worker thread.

The records queue is bounded; a full queue drops, counts and logs (never grows without limit).
A failed batch is retried. While the database cannot be reached at all (PostgreSQL restarting:
StoreUnavailable) it is retried without end, with capped backoff, until the daemon stops: the
records wait in the bounded queue meanwhile (what overflows it is counted, and the journal
brings it back at the next start). Any other failure (disk full, a locked file) is retried
RETRIES times; what still fails is counted and logged with the uniqueids it held.
Each batch's write time goes to a histogram (`acd_store_write_seconds`).

Every record put gets a sequence number, so a checkpoint can ask "is everything up to record n
stored?" (`covered`). A record dropped or lost blocks every later checkpoint of this run: the
journal since the last checkpoint is then replayed at the next start and the record written
again (the store ignores the ones it already has).

With webhooks (docs/webhooks.md) each batch's outbox rows go into the same transaction as the
records they come from: visits and call events with `write`, dispositions with `write_flow`,
so an event is stored exactly when its record is. `call_event` records (call.offered and
call.answered) have no table of their own: their outbox rows are all that is stored of them."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from functools import partial

import structlog

from acdbridge.adapters.reconnect import backoff_delay
from acdbridge.adapters.store import Record, Store, StoreUnavailable
from acdbridge.core.tallies import Histogram
from acdbridge.core.webhooks import Endpoint, Event, events_of

log = structlog.get_logger("acdbridge.writer")
BATCH = 500
RETRIES = 3
OUTAGE_MAX_S = 30.0  # the longest wait between attempts while the database is unreachable
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Item = tuple[str, Record, int] | None  # kind, record, sequence; None: the end (an orderly stop)


@dataclass
class WriterStats:
    records_dropped: int = 0
    store_write_errors: int = 0
    failing: bool = False  # the last write attempt failed (health: an outage that ended is over)
    records_lost: int = 0
    visits_stored: int = 0
    states_stored: int = 0
    write_seconds: Histogram = field(default_factory=lambda: Histogram(WRITE_BUCKETS))


class StoreWriter:
    def __init__(self, store: Store, size: int, stop: asyncio.Event | None = None,
                 hooks: tuple[Endpoint, ...] = (), pbx: str = "") -> None:  # fmt: skip
        self.store = store
        self.hooks, self.pbx = hooks, pbx
        self.outboxed = asyncio.Event()  # set when a batch stored webhook events (the sender wakes)
        self.stop = stop  # once set, an unreachable database is given up on like any failure
        self.queue: asyncio.Queue[Item] = asyncio.Queue(size)
        self.stats = WriterStats()
        self.emitted = 0  # records put, dropped ones included
        self.settled = 0  # the highest sequence number written (or given up)
        self.first_lost: int | None = None  # the first record dropped or lost

    def put(self, kind: str, record: Record) -> None:
        self.emitted += 1
        try:
            self.queue.put_nowait((kind, record, self.emitted))
        except asyncio.QueueFull:
            self.stats.records_dropped += 1
            self._lost(self.emitted)
            log.error("record_queue_full", dropped=self.stats.records_dropped, kind=kind,
                      uniqueid=record.get("uniqueid"))  # fmt: skip

    async def end(self) -> None:
        await self.queue.put(None)

    def _lost(self, seq: int) -> None:
        if self.first_lost is None:
            self.first_lost = seq

    async def covered(self, n: int, timeout_s: float = 30.0) -> bool:
        """True once records 1..n are all in the store; False if one of them never will be."""
        deadline = time.monotonic() + timeout_s
        while self.settled < n:
            if (self.first_lost is not None and self.first_lost <= n) or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return self.first_lost is None or self.first_lost > n

    async def run(self) -> None:
        """Until the end marker; a crash here is restarted by the supervisor, the queue kept."""
        while not await self._one_batch(await self.queue.get()):
            pass

    async def drain(self) -> None:
        """Write what is queued now, without waiting for more (the journal replay at start, before
        the writer task runs: the queue must not overflow while it replays)."""
        while not self.queue.empty():
            await self._one_batch(self.queue.get_nowait())

    async def _one_batch(self, first: Item) -> bool:
        """One batch starting with `first`; True when it held the end marker."""
        batch = [first]
        while len(batch) < BATCH and not self.queue.empty():
            batch.append(self.queue.get_nowait())
        by_kind: dict[str, list[Record]] = {"visit": [], "agent_state": [], "ivr": [], "feedback": []}
        seqs = [item[2] for item in batch if item is not None]
        for item in batch:
            if item is not None:
                by_kind.setdefault(item[0], []).append(item[1])
        if any(by_kind.values()) and not await self._store_batch(by_kind, self._events(batch)):
            self._lost(min(seqs))
        if seqs:
            self.settled = max(self.settled, *seqs)
        return None in batch

    def _events(self, batch: list[Item]) -> tuple[list[Event], list[Event]]:
        """The batch's webhook events in the order their records came (a call's order): those
        stored with `write`, and the dispositions stored with `write_flow`."""
        main: list[Event] = []
        flow: list[Event] = []
        for item in batch:
            if item is not None and self.hooks:
                (flow if item[0] == "feedback" else main).extend(events_of(self.hooks, self.pbx, *item[:2]))
        return main, flow

    @staticmethod
    def _with(events: list[Event]) -> dict[str, list[Event]]:
        """No outbox argument without events: a store without webhooks is called as before."""
        return {"outbox": events} if events else {}

    async def _store_batch(
        self, by_kind: dict[str, list[Record]], events: tuple[list[Event], list[Event]]
    ) -> bool:
        visits, states = by_kind["visit"], by_kind["agent_state"]
        legs, feedback = by_kind["ivr"], by_kind["feedback"]
        main, flow = events
        attempt = failures = 0  # failures: of this batch, the backoff's (one outage, not the run's)
        while attempt < RETRIES:
            started = time.perf_counter()
            try:
                if visits or states or main:
                    await asyncio.to_thread(partial(self.store.write, visits, states, **self._with(main)))
                    self.stats.visits_stored += len(visits)
                    self.stats.states_stored += len(states)
                    visits, states, main = [], [], []  # stored: a retry of the rest must not count them twice
                if legs or feedback or flow:
                    write_flow = partial(self.store.write_flow, legs, feedback, **self._with(flow))
                    await asyncio.to_thread(write_flow)
                if events[0] or events[1]:
                    self.outboxed.set()
                self.stats.write_seconds.observe(time.perf_counter() - started)
                self.stats.failing = False
                return True
            except Exception as exc:  # disk full, locked database...: retry, then count the loss
                self.stats.store_write_errors += 1
                self.stats.failing = True
                failures += 1
                log.error("store_write_failed", error=str(exc), attempt=failures, visits=len(visits))
                outage = isinstance(exc, StoreUnavailable) and not (self.stop and self.stop.is_set())
                await self._pause(attempt, outage, failures)
                attempt = min(attempt + 1, RETRIES - 1) if outage else attempt + 1
        lost = [*visits, *states, *legs, *feedback]  # (the journal has them: the next start writes them)
        self.stats.records_lost += len(lost)
        uniqueids = sorted({str(r.get("uniqueid")) for r in lost if r.get("uniqueid")})
        log.error("records_lost", count=len(lost), uniqueids=uniqueids[:50])
        return False

    async def _pause(self, attempt: int, outage: bool, failures: int) -> None:
        if not outage:
            await asyncio.sleep(0.5 * (attempt + 1))
            return
        delay = backoff_delay(failures, 0.5, OUTAGE_MAX_S, random.uniform(0.5, 1.0))
        if self.stop is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):  # a stop ends the wait at once
            await asyncio.wait_for(self.stop.wait(), delay)
