"""Checkpoints: the trackers' state and tallies, with the journal position they cover.

Every `checkpoint_s` the tracker, between two chunks of AMI bytes (a journal Mark), serialises
Pipeline.snapshot() (calls waiting, in talk, on hold, in wrap-up; agent states; open IVR legs),
the tallies behind the Prometheus counters and the input-problem counts, at once (the snapshot
shares dicts with the live trackers, so it is made text before the loop moves on). The
checkpoint task then waits until the journal is fsynced up to that position and the store holds
every record emitted before it, and only then replaces the file atomically (temp file, fsync,
rename, fsync of the directory). So a checkpoint never claims what the disk does not hold: a
start loads it and replays the journal from its position, and the segments before it can go.

A record the writer dropped or lost holds every later checkpoint of the run (logged once): the
next start replays the journal from the last good one and writes the record again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import structlog

from acdbridge.adapters.journal import Journal, Mark, Position, sync_dir
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.tallies import Histogram, Tallies
from acdbridge.runtime.writer import StoreWriter

log = structlog.get_logger("acdbridge.checkpoint")
VERSION = 1
NAME = "checkpoint.json"


class CheckpointError(ValueError):
    pass


def _key_data(key: Any) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _key(data: Any) -> Any:
    return tuple(data) if isinstance(data, list) else data


def tallies_data(t: Tallies) -> dict[str, Any]:
    """The tallies as JSON data: counters as [key, n] pairs, histograms as [key, bounds, counts, sum]."""
    out: dict[str, Any] = {}
    for f in fields(t):
        value = getattr(t, f.name)
        if isinstance(value, Counter):
            out[f.name] = {"counter": [[_key_data(k), n] for k, n in value.items()]}
        elif isinstance(value, dict):
            rows = [[_key_data(k), list(h.bounds), h.counts, h.total] for k, h in value.items()]
            out[f.name] = {"histograms": rows}
        else:
            out[f.name] = value
    return out


def tallies_from(data: dict[str, Any], into: Tallies) -> None:
    """Put stored tallies into `into` (the pipeline's own object, which the metrics read)."""
    names = {f.name for f in fields(into)}
    for name, value in data.items():
        if name not in names:
            continue  # a field a later version dropped
        if isinstance(value, dict) and "counter" in value:
            setattr(into, name, Counter({_key(k): int(n) for k, n in value["counter"]}))
        elif isinstance(value, dict) and "histograms" in value:
            hists = {}
            for k, edges, counts, total in value["histograms"]:
                hists[_key(k)] = Histogram(tuple(map(float, edges)), [int(c) for c in counts], float(total))
            setattr(into, name, hists)
        else:
            setattr(into, name, int(value))


@dataclass(frozen=True)
class Checkpoint:
    written_at: float
    end: Position  # the state is the journal's up to here
    resume: Position  # a replay starts at this record ...
    skip: int  # ... this many bytes into it (the start of the frame unfinished at `end`)
    last_received: float  # the receive time of the last chunk the state has seen (0: none)
    state: dict[str, Any]  # Pipeline.snapshot()
    tallies: dict[str, Any]
    problems: dict[str, int]


def encode(cp: Checkpoint) -> bytes:
    body = {
        "version": VERSION, "written_at": cp.written_at, "end": [cp.end.segment, cp.end.offset],
        "resume": [cp.resume.segment, cp.resume.offset], "skip": cp.skip,
        "last_received": cp.last_received, "state": cp.state, "tallies": cp.tallies, "problems": cp.problems,
    }  # fmt: skip
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def decode(raw: bytes) -> Checkpoint:
    def no_constant(name: str) -> Any:
        raise CheckpointError(f"{name} in a checkpoint")

    try:
        d = json.loads(raw, parse_constant=no_constant)
        if d.get("version") != VERSION:
            raise CheckpointError(f"unknown checkpoint version {d.get('version')!r}")
        return Checkpoint(
            float(d["written_at"]), Position(*map(int, d["end"])), Position(*map(int, d["resume"])),
            int(d["skip"]), float(d["last_received"]), d["state"], d["tallies"],
            {str(k): int(v) for k, v in d["problems"].items()},
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"damaged checkpoint: {type(exc).__name__}: {exc}") from exc


def save(path: Path, data: bytes) -> None:
    """Atomically: a crash leaves the old checkpoint or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)


def load(path: Path) -> Checkpoint | None:
    """The last checkpoint, None when there is none; CheckpointError when it is damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(raw)


def take(pipeline: Pipeline, mark: Mark, last_received: float) -> bytes:
    """The checkpoint of the pipeline's state now, which is the journal's up to `mark.end`."""
    cp = Checkpoint(time.time(), mark.end, mark.resume, mark.skip, last_received, pipeline.snapshot(),
                    tallies_data(pipeline.tallies), dict(pipeline.problem_counts))  # fmt: skip
    return encode(cp)


class Checkpointer:
    """Takes checkpoints at marks (on the loop, from the tracker) and commits them (a task)."""

    def __init__(self, journal: Journal, writer: StoreWriter, pipeline: Pipeline, path: Path,
                 interval_s: float, retention_s: float) -> None:  # fmt: skip
        self.journal, self.writer, self.pipeline = journal, writer, pipeline
        self.path, self.interval, self.retention = path, interval_s, retention_s
        self.wanted = False  # read by the AMI adapter: send a mark after the next read
        self._pending: tuple[bytes, Position, int, int] | None = None  # data, end, resume seg, records
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()  # the task's commit and the stop's: an older one never lands last
        self.last: Mark | None = None
        self.last_received = 0.0
        self.written = 0
        self.failed = 0
        self._held_logged = False

    def at_mark(self, mark: Mark, received_at: float) -> None:
        """The tracker has fed everything up to `mark.end`: the checkpoint is taken here."""
        self.last, self.last_received = mark, received_at
        self._take(mark)

    def _take(self, mark: Mark) -> None:
        try:
            data = take(self.pipeline, mark, self.last_received)
        except (ValueError, TypeError) as exc:  # a value JSON cannot carry: a bug, reported
            self.failed += 1
            log.error("checkpoint_failed", error=str(exc))
            return
        self._pending = (data, mark.end, mark.resume.segment, self.writer.emitted)
        self._ready.set()

    async def run(self, stop: asyncio.Event) -> None:
        """The checkpoint task: every interval, asks for a mark and commits the checkpoint the
        tracker takes there (a quiet link sends no read, so no checkpoint: nothing changed)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            self.wanted = True
            ready = asyncio.ensure_future(self._ready.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:  # bounded: a mark lost with a full events queue must not end the checkpoints
                await asyncio.wait(
                    {ready, stopped}, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                ready.cancel()
                stopped.cancel()
            await self.commit()

    async def commit(self) -> bool:
        async with self._lock:
            pending, self._pending = self._pending, None
            self._ready.clear()
            if pending is None:
                return False
            return await self._commit(*pending)

    async def _commit(self, data: bytes, end: Position, resume_segment: int, records: int) -> bool:
        if not await self.journal.wait_synced(end):
            self.failed += 1
            log.warning("checkpoint_skipped", reason="the journal is not on disk yet")
            return False
        if not await self.writer.covered(records):
            if self.writer.first_lost is None:  # slow (a store restarting): the next one may do
                log.warning("checkpoint_skipped", reason="the store is behind")
            elif not self._held_logged:  # until a restart, which replays and writes it again
                log.error("checkpoint_held", reason="a record was not stored",
                          first_lost=self.writer.first_lost)  # fmt: skip
                self._held_logged = True
            return False
        await asyncio.to_thread(save, self.path, data)
        self.written += 1
        deleted = await asyncio.to_thread(self.journal.prune, resume_segment, self.retention)
        if deleted:
            log.info("journal_segments_deleted", count=len(deleted), before_segment=resume_segment)
        return True

    async def final(self) -> bool:
        """A checkpoint now, at the journal's end (the start after a recovery; the orderly stop,
        once the link is closed and the tracker has fed everything): a frame left unfinished by
        a closed connection is never finished, so the next start replays from the end."""
        end = self.journal.position
        self._take(Mark(end, end, 0))
        return await self.commit()
