"""The daily privacy job (docs/privacy.md): callers' data older than `[privacy] retain_days`.

Once a day at `run_at` in the centre's time zone, the caller number and name of this PBX's visits
and IVR legs that ended before the cut-off become pseudonyms (core/pseudonym.py; durations and
outcomes untouched, so the KPIs stay), quarantined rows and journal segments older than it are
deleted. Off the event loop: each batch of 1,000 rows is one call in a worker thread and one
transaction, and the loop runs between batches, so the live path never waits for more than a
batch (benchmarks/privacy_bench.py). A store that is unavailable is tried again in RETRY_S."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from acdbridge.adapters.journal import Journal
from acdbridge.adapters.privacykey import load_or_create
from acdbridge.adapters.store.common import Record
from acdbridge.adapters.store.privacy import BATCH, KEYS
from acdbridge.core.pseudonym import pseudonymised
from acdbridge.core.schedule import next_run
from acdbridge.errors import StoreUnusable
from acdbridge.runtime import checkpoint
from acdbridge.settings.privacyconf import PrivacyConfig

log = structlog.get_logger("acdbridge.privacy")
RETRY_S = 600.0


class PrivacyStore(Protocol):
    def pseudonymise_batch(self, table: str, before: float, now: float,
                           change: Callable[[Record], Record], limit: int = BATCH) -> int: ...  # fmt: skip
    def drop_quarantine_before(self, before: float) -> int: ...


@dataclass
class JobReport:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KEYS, 0))
    quarantine: int = 0
    segments: int = 0
    seconds: float = 0.0


class PrivacyJob:
    def __init__(
        self, cfg: PrivacyConfig, timezone: str, store: PrivacyStore, journal: Journal | None = None,
        checkpoint_path: Path | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.cfg, self.tz, self.store, self.clock = cfg, ZoneInfo(timezone), store, clock
        self.journal, self.checkpoint_path = journal, checkpoint_path
        self.key: bytes | None = None
        self.runs = 0
        self.last: JobReport | None = None
        self.last_run_at = 0.0  # the wall clock of the last finished run (0: none yet)
        self.totals = JobReport()  # every run's counts added up, for /metrics

    async def run(self, stop: asyncio.Event) -> None:
        """The daemon's task: sleeps until run_at, runs, and again the next day."""
        if self.cfg.retain_s is None:  # retain_days = 0: kept forever, nothing to do
            await stop.wait()
            return
        due = next_run(self.clock(), self.cfg.run_at, self.tz)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - self.clock()))
            if stop.is_set():
                return
            try:
                await self.run_once(self.clock(), stop)
                due = next_run(self.clock(), self.cfg.run_at, self.tz)
            except StoreUnusable as exc:  # PostgreSQL restarting: soon again, not tomorrow
                log.warning("privacy_job_failed", error=str(exc), retry_s=RETRY_S)
                due = self.clock() + RETRY_S

    async def run_once(self, now: float, stop: asyncio.Event | None = None) -> JobReport:
        assert self.cfg.retain_s is not None
        started = time.monotonic()
        if self.key is None:
            self.key = await asyncio.to_thread(load_or_create, self.cfg.key_file)
        before = now - self.cfg.retain_s
        report = JobReport()
        for table in KEYS:
            change = partial(pseudonymised, table, key=self.key)
            while stop is None or not stop.is_set():  # a stop waits for one batch at most
                n = await asyncio.to_thread(self.store.pseudonymise_batch, table, before, now, change, BATCH)
                report.rows[table] += n
                if n < BATCH:
                    break
        report.quarantine = await asyncio.to_thread(self.store.drop_quarantine_before, before)
        report.segments = await asyncio.to_thread(self._prune, now)
        report.seconds = round(time.monotonic() - started, 3)
        self.runs, self.last, self.last_run_at = self.runs + 1, report, self.clock()
        for table, n in report.rows.items():
            self.totals.rows[table] += n
        self.totals.quarantine += report.quarantine
        self.totals.segments += report.segments
        log.info("privacy_job", before=before, **{f"{t}_pseudonymised": n for t, n in report.rows.items()},
                 quarantine_deleted=report.quarantine, journal_segments_deleted=report.segments,
                 seconds=report.seconds)  # fmt: skip
        return report

    def _prune(self, now: float) -> int:
        """Journal segments older than the retention, if a checkpoint covers them (the checkpoint
        task prunes too, but only when AMI traffic makes checkpoints: not on a quiet link)."""
        if self.journal is None or self.checkpoint_path is None or self.cfg.retain_s is None:
            return 0
        try:
            cp = checkpoint.load(self.checkpoint_path)
        except checkpoint.CheckpointError as exc:
            log.warning("privacy_journal_kept", reason=str(exc))
            return 0
        if cp is None:
            return 0
        return len(self.journal.prune(cp.resume.segment, self.cfg.retain_s, now))


def warn_if_root(allowed: bool, euid: Callable[[], int] = os.geteuid) -> bool:
    """Root reads every file of the host and writes callers' data root-owned: say so, once, at
    start (the lab runs as root on purpose: `allow_root = true` there). True when it warned."""
    if euid() != 0 or allowed:
        return False
    log.warning("running_as_root", hint="run the daemon as its own user (systemd/acdbridge.service: "
                "User=acdbridge), or set [privacy] allow_root = true for a lab")  # fmt: skip
    return True
