"""`acdbridge report`: interval reports from the store (docs/reports.md).

    acdbridge report (--db STORE | --config C) --from F --to T --interval 15m|30m|1h|day|week|month
        --by queue|agent|team|call_type|hotline|pbx [--format json|csv|html] [--out FILE]

The store is read one interval at a time (visits by end time, agent stretches overlapping it,
feedback, and the IVR legs of its calls), so memory holds one interval, not the month; each
interval's rows come from core/report.py (the live definitions of kpis_over)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from acdbridge.core.kpi import KpiConfig
from acdbridge.core.kpibase import Record
from acdbridge.core.report import (
    GROUPINGS,
    INTERVALS,
    Data,
    ReportConfig,
    ReportError,
    bucket,
    check_grouping,
    interval_rows,
    intervals,
    targets_of,
)
from acdbridge.errors import AcdError

FORMATS = ("json", "csv", "xlsx", "html", "workforce-csv")
_STATES_FOR = ("agent", "team")  # the groupings whose figures read agent state stretches
_LEGS_FOR = ("call_type", "hotline")


class ReportCliError(AcdError):
    code = "report"
    exit_status = 2


def moment(text: str, option: str, cfg: KpiConfig) -> float:
    """Epoch seconds, or ISO 8601; a date or a time without an offset is the centre's local time."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ReportCliError(f"{option}: not a time: {text!r}")
        return value
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ReportCliError(
            f"{option}: not a time: {text!r} (expected a date 2026-11-23, an ISO 8601 time such as "
            "2026-11-23T08:00 or 2026-11-23T08:00+01:00, or epoch seconds)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=cfg.tz)).timestamp()


def _legs(store: Any, visits: list[Record]) -> dict[tuple[str, str], Record]:
    by_pbx: dict[str, list[str]] = {}
    for v in visits:
        by_pbx.setdefault(v.get("pbx", ""), []).append(v["uniqueid"])
    out: dict[tuple[str, str], Record] = {}
    for pbx, uniqueids in by_pbx.items():
        for leg in store.ivr_legs_of(pbx, sorted(set(uniqueids))):
            out[(leg.get("pbx", ""), leg["uniqueid"])] = leg
    return out


CHUNK_S = 86_400.0  # the store is read a day (or one longer interval) at a time


def load(store: Any, lo: float, hi: float, by: str, pbx: str | None) -> Data:
    """The records of [lo, hi), only what the grouping's figures read."""
    agents = by in _STATES_FOR
    visits = list(store.report_visits(lo, hi, pbx=pbx, attempts=agents))
    states = store.agent_states_during(lo, hi, pbx=pbx) if agents else []
    feedback = store.feedback(lo, hi, pbx=pbx) if not agents else []
    legs = _legs(store, visits) if by in _LEGS_FOR else {}
    return Data(visits, states, feedback, legs)


def chunks(bounds: list[tuple[float, float]]) -> Iterator[list[tuple[float, float]]]:
    """The intervals in runs of at least CHUNK_S: one read of the store for each run."""
    run: list[tuple[float, float]] = []
    for span in bounds:
        run.append(span)
        if run[-1][1] - run[0][0] >= CHUNK_S:
            yield run
            run = []
    if run:
        yield run


def rows(store: Any, cfg: KpiConfig, rcfg: ReportConfig, start: float, end: float, interval: str, by: str,
         pbx: str | None = None, *, scan: bool = False) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The report's rows, read from the store a day at a time (scan: every interval by kpis_over,
    the reference path the benchmark compares against)."""
    check_grouping(by, rcfg)
    for run in chunks(intervals(start, end, interval, cfg)):
        data = load(store, run[0][0], run[-1][1], by, pbx)
        for (lo, hi), part in zip(run, bucket(run, data), strict=True):
            yield from interval_rows(part, lo, hi, by, cfg, rcfg, scan=scan)


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row: nested figures as dotted columns (paused_s.break), misses joined by ';'."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            out[key] = ";".join(value)
        else:
            out[key] = value
    return out


def to_csv(report: dict[str, Any]) -> str:
    """One header row (every column any row has, in first-seen order), one row per (interval,
    group); null is an empty cell."""
    table = [flat(r) for r in report["rows"]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns_of(table), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buf.getvalue()


def columns_of(table: list[dict[str, Any]]) -> list[str]:
    """Every column any flat row has, in first-seen order."""
    columns: dict[str, None] = {}
    for r in table:
        columns.update(dict.fromkeys(r))
    return list(columns)


def render(report: dict[str, Any], fmt: str, title: str) -> bytes:
    if fmt == "json":
        return (json.dumps(report, ensure_ascii=False, allow_nan=False) + "\n").encode()
    if fmt == "csv":
        return to_csv(report).encode()
    if fmt == "xlsx":
        from acdbridge.reportxlsx import to_xlsx

        return to_xlsx(report)
    from acdbridge.reporthtml import to_html

    return to_html(report, title).encode()


def _settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """(config, store): --config gives the thresholds, zone, targets (and the store without --db)."""
    from acdbridge import config
    from acdbridge.adapters.store import open_store
    from acdbridge.cli import open_db

    cfg = config.load(args.config, for_daemon=False) if args.config else config.Config()
    if args.db is None:
        settings = cfg.store
        if not settings.url and not settings.path.exists():
            raise config.ConfigError(f"no store at {settings.path}")
        return cfg, open_store(settings)
    if "://" not in args.db and not Path(args.db).exists():
        raise ReportCliError(f"--db: no store at {args.db}")
    return cfg, open_db(args.db)


def _workforce(store: Any, cfg: Any, start: float, end: float, args: argparse.Namespace) -> bytes:
    """The scheduler's CSV (reportworkforce.py): per queue, so only with --by queue."""
    from acdbridge.reportworkforce import to_workforce_csv, workforce_rows

    if args.by != "queue":
        raise ReportCliError(f"--format workforce-csv is per queue: give --by queue, not --by {args.by}")
    made = workforce_rows(rows, store, cfg.kpi, cfg.report, start, end, args.interval, args.pbx)
    return to_workforce_csv(made)


