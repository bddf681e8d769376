"""The per-record pieces every KPI is made of, shared by the full scan (core/kpi.py) and the
incremental windows (core/kpiwindows.py) so that both apply the very same definitions. Sans-IO."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from acdbridge.core.values import is_ascii_digits

Record = Mapping[str, Any]
DIGITS = 6
SATISFIED_SCORE = 4  # a survey score of 4 or 5 (of 5) counts as satisfied
BUSY = ("talking", "on_hold", "wrapup")
NOT_WORKING = ("logged_out", "paused")


def _r(x: float) -> float:
    return round(x, DIGITS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else _r(num / den)


def _mean(values: Sequence[float]) -> float | None:
    return _ratio(math.fsum(values), len(values))


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _handle_s(v: Record) -> float:
    # hold_s is null in a visit backfilled from queue_log (its talk_s then includes the hold)
    return float(v["talk_s"] + (v["hold_s"] or 0.0) + (v["wrap_s"] or 0.0))


def _score(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 2 and is_ascii_digits(value)


def schedule_kpis(
    spans_cfg: Sequence[tuple[float, float]], clipped: Sequence[tuple[Record, float]], lo: float, hi: float
) -> dict[str, Any]:
    """Adherence, scheduled time and attendance of one agent from its state records that overlap
    [lo, hi) (each with its clipped duration) and its scheduled spans (docs/kpi.md)."""
    spans = [(max(a, lo), min(b, hi)) for a, b in spans_cfg if min(b, hi) > max(a, lo)]
    scheduled = math.fsum(b - a for a, b in spans)
    working = math.fsum(
        _overlap(s["start_ts"], s["end_ts"], a, b)
        for s, _ in clipped
        if s["state"] not in NOT_WORKING
        for a, b in spans
    )
    # attendance: did the scheduled agent log in at all during the schedule (1.0 / 0.0);
    # the centre's attendance is the mean over scheduled agents
    present = any(
        _overlap(s["start_ts"], s["end_ts"], a, b) > 0 for s, _ in clipped if s["state"] != "logged_out"
        for a, b in spans
    )  # fmt: skip
    return {
        "adherence": _ratio(working, scheduled),
        "scheduled_s": _r(scheduled),
        "attendance": (1.0 if present else 0.0) if spans else None,
    }
