"""Scheduled reports (docs/reports.md "Scheduled reports"): each `[[reports.schedule]]` made at
its local time for the period just closed, written to its directory (files 0600) and e-mailed
with the files attached.

- Off the event loop: the report (reportcli.rows, the same code as `acdbridge report`) and the
  SMTP conversation each run in a worker thread.
- Idempotent per (schedule, period): a period made and mailed is remembered in the state file
  (`[reports] state_file`, JSON, written whole and renamed), so a restart never mails it again.
- After downtime only each schedule's latest due period is made, once, at start: a daemon down
  for a month sends one monthly and one daily report, not thirty.
- A failure (store, disk, SMTP) is logged, counted and tried again `retries` times `retry_s`
  apart; a period still failing then is left unmarked, so the next start tries it again once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from acdbridge.adapters import mailer
from acdbridge.core.report import targets_of
from acdbridge.core.schedule import Period
from acdbridge.privatefile import private_file
from acdbridge.reportcli import render, rows
from acdbridge.settings.mailconf import Schedule, SmtpConfig

if TYPE_CHECKING:
    from acdbridge.config import Config

log = structlog.get_logger("acdbridge.reports")
KEEP_PERIODS = 400  # per schedule in the state file: more than a year of daily runs


class SentState:
    """The periods made and mailed, by schedule: `{"done": {"daily": ["2026-12-02", ...]}}`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, list[str]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.done = {str(k): [str(p) for p in v] for k, v in data.get("done", {}).items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError, TypeError) as exc:  # unreadable: start afresh, say so
            log.warning("report_state_unreadable", path=str(path), error=str(exc))

    def has(self, name: str, period: str) -> bool:
        return period in self.done.get(name, [])

    def mark(self, name: str, period: str) -> None:
        self.done[name] = [*self.done.get(name, []), period][-KEEP_PERIODS:]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with private_file(tmp) as f:
            f.write(json.dumps({"done": self.done}, indent=1).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


@dataclass
class ScheduleStats:
    made: int = 0
    mailed: int = 0
    failed: dict[str, int] = field(default_factory=lambda: {"make": 0, "mail": 0})
    last_success: float = 0.0


def file_name(s: Schedule, period: Period, fmt: str) -> str:
    return f"{s.name}-{period.name}.{fmt}"


def make_files(store: Any, cfg: Config, s: Schedule, period: Period) -> list[Path]:
    """Blocking: the report of `period` in each of the schedule's formats, written 0600 (each
    file complete or absent: written aside, then renamed)."""
    lo, hi = period.bounds(cfg.kpi.tz)
    report = {"rows": list(rows(store, cfg.kpi, cfg.report, lo, hi, s.interval, s.by)),
              "targets": targets_of(cfg.kpi, cfg.report)}  # fmt: skip
    last = period.end - timedelta(days=1)
    title = f"acdbridge report {s.name}: {period.start} to {last} by {s.interval}, by {s.by}"
    s.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = []
    for fmt in s.formats:
        path = s.directory / file_name(s, period, fmt)
        tmp = path.with_name(path.name + ".tmp")
        with private_file(tmp) as f:
            f.write(render(report, fmt, title))
        os.replace(tmp, path)
        out.append(path)
    return out


def mail_of(smtp: SmtpConfig, s: Schedule, period: Period, files: list[Path]) -> EmailMessage:
    last = period.end - timedelta(days=1)
    span = str(period.start) if last == period.start else f"{period.start} to {last}"
    body = (f"The {s.name} report of acdbridge for {span} (by {s.interval}, by {s.by}) is attached:\n"
            + "".join(f"  {p.name}\n" for p in files))  # fmt: skip
    return mailer.message(smtp.sender, s.mail_to, f"acdbridge report {s.name}: {span}", body, files)


class ReportJob:
    def __init__(self, cfg: Config, store: Any, clock: Callable[[], float] = time.time,
                 send: Callable[[SmtpConfig, EmailMessage], None] = mailer.send, *,
                 remember: bool = True) -> None:  # fmt: skip
        self.cfg, self.store, self.clock, self.send = cfg, store, clock, send
        self.remember = remember  # False (by hand): the state file is not consulted nor written
        self.last_error = ""
        self.rc, self.tz = cfg.reports, cfg.kpi.tz
        self.state = SentState(self.rc.state_file)
        self.stats = {s.name: ScheduleStats() for s in self.rc.schedules}

    async def run(self, stop: asyncio.Event) -> None:
        """The daemon's task: the missed periods once, then each schedule at its time."""
        await self.catch_up(stop)
        while not stop.is_set() and self.rc.schedules:
            now = self.clock()
            due = {s.name: s.when.next_due(now, self.tz) for s in self.rc.schedules}
            at = min(due.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, at - self.clock()))
            for s in self.rc.schedules:
                if not stop.is_set() and due[s.name] <= self.clock():
                    await self.deliver(s, s.when.period_at(due[s.name], self.tz), stop)

    async def catch_up(self, stop: asyncio.Event | None = None) -> None:
        """Each schedule's latest due period, if it was not made and mailed (downtime, a failure)."""
        for s in self.rc.schedules:
            last = s.when.last_due(self.clock(), self.tz)
            if last is not None and (stop is None or not stop.is_set()):
                await self.deliver(s, s.when.period_at(last, self.tz), stop)

    async def deliver(self, s: Schedule, period: Period, stop: asyncio.Event | None = None,
                      *, force: bool = False) -> bool:  # fmt: skip
        """Make, write and mail one period, with the bounded retries; True when done (or done before)."""
        if self.remember and self.state.has(s.name, period.name) and not force:
            return True
        for attempt in range(1 + self.rc.retries):
            if attempt:
                if stop is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.rc.retry_s)
                    if stop.is_set():
                        return False
                else:
                    await asyncio.sleep(self.rc.retry_s)
            if await self._attempt(s, period, attempt):
                if self.remember:
                    self.state.mark(s.name, period.name)
                self.stats[s.name].last_success = self.clock()
                return True
        log.error("report_given_up", schedule=s.name, period=period.name, attempts=1 + self.rc.retries)
        return False

    async def _attempt(self, s: Schedule, period: Period, attempt: int) -> bool:
        stats, step = self.stats[s.name], "make"
        try:
            files = await asyncio.to_thread(make_files, self.store, self.cfg, s, period)
            stats.made += 1
            if s.mail_to and self.cfg.smtp is not None:
                step = "mail"
                msg = mail_of(self.cfg.smtp, s, period, files)
                await asyncio.to_thread(self.send, self.cfg.smtp, msg)
                stats.mailed += 1
        except Exception as exc:  # any failure of one report must not stop the daemon: counted, retried
            stats.failed[step] += 1
            self.last_error = f"{step}: {exc}"
            log.warning("report_failed", schedule=s.name, period=period.name, step=step, attempt=attempt + 1,
                        error=str(exc) or type(exc).__name__)  # fmt: skip
            return False
        log.info("report_made", schedule=s.name, period=period.name, files=[str(f) for f in files],
                 mailed_to=len(s.mail_to) if step == "mail" else 0)  # fmt: skip
        return True


def report_families(job: ReportJob) -> list[Metric]:
    """The scheduled reports' counters: an alert on failures or on the last success's age."""
    made = CounterMetricFamily("acd_reports_made", "Scheduled reports made and written", labels=["schedule"])
    mailed = CounterMetricFamily("acd_reports_mailed", "Scheduled reports mailed", labels=["schedule"])
    failed = CounterMetricFamily("acd_reports_failed", "Failed attempts of scheduled reports, by step "
                                 "(make: store, disk; mail: SMTP)", labels=["schedule", "step"])  # fmt: skip
    last = GaugeMetricFamily("acd_reports_last_success_timestamp_seconds", "When a schedule's report was "
                             "last made and mailed (0: not since start)", labels=["schedule"])  # fmt: skip
    for name, st in job.stats.items():
        made.add_metric([name], st.made)
        mailed.add_metric([name], st.mailed)
        for step, n in st.failed.items():
            failed.add_metric([name, step], n)
        last.add_metric([name], st.last_success)
    return [made, mailed, failed, last]
