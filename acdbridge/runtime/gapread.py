"""The daemon's side of a gap's backfill (core/gap.py): when a resync closes a gap, read
Asterisk's queue_log (`ami.queue_log`) in a thread, journal the lines (a QUEUE_LOG record, so a
replay or a crash recovery rebuilds the same visits) and queue them for the tracker right after,
so the journal and the tracker see them at the same point of the AMI stream. No queue_log, or one
that cannot be read, still queues an empty read: the gap's vanished callers are then finished at
the resync's time, as they were before the backfill existed, and the log says why."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog

from acdbridge.adapters.journal import QUEUE_LOG, Journal
from acdbridge.adapters.queuelog import read_gap
from acdbridge.runtime.track import Event, QueueLogRead

log = structlog.get_logger("acdbridge.gap")
PUT_TIMEOUT_S = 30.0  # a full events queue (its drops are counted) gets this long to make room


class GapReader:
    def __init__(self, path: Path | None, journal: Journal | None, events: asyncio.Queue[Event]) -> None:
        self.path, self.journal, self.events = path, journal, events
        self.reads = 0
        self.failures = 0  # unreadable, or the events queue stayed full
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, since: float, until: float) -> None:
        """track()'s on_gap: called on the loop, reads in the background."""
        task = asyncio.get_running_loop().create_task(self._read(since, until))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lines(self, since: float, until: float) -> list[str]:
        if self.path is None:
            log.warning("gap_not_backfilled", since=since, until=until, reason="ami.queue_log is not set")
            return []
        try:
            lines, cut = await asyncio.to_thread(read_gap, self.path, since)
        except OSError as exc:
            self.failures += 1
            log.error("queue_log_unreadable", path=str(self.path), error=str(exc), since=since, until=until)
            return []
        if cut:
            log.warning("queue_log_excerpt_cut", path=str(self.path), oldest_lines_dropped=cut)
        return lines

    async def _read(self, since: float, until: float) -> None:
        lines = await self._lines(since, until)
        self.reads += 1
        if self.journal is not None:
            self.journal.append("".join(f"{t}\n" for t in lines).encode(), time.time(), QUEUE_LOG)
        item = QueueLogRead(lines)
        try:
            self.events.put_nowait(item)  # at once: the same place in the stream as in the journal
        except asyncio.QueueFull:
            try:
                await asyncio.wait_for(self.events.put(item), PUT_TIMEOUT_S)
            except TimeoutError:
                self.failures += 1
                log.error("gap_lines_not_queued", since=since, until=until, lines=len(lines))
