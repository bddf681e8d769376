"""The tracker's side of the daemon: AMI messages in (from the bounded events queue) to the engine
(runtime/engine.py), records out to the store writer with one canonical log line each.

The engine binds each event's Uniqueid and Linkedid in structlog's contextvars, so every line
logged while handling it names the call: one call's whole story is one grep (`grep 1733140000.42`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import NamedTuple, Protocol

import structlog
from structlog.contextvars import bound_contextvars

from acdbridge.adapters.fastagi import AgiSession, Handler
from acdbridge.adapters.journal import Mark
from acdbridge.core.ami import AmiMessage
from acdbridge.runtime.engine import Engine, Output
from acdbridge.runtime.writer import StoreWriter

log = structlog.get_logger("acdbridge")
QUEUE_SIZE = 50_000


class QueueLogRead(NamedTuple):
    """The queue_log lines read for the gap a resync closed (core/gap.py), in journal order."""

    lines: list[str]


# a message and its receive time; a Mark after a journaled read's messages, when the checkpointer
# asked for one (it is taken there); the queue_log lines of a gap; None: the AMI task has ended
# (an orderly stop)
Event = tuple[AmiMessage, float] | Mark | QueueLogRead | None
OnMark = Callable[[Mark, float], None]
OnGap = Callable[[float, float], None]  # (since, until): read queue_log for this gap
Fed = Callable[[str], None]  # after each event fed to the engine, with its name ("" for a backfill)


class Events(Protocol):
    """The bounded events queue, as the tracker reads it."""

    async def get(self) -> Event: ...


# the canonical line's fields per kind of record (the full record is in the store)
LOG_FIELDS = {
    "visit": ("uniqueid", "queue", "outcome", "wait_s", "agent"),
    "ivr": ("uniqueid", "hotline", "outcome", "ivr_s", "queue"),
    "feedback": ("uniqueid", "kind", "value", "queue", "agent"),
}


class Inbox:
    """The bounded events queue between the AMI adapter and the tracker; what did not fit is
    counted (exported as acd_queue_drops_total{queue_name="events"}) and logged every 1000th time."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.dropped = 0

    def put_event(self, msg: AmiMessage, received_at: float) -> None:
        try:
            self.queue.put_nowait((msg, received_at))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event_queue_full", dropped=self.dropped)

    def put_mark(self, mark: Mark) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # the events around it are dropped and counted
            self.queue.put_nowait(mark)


def to_store(writer: StoreWriter) -> Callable[[Output], None]:
    """The live engine's outputs: a canonical log line, then the store writer's queue."""

    def out(output: Output) -> None:
        kind, record = output
        fields = LOG_FIELDS.get(kind)
        if fields is not None:
            log.info("ivr_leg" if kind == "ivr" else kind, **{k: record.get(k) for k in fields})
        writer.put(kind, record)

    return out


async def track(events: Events, engine: Engine, fed: Fed,
                on_mark: OnMark | None = None, on_gap: OnGap | None = None) -> None:  # fmt: skip
    """Until the end marker. A resync that closes a gap asks `on_gap` for its queue_log lines."""
    received_at = 0.0
    while (item := await events.get()) is not None:
        if isinstance(item, Mark):
            if on_mark is not None:
                on_mark(item, received_at)
            continue
        if isinstance(item, QueueLogRead):
            engine.backfill(item.lines)
            fed("")
            continue
        msg, received_at = item
        engine.feed(msg, received_at)
        if on_gap is not None and (window := engine.gap_due()) is not None:
            on_gap(*window)
        fed(msg.name)


def call_ids_of_agi(handler: Handler) -> Handler:
    """A FastAGI handler whose log lines name the call (agi_uniqueid) it is serving."""

    async def run(session: AgiSession) -> None:
        env = session.request.env
        ids = {"uniqueid": env.get("agi_uniqueid", ""), "linkedid": env.get("agi_linkedid", "")}
        with bound_contextvars(**{k: v for k, v in ids.items() if v}):
            await handler(session)

    return run
