"""The tracker's side of the daemon: AMI messages in (from the bounded events queue), records out.

Each event is fed to the core with its call's Uniqueid and Linkedid bound in structlog's
contextvars, so every line logged while handling it names the call: one call's whole story is
one grep (`grep 1733140000.42`). The finished records get one canonical log line each."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import structlog
from structlog.contextvars import bound_contextvars

from acdbridge.adapters.fastagi import AgiSession, Handler
from acdbridge.adapters.journal import Mark
from acdbridge.core.ami import AmiMessage
from acdbridge.core.kpi import KpiEngine
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.runtime.writer import StoreWriter

log = structlog.get_logger("acdbridge")


class QueueLogRead(NamedTuple):
    """The queue_log lines read for the gap a resync closed (core/gap.py), in journal order."""

    lines: list[str]


# a message and its receive time; a Mark after a journaled read's messages, when the checkpointer
# asked for one (it is taken there); the queue_log lines of a gap; None: the AMI task has ended
# (an orderly stop)
Event = tuple[AmiMessage, float] | Mark | QueueLogRead | None
OnMark = Callable[[Mark, float], None]
OnGap = Callable[[float, float], None]  # (since, until): read queue_log for this gap


class Events(Protocol):
    """The bounded events queue, as the tracker reads it."""

    async def get(self) -> Event: ...


# the canonical line's fields per kind of record (the full record is in the store)
LOG_FIELDS = {
    "visit": ("uniqueid", "queue", "outcome", "wait_s", "agent"),
    "ivr": ("uniqueid", "hotline", "outcome", "ivr_s", "queue"),
    "feedback": ("uniqueid", "kind", "value", "queue", "agent"),
}


def call_ids(msg: AmiMessage) -> dict[str, str]:
    headers = msg.headers
    ids = {"uniqueid": headers.get("Uniqueid", ""), "linkedid": headers.get("Linkedid", "")}
    return {k: v for k, v in ids.items() if v}


class Recorder:
    """Where the pipeline's records go: the log line, the KPI engine, then the store writer."""

    def __init__(self, kpis: KpiEngine, writer: StoreWriter) -> None:
        self.kpis, self.writer = kpis, writer

    def __call__(self, kind: str, record: Record) -> None:
        fields = LOG_FIELDS.get(kind)
        if fields is not None:
            log.info("ivr_leg" if kind == "ivr" else kind, **{k: record.get(k) for k in fields})
        if kind == "visit":
            self.kpis.add_visit(record)
        elif kind == "feedback":
            self.kpis.add_feedback(record)
        elif kind == "agent_state":
            self.kpis.add_agent_state(record)
        self.writer.put(kind, record)


def feed_one(pipeline: Pipeline, msg: AmiMessage, received_at: float) -> None:
    """One message into the core, live or from the journal at start: the one path."""
    with bound_contextvars(**call_ids(msg)):
        try:
            pipeline.feed(msg, received_at)
        except Exception:  # a tracker bug costs one event, not the daemon
            log.exception("tracker_failed", event=msg.name)


def backfill_one(pipeline: Pipeline, lines: list[str]) -> None:
    """A gap's queue_log lines into the core, live or from the journal at start."""
    gap = pipeline.gap.gap
    try:
        n = pipeline.backfill(lines)
    except Exception:  # a bug here costs the gap's rebuilt visits, not the daemon
        log.exception("backfill_failed", lines=len(lines))
        return
    if gap is not None:
        log.info("gap_backfilled", since=gap.since, until=gap.until, lines=len(lines), visits=n,
                 vanished=len(gap.vanished))  # fmt: skip


async def track(events: Events, pipeline: Pipeline, fed: Callable[[], None],
                on_mark: OnMark | None = None, on_gap: OnGap | None = None) -> None:  # fmt: skip
    """Until the end marker. A resync that closes a gap asks `on_gap` for its queue_log lines."""
    received_at = 0.0
    while (item := await events.get()) is not None:
        if isinstance(item, Mark):
            if on_mark is not None:
                on_mark(item, received_at)
            continue
        if isinstance(item, QueueLogRead):
            backfill_one(pipeline, item.lines)
            fed()
            continue
        msg, received_at = item
        feed_one(pipeline, msg, received_at)
        if on_gap is not None and (window := pipeline.gap.due()) is not None:
            pipeline.gap.requested = True
            on_gap(*window)
        fed()


def call_ids_of_agi(handler: Handler) -> Handler:
    """A FastAGI handler whose log lines name the call (agi_uniqueid) it is serving."""

    async def run(session: AgiSession) -> None:
        env = session.request.env
        ids = {"uniqueid": env.get("agi_uniqueid", ""), "linkedid": env.get("agi_linkedid", "")}
        with bound_contextvars(**{k: v for k, v in ids.items() if v}):
            await handler(session)

    return run
