"""`acdbridge report --format workforce-csv`: per queue and interval of [--from, --to), the calls
forecast from the same interval of the last 4 weeks in the store (core/forecast.py, the live
"next" figure's method), its AHT and the agents it needs: a file a scheduler imports.

Each interval is forecast from the weeks before it, so a past period shows what would have been
forecast for it and a future one what to schedule. The weeks come from the queue report of each
shifted period (reportcli.rows: the same figures as every report)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from acdbridge.core.forecast import DEFAULT_WEEKS, SlotLoad, forecast, week_back
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.report import ReportConfig, intervals, iso
from acdbridge.core.workforce import MIN_ABANDONS, Load, required

COLUMNS = ("queue", "start", "end", "forecast_calls", "aht_s", "required_agents", "model", "weeks", "source")
Key = tuple[str, str]  # (queue, local wall-clock start without offset)
Week = dict[Key, SlotLoad]


def _wall(ts_or_iso: float | str, cfg: KpiConfig, days: int = 0) -> str:
    if isinstance(ts_or_iso, str):
        local = datetime.fromisoformat(ts_or_iso).astimezone(cfg.tz)
    else:
        local = datetime.fromtimestamp(ts_or_iso, cfg.tz)
    return (local.replace(tzinfo=None) + timedelta(days=days)).isoformat()


def _slot(row: Mapping[str, Any]) -> SlotLoad:
    answered = int(row.get("answered") or 0)
    return SlotLoad(int(row.get("offered") or 0), answered, float(row.get("aht_s") or 0.0) * answered)


def _patience(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """Every queued caller's wait / abandons over the weeks read (core/workforce.patience_of)."""
    waits = abandons = 0.0
    for r in rows:
        entered = int(r.get("offered") or 0) - int(r.get("blocked") or 0)
        waits += float(r.get("avg_wait_s") or 0.0) * max(entered, 0)
        abandons += int(r.get("abandoned") or 0)
    return waits / abandons if abandons >= MIN_ABANDONS and waits > 0 else None


def _weeks(
    rows_of: Any, store: Any, cfg: KpiConfig, rcfg: ReportConfig, span: tuple[float, float],
    interval: str, pbx: str | None, weeks: int,
) -> tuple[list[Week], dict[str, list[Any]]]:  # fmt: skip
    """Each past week's queue rows keyed by the wall clock they stand for now, and per queue
    every row read (for the patience)."""
    by_week: list[Week] = []
    per_queue: dict[str, list[Any]] = {}
    for k in range(1, weeks + 1):
        lo, hi = week_back(span[0], k, cfg.tz), week_back(span[1], k, cfg.tz)
        week: Week = {}
        for row in rows_of(store, cfg, rcfg, lo, hi, interval, "queue", pbx):
            week[(str(row["queue"]), _wall(row["start"], cfg, 7 * k))] = _slot(row)
            per_queue.setdefault(str(row["queue"]), []).append(row)
        by_week.append(week)
    return by_week, per_queue


def workforce_rows(rows_of: Any, store: Any, cfg: KpiConfig, rcfg: ReportConfig, start: float,
                   end: float, interval: str, pbx: str | None = None,
                   weeks: int = DEFAULT_WEEKS) -> list[dict[str, Any]]:  # fmt: skip
    """rows_of: reportcli.rows (passed in: no import cycle). A week before the store's first
    visit is no history; an interval with no week at all has no forecast (source "none")."""
    first = store.first_visit_end(pbx=pbx)
    by_week, per_queue = _weeks(rows_of, store, cfg, rcfg, (start, end), interval, pbx, weeks)
    queues = sorted(set(per_queue) | set(cfg.queues))
    patience = {q: _patience(per_queue.get(q, [])) for q in queues}
    out = []
    for lo, hi in intervals(start, end, interval, cfg):
        wall = _wall(lo, cfg)
        for q in queues:
            history = [None if first is None or week_back(hi, k + 1, cfg.tz) <= first
                       else by_week[k].get((q, wall), SlotLoad(0, 0, 0.0)) for k in range(weeks)]  # fmt: skip
            f = forecast(history, 0.0, None)
            known = f.source == "history"
            n = required(Load(f.calls, hi - lo, f.aht_s, patience[q]), cfg.queue(q)) if known else None
            out.append({
                "queue": q, "start": iso(lo, cfg), "end": iso(hi, cfg),
                "forecast_calls": round(f.calls, 2) if known else None,
                "aht_s": None if f.aht_s is None else round(f.aht_s, 1), "required_agents": n,
                "model": "erlang_c" if patience[q] is None else "erlang_a", "weeks": f.weeks,
                "source": f.source if known else "none",
            })  # fmt: skip
    return out


def to_workforce_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()
