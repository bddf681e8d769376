"""The store writer: finished records from the loop, in batches, to the store's worker thread.

The records queue is bounded; a full queue drops, counts and logs (never grows without limit).
A failed batch is retried; what still fails is counted and logged with the uniqueids it held.
Each batch's write time goes to a histogram (`acd_store_write_seconds`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from acdbridge.adapters.store import Record, Store
from acdbridge.core.tallies import Histogram

log = structlog.get_logger("acdbridge.writer")
BATCH = 500
RETRIES = 3
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Item = tuple[str, Record] | None  # None: the end of the stream (an orderly stop)


@dataclass
class WriterStats:
    records_dropped: int = 0
    store_write_errors: int = 0
    records_lost: int = 0
    visits_stored: int = 0
    states_stored: int = 0
    write_seconds: Histogram = field(default_factory=lambda: Histogram(WRITE_BUCKETS))


class StoreWriter:
    def __init__(self, store: Store, size: int) -> None:
        self.store = store
        self.queue: asyncio.Queue[Item] = asyncio.Queue(size)
        self.stats = WriterStats()

    def put(self, kind: str, record: Record) -> None:
        try:
            self.queue.put_nowait((kind, record))
        except asyncio.QueueFull:
            self.stats.records_dropped += 1
            log.error("record_queue_full", dropped=self.stats.records_dropped, kind=kind,
                      uniqueid=record.get("uniqueid"))  # fmt: skip

    async def end(self) -> None:
        await self.queue.put(None)

    async def run(self) -> None:
        """Until the end marker; a crash here is restarted by the supervisor, the queue kept."""
        ended = False
        while not ended:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            ended = None in batch
            by_kind: dict[str, list[Record]] = {"visit": [], "agent_state": [], "ivr": [], "feedback": []}
            for item in batch:
                if item is not None:
                    by_kind.setdefault(item[0], []).append(item[1])
            if any(by_kind.values()):
                await self._store_batch(by_kind)

    async def _store_batch(self, by_kind: dict[str, list[Record]]) -> None:
        visits, states = by_kind["visit"], by_kind["agent_state"]
        legs, feedback = by_kind["ivr"], by_kind["feedback"]
        for attempt in range(RETRIES):
            started = time.perf_counter()
            try:
                if visits or states:
                    await asyncio.to_thread(self.store.write, visits, states)
                    self.stats.visits_stored += len(visits)
                    self.stats.states_stored += len(states)
                    visits, states = [], []  # stored: a retry of the rest must not count them twice
                if legs or feedback:
                    await asyncio.to_thread(self.store.write_flow, legs, feedback)
                self.stats.write_seconds.observe(time.perf_counter() - started)
                return
            except Exception as exc:  # disk full, locked database...: retry, then count the loss
                self.stats.store_write_errors += 1
                log.error("store_write_failed", error=str(exc), attempt=attempt + 1, visits=len(visits))
                await asyncio.sleep(0.5 * (attempt + 1))
        lost = [*visits, *states, *legs, *feedback]
        self.stats.records_lost += len(lost)
        uniqueids = sorted({str(r.get("uniqueid")) for r in lost if r.get("uniqueid")})
        log.error("records_lost", count=len(lost), uniqueids=uniqueids[:50])
