"""The start after any stop, with a journal: the last checkpoint, then the journal from there.

The checkpoint gives the trackers' state, the tallies and the input-problem counts as they were
at a journal position; the journal from that position is fed through the same path the live
daemon uses (runtime/engine.py: a fresh parser per AMI connection, each chunk with its receive
time), before the AMI link starts. So after a SIGKILL the state is the one the journal had on
disk, and the records that ended after the checkpoint (stored before the crash or not) are
produced again: the store's idempotent keys keep one of each, and the KPI engine, loaded with the
recent stored records first, counts a key once.

Only the checkpoint, the journal tail and the recent rows the KPI windows need are read: no scan
of every stored visit (runtime/resume.py keeps that for a store with no checkpoint yet)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from structlog.contextvars import bound_contextvars

from acdbridge.adapters.journal import DATA, QUEUE_LOG, TornTail, read_records
from acdbridge.core.pipeline import Pipeline
from acdbridge.runtime import checkpoint
from acdbridge.runtime.checkpoint import Checkpoint
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.writer import BATCH, StoreWriter

log = structlog.get_logger("acdbridge.recovery")


@dataclass
class Replayed:
    chunks: int = 0
    messages: int = 0
    last_received: float = 0.0
    torn: list[TornTail] = field(default_factory=list)


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint, or None; a damaged one is set aside (renamed, logged), never fatal."""
    try:
        return checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        path.rename(aside)
        log.error("checkpoint_damaged", error=str(exc), moved_to=str(aside))
        return None


def restore(pipeline: Pipeline, cp: Checkpoint) -> None:
    """The checkpoint's state into a fresh pipeline (raises what the core's restore raises)."""
    pipeline.restore(cp.state)
    checkpoint.tallies_from(cp.tallies, pipeline.tallies)
    for kind, n in cp.problems.items():
        pipeline.problem_counts[kind] = pipeline.problem_counts.get(kind, 0) + n


async def replay_tail(engine: Engine, directory: Path, cp: Checkpoint, writer: StoreWriter) -> Replayed:
    """The journal from the checkpoint's position through the engine, as the live daemon fed it.
    The writer is drained as it goes (its task is not running yet), so a long tail never
    overflows its queue."""
    done = Replayed(last_received=cp.last_received)
    first = True
    with bound_contextvars(replayed=True):  # the lines logged meanwhile say where they come from
        for chunk in read_records(directory, cp.resume, done.torn):
            done.chunks += 1
            data = chunk.data
            if first and chunk.kind == DATA:  # the frame unfinished at the checkpoint starts here
                engine.connected()
                data = data[cp.skip :] if chunk.at == cp.resume else data
            first = first and chunk.kind == QUEUE_LOG
            done.messages += engine.feed_record(chunk.kind, data, chunk.received_at)
            if chunk.kind == DATA:
                done.last_received = chunk.received_at
            if writer.queue.qsize() >= BATCH:
                await writer.drain()
    await writer.drain()
    for tail in done.torn:  # expected after a crash: the last record was being written
        log.warning("journal_torn_tail", segment=str(tail.path), offset=tail.offset, reason=tail.reason)
    return done
