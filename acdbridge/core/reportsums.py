"""The queue-section figures of a report interval (--by queue, call_type, hotline, pbx) from one
pass over its records, instead of `kpis_over`'s full scan. Sans-IO.

`kpis_over` stays the reference: for the same records, `queue_section` returns exactly its
["queues"] (the same sane filter, configured queues present, cost_per_call, feedback figures),
which tests/test_reportsums.py holds by a property test. It is faster because each record is
looked at once (kpis_over filters every queue's list a dozen times) and no record is copied to
relabel it: `label` gives a record's group.

Exact the same way as kpis_over: each figure's values are kept in a list and added by math.fsum
(correctly rounded, so order does not matter). core/kpisums.py's mergeable integer sums give the
same floats too, but cost about twice as much per record; an interval is summed once, so it has
no need to merge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from acdbridge.core.kpi import sane
from acdbridge.core.kpibase import Record, _handle_s, _r, _ratio
from acdbridge.core.kpisums import FeedbackSums

if TYPE_CHECKING:
    from acdbridge.core.kpi import KpiConfig, QueueKpiConfig

Label = Callable[[Record], str]
_COUNTED = ("answered", "abandoned", "timeout", "exit_empty", "exit_key", "blocked")


class QueueLists:
    """One group's visits in an interval: counts, and each summed figure's values."""

    __slots__ = ("abandon_waits", "answer_waits", "counts", "handle", "holds", "rings", "short",
                 "talk", "transfers", "waits", "within", "wrap")  # fmt: skip

    def __init__(self) -> None:
        self.counts = dict.fromkeys(_COUNTED, 0)
        self.short = self.within = self.transfers = 0
        self.waits: list[float] = []  # of visits that entered the queue (not blocked)
        self.answer_waits: list[float] = []
        self.abandon_waits: list[float] = []
        self.talk: list[float] = []
        self.holds: list[float] = []
        self.wrap: list[float] = []
        self.handle: list[float] = []
        self.rings: list[float] = []

    def add(self, v: Record, qc: QueueKpiConfig, cadence: float) -> None:
        outcome, wait = v["outcome"], v["wait_s"]
        if outcome in self.counts:
            self.counts[outcome] += 1
        if outcome != "blocked":
            self.waits.append(wait)
        if outcome == "answered":
            self.answer_waits.append(wait)
            self.within += wait <= qc.sl_threshold_s
            self.talk.append(v["talk_s"])
            if v["hold_s"] is not None:
                self.holds.append(v["hold_s"])
            self.wrap.append(v["wrap_s"] or 0.0)
            self.handle.append(_handle_s(v))
            if v["ring_s"] is not None:
                self.rings.append(v["ring_s"] / cadence)
        elif outcome == "abandoned":
            self.abandon_waits.append(wait)
            self.short += wait <= qc.short_abandon_s
        self.transfers += bool(v["transfer"])


def _queue_of(record: Record) -> str:
    return str(record["queue"])


def queue_section(visits: Iterable[Record], feedback: Iterable[Record], cfg: KpiConfig, lo: float,
                  hi: float, label: Label | None = None) -> dict[str, dict[str, Any]]:  # fmt: skip
    """kpis_over(visits, (), cfg, lo, hi, feedback)["queues"], with each record's queue read as
    label(record) (None: its own queue)."""
    group = label or _queue_of
    sums: dict[str, QueueLists] = {q: QueueLists() for q in cfg.queues}
    cadence, counted = cfg.ring_cadence_s, 0
    for v in visits:
        if not (lo <= v["end_ts"] < hi and sane(v)):
            continue
        name = group(v)
        s = sums.get(name)
        if s is None:
            s = sums[name] = QueueLists()
        s.add(v, cfg.queue(name), cadence)
        counted += 1
    queues = {q: _kpis(s, cfg.queue(q), cfg) for q, s in sorted(sums.items())}
    if cfg.cost_per_hour is not None:
        cost_per_call = _ratio(cfg.cost_per_hour * (hi - lo) / 3600.0, counted)
        for q in queues.values():
            q.update(cost_per_call=cost_per_call, cost_per_hour=cfg.cost_per_hour)
    scored: dict[str, FeedbackSums] = {}
    for f in feedback:
        if lo <= f["ts"] < hi and sane(f):
            name = group(f)
            fs = scored.get(name)
            if fs is None:
                fs = scored[name] = FeedbackSums()
            fs.add(f)
    empty = FeedbackSums()
    for queue in sorted(scored.keys() | queues.keys()):
        queues.setdefault(queue, {}).update(scored.get(queue, empty).kpis())
    return queues


def _mean(values: list[float]) -> float | None:
    return _ratio(math.fsum(values), len(values))


def _kpis(s: QueueLists, qc: QueueKpiConfig, cfg: KpiConfig) -> dict[str, Any]:
    """core/kpi.py's _queue_kpis figures, in its order."""
    c = s.counts
    answered, abandoned, blocked = c["answered"], c["abandoned"], c["blocked"]
    offered = len(s.waits) + blocked
    base = offered - blocked - s.short  # the service-level and abandon-rate denominator
    return {
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "short_abandoned": s.short,
        "timeout": c["timeout"],
        "exit_empty": c["exit_empty"],
        "exit_key": c["exit_key"],
        "blocked": blocked,
        "answered_within_sl": s.within,
        "service_level": _ratio(s.within, base),
        "asa_s": _mean(s.answer_waits),
        "avg_wait_s": _mean(s.waits),
        "max_wait_s": _r(max(s.waits)) if s.waits else None,
        "avg_abandon_wait_s": _mean(s.abandon_waits),
        "avg_talk_s": _mean(s.talk),
        "avg_hold_s": _mean(s.holds),
        "avg_wrap_s": _mean(s.wrap),
        "aht_s": _mean(s.handle),
        "avg_rings": _mean(s.rings),
        "abandon_rate": _ratio(abandoned - s.short, base),
        "percent_answered": _ratio(answered, offered),
        "transfers": s.transfers,
        "transfer_rate": _ratio(s.transfers, answered),
        "sl_threshold_s": qc.sl_threshold_s,
        "short_abandon_s": qc.short_abandon_s,
        "ring_cadence_s": cfg.ring_cadence_s,
    }