def cmd_report(args: argparse.Namespace) -> int:
    if args.db is None and args.config is None:
        raise ReportCliError("give --db STORE or --config C (the daemon's config, its [store])")
    cfg, store = _settings(args)
    try:
        start, end = moment(args.since, "--from", cfg.kpi), moment(args.until, "--to", cfg.kpi)
        if end <= start:
            raise ReportCliError(f"--to {args.until} is not after --from {args.since}")
        if args.format == "workforce-csv":
            data = _workforce(store, cfg, start, end, args)
        else:
            made = rows(store, cfg.kpi, cfg.report, start, end, args.interval, args.by, args.pbx)
            report = {"rows": list(made), "targets": targets_of(cfg.kpi, cfg.report)}
    except ReportError as exc:
        raise ReportCliError(str(exc)) from None
    finally:
        store.close()
    if args.format != "workforce-csv":
        title = f"acdbridge report {args.since} to {args.until} by {args.interval}, by {args.by}"
        data = render(report, args.format, title)
    if args.out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            args.out.write_bytes(data)
        except OSError as exc:
            raise ReportCliError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="KPIs by interval and group from the store, against targets")
    p.add_argument("--db", metavar="STORE", help="an SQLite store file or a postgresql:// URL (PGPASSWORD)")
    p.add_argument(
        "--config", type=Path, help="the daemon's config: thresholds, time zone, [targets], its store"
    )
    when = "the start: a date, an ISO 8601 time (no offset: local) or epoch seconds"
    p.add_argument("--from", dest="since", metavar="F", required=True, help=when)
    p.add_argument("--to", dest="until", metavar="T", required=True, help="the end, exclusive (same forms)")
    p.add_argument("--interval", required=True, choices=INTERVALS, help="interval length on the local clock")
    p.add_argument("--by", required=True, choices=GROUPINGS, help="one row per interval and group")
    p.add_argument("--format", choices=FORMATS, default="json", help="default json")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--pbx", help="only this PBX's records (default: every PBX of the store)")
    p.set_defaults(func=cmd_report)
