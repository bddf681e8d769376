"""`acdbridge report-run --config C --schedule NAME [--period YYYY-MM-DD] [--no-mail]`: one
scheduled report made now by hand, written and mailed as the daemon does (runtime/reportjob.py),
in one attempt. The period is the one holding --period (a day, its Monday-Monday week or its
month, by the schedule's `every`), else the last one closed. The daemon's state file is left as
it is: the daemon still makes its own run (docs/reports.md)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from datetime import date, datetime
from pathlib import Path

from acdbridge.core.schedule import Period, period_before, period_of
from acdbridge.errors import AcdError


class ReportRunError(AcdError):
    code = "report-run"
    exit_status = 2


def period_arg(text: str | None, every: str, today: date) -> Period:
    if text is None:
        return period_before(today, every)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ReportRunError(f"--period: expected a date YYYY-MM-DD, got {text!r}") from None
    return period_of(day, every)


def cmd_report_run(args: argparse.Namespace) -> int:
    from acdbridge import config
    from acdbridge.adapters.store import open_store
    from acdbridge.runtime.reportjob import ReportJob

    cfg = config.load(args.config, for_daemon=False)
    by_name = {s.name: s for s in cfg.reports.schedules}
    if args.schedule not in by_name:
        known = ", ".join(by_name) or "none: add [[reports.schedule]]"
        raise ReportRunError(f"--schedule: no schedule {args.schedule!r} in {args.config} (known: {known})")
    s = by_name[args.schedule]
    if args.no_mail:
        s = dataclasses.replace(s, mail_to=())
    period = period_arg(args.period, s.when.every, datetime.fromtimestamp(time.time(), cfg.kpi.tz).date())
    if not cfg.store.url and not cfg.store.path.exists():
        raise ReportRunError(f"no store at {cfg.store.path}")
    cfg = dataclasses.replace(cfg, reports=dataclasses.replace(cfg.reports, retries=0, schedules=(s,)))
    store = open_store(cfg.store)
    try:
        job = ReportJob(cfg, store, remember=False)
        if not asyncio.run(job.deliver(s, period, force=True)):
            raise AcdError(f"report {s.name} {period.name}: {job.last_error}")
    finally:
        store.close()
    files = ", ".join(str(s.directory / f"{s.name}-{period.name}.{f}") for f in s.formats)
    mailed = f"; mailed to {', '.join(s.mail_to)}" if s.mail_to else ""
    print(f"{s.name} {period.name}: {files}{mailed}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report-run", help="make one scheduled report now: write it and mail it")
    p.add_argument("--config", type=Path, required=True, help="the daemon's config ([[reports.schedule]])")
    p.add_argument("--schedule", required=True, metavar="NAME", help="the schedule's name")
    p.add_argument("--period", metavar="YYYY-MM-DD", help="a day of the period (default: the last closed)")
    p.add_argument("--no-mail", action="store_true", help="write the files only")
    p.set_defaults(func=cmd_report_run)
