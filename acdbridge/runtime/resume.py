"""The daemon's start: counters and KPI windows go on from the store, calls in progress resume.

A stored row the daemon cannot load (a NaN time, a survey score that is not ASCII digits, a
record the tally or KPI code rejects, a saved tracker state that does not restore) is moved to
the store's quarantine table, logged and counted, and the start goes on. Before, such a row was
reloaded and crashed the daemon at every restart: a crash loop.

With a journal and a checkpoint (runtime/recovery.py) the start reads the checkpoint, the journal
tail and only the recent rows the KPI windows and the repeat-caller rule need; the counters come
from the checkpoint. Without a checkpoint yet (a store from before the journal) every stored
visit is read to rebuild the counters, and the calls in progress come from the saved state."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from acdbridge.adapters.callflow import CallFlow
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.store import Record, Store, StoredRow, quarantine_text
from acdbridge.core.kpi import KpiEngine
from acdbridge.core.pipeline import Pipeline
from acdbridge.runtime import recovery
from acdbridge.runtime.checkpoint import Checkpoint
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.writer import StoreWriter
from acdbridge.settings.journalconf import JournalConfig

log = structlog.get_logger("acdbridge.resume")
STALE_STATE_S = 900.0  # a saved state older than this is finished, not resumed
REQUIRED = {
    "visits": ("uniqueid", "queue", "outcome", "enter_ts", "end_ts", "wait_s", "ring_attempts"),
    "agent_states": ("interface", "state", "start_ts", "end_ts", "duration_s"),
    "ivr_legs": ("uniqueid", "hotline", "outcome", "start_ts", "end_ts"),
    "feedback": ("uniqueid", "kind", "value", "queue", "agent", "ts"),
}


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def check(table: str, record: Record) -> None:
    """Raise ValueError for a row the core must never see (defence in depth: the core checks its
    input too, but a row stored by an older version has not been through those checks)."""
    missing = [k for k in REQUIRED[table] if k not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if _non_finite(record):
        raise ValueError("a number that is not finite (NaN or Infinity)")
    if table == "feedback" and record["kind"] == "survey":
        value = str(record["value"])
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"survey score {value!r} is not ASCII digits")


@dataclass
class Resumer:
    store: Store
    engine: Engine
    callflow: CallFlow | None = None
    members: MembershipSync | None = None
    quarantined: int = 0
    journal: JournalConfig | None = None
    writer: StoreWriter | None = None

    @property
    def pipeline(self) -> Pipeline:
        return self.engine.pipeline

    @property
    def kpis(self) -> KpiEngine:
        return self.engine.kpis

    async def _load(self, table: str, since: float, use: Callable[[Record], None]) -> list[Record]:
        """Feed every good row of `table` to `use`; quarantine the rest. Returns the good ones."""
        good = []
        for row in await asyncio.to_thread(self.store.stored, table, since):
            error = row.error
            if row.record is not None and not error:
                try:
                    check(table, row.record)
                    use(row.record)
                    good.append(row.record)
                    continue
                except Exception as exc:  # whatever the core's code rejects, it must not crash a start
                    error = f"{type(exc).__name__}: {exc}"
            await self._quarantine(row, error)
        return good

    async def _quarantine(self, row: StoredRow, error: str) -> None:
        await asyncio.to_thread(self.store.quarantine, row, error)
        self.quarantined += 1
        uniqueid = row.record.get("uniqueid") if row.record else None
        log.error("store_row_quarantined", table=row.table, uniqueid=uniqueid, error=error)

    async def run(self) -> None:
        cp = None
        if self.journal is not None:
            cp = recovery.load_checkpoint(self.journal.checkpoint_path)
        if cp is not None and await self._from_checkpoint(cp):
            return
        await self._from_store()

    async def _from_checkpoint(self, cp: Checkpoint) -> bool:
        """Checkpoint + journal tail; False (and a fresh pipeline) if its state does not restore."""
        assert self.journal is not None and self.writer is not None
        started = time.perf_counter()
        try:
            recovery.restore(self.pipeline, cp)
        except Exception as exc:
            log.error("checkpoint_unusable", error=f"{type(exc).__name__}: {exc}")
            self.pipeline.calls.active.clear()
            return False
        # the recent stored rows first: the replay produces some of them again, and the KPI
        # engine counts a key once
        await self._recent()
        done = await recovery.replay_tail(self.engine, self.journal.dir, cp, self.writer)
        age = time.time() - max(done.last_received, cp.written_at)
        if age > STALE_STATE_S:  # as for a saved state: too old to resume
            self.pipeline.finish()
            self.pipeline.calls.active.clear()
            await self.writer.drain()
        log.info("recovered", calls=len(self.pipeline.calls.active), chunks=done.chunks,
                 messages=done.messages, torn_tails=len(done.torn), age_s=round(age, 1),
                 seconds=round(time.perf_counter() - started, 3))  # fmt: skip
        return True

    async def _recent(self) -> None:
        """The recent rows into the KPI engine and the repeat-caller rule (not every visit)."""
        now = time.time()
        recent = now - self.kpis.retention_s
        repeat = now - self.callflow.recent.window_s if self.callflow is not None else now

        def visit(v: Record) -> None:
            if v["end_ts"] >= recent:
                self.kpis.add_visit(v)

        visits = await self._load("visits", min(recent, repeat), visit)
        await self._load("agent_states", recent, self.kpis.add_agent_state)
        await self._load("feedback", recent, self.kpis.add_feedback)
        await self._repeat_callers(visits, repeat)

    async def _repeat_callers(self, visits: list[Record], since: float) -> None:
        if self.callflow is not None and self.members is not None:
            for v in visits:  # in end_ts order, so each number's latest call is seen last
                if v["end_ts"] >= since:
                    self.callflow.recent.seen(v["caller"], v["enter_ts"])
            await self.members.load()

    async def _from_store(self) -> None:
        # counters go on from what is stored, so a restart is no false reset for rate()
        now = time.time()
        recent = now - self.kpis.retention_s
        tallies = self.pipeline.tallies

        def visit(v: Record) -> None:
            self.pipeline.tally(v)
            if v["end_ts"] >= recent:
                self.kpis.add_visit(v)

        def states(s: Record) -> None:
            if s["end_ts"] >= recent:
                self.kpis.add_agent_state(s)

        def feedback(f: Record) -> None:
            tallies.add_feedback(f)
            if f["ts"] >= recent:
                self.kpis.add_feedback(f)

        visits = await self._load("visits", 0.0, visit)
        await self._load("agent_states", recent, states)
        await self._load("ivr_legs", 0.0, tallies.add_ivr_leg)
        await self._load("feedback", 0.0, feedback)
        if self.callflow is not None:
            await self._repeat_callers(visits, now - self.callflow.recent.window_s)
        await self._resume_calls()
        if self.quarantined:
            log.warning("resumed_with_quarantine", rows=self.quarantined)

    async def _resume_calls(self) -> None:
        saved = await asyncio.to_thread(self.store.load_state)
        if saved is None:
            return
        saved_at, state = saved
        try:
            self.pipeline.restore(state)
        except Exception as exc:  # a state from another version, or damaged: set aside, start afresh
            self.pipeline.calls.active.clear()
            await self._quarantine(StoredRow("tracker_state", 1, None, quarantine_text(state)),
                                   f"{type(exc).__name__}: {exc}")  # fmt: skip
            return
        age = time.time() - saved_at
        log.info("resumed", calls=len(self.pipeline.calls.active), age_s=round(age, 1))
        if age > STALE_STATE_S:  # too old to resume: report what had finished talking, drop the rest
            self.pipeline.finish()
            self.pipeline.calls.active.clear()
