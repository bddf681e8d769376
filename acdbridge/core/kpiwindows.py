"""KPI windows kept incrementally: per-bucket sums updated as each record is added, so a
window's KPIs are summed from buckets instead of rescanning every held record. Sans-IO.

Records are bucketed by end_ts at two widths (15 min, 1 h; every bucket is [k*w, (k+1)*w), exact
floats). A window [lo, hi) takes the widest buckets that fit inside it, narrower ones at its
ends, and only the records of the partial quarter-hour at each end one by one (a 1-minute width
made refreshes no faster and tripled the buckets' memory: at a few records per minute per queue
and agent, minute buckets hold about one record each). Agent state records
are clipped to the window: a bucket holding a stretch that began before lo is split down to its
records, and the stretches that end after hi are found the same way (a bucket whose stretches
all begin at or after hi holds none). The merged sums of a run of whole buckets are cached until
a record lands in one of them, so a refresh of "today" or "24h" merges a handful of sums.

The KPIs come out equal to `kpis_over` (core/kpi.py, the reference) on the same records: a
property test holds the two together (tests/test_kpiwindows.py)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from acdbridge.core.kpibase import Record, _overlap, _ratio, schedule_kpis
from acdbridge.core.kpisums import AgentSums, FeedbackSums, QueueSums, merge_into

if TYPE_CHECKING:
    from acdbridge.core.kpi import KpiConfig, Kpis

Row = tuple[float, int, tuple[Any, ...], Record]  # as in KpiEngine: (end_ts, seq, key, record)
WIDTHS = (900.0, 3600.0)  # bucket widths, narrowest first; each divides the next
TAKE, SKIP, SPLIT = 0, 1, 2  # what a walk does with a bucket
MAX_CACHED = 128


class Sums(Protocol):
    def add(self, record: Record) -> None: ...
    def merge(self, other: Any) -> None: ...


S = TypeVar("S", bound=Sums)


def key_of(x: float, width: float) -> int:
    """The k with k*width <= x < (k+1)*width, exactly (the float division may round across)."""
    k = math.floor(x / width)
    if k * width > x:
        k -= 1
    elif (k + 1) * width <= x:
        k += 1
    return k


def _first_key_from(x: float, width: float) -> int:
    """The smallest k with k*width >= x."""
    k = key_of(x, width)
    return k if k * width >= x else k + 1


class Buckets(Generic[S]):
    """Sums of the records of one table (sorted rows) per bucket, at every width."""

    def __init__(self, make: Callable[[], S], rows: list[Row]) -> None:
        self.make, self.rows = make, rows
        self.levels: list[dict[int, S]] = [{} for _ in WIDTHS]
        self.version: list[dict[int, int]] = [{} for _ in WIDTHS]
        self.dirty: set[tuple[int, int]] = set()  # buckets that lost records: rebuilt when read
        self._cache: dict[tuple[int, int, int], tuple[tuple[int, ...], S]] = {}
        self._gen = 0

    def add(self, record: Record) -> None:
        end = float(record["end_ts"])
        for level, width in enumerate(WIDTHS):
            k = key_of(end, width)
            bucket = self.levels[level].get(k)
            if bucket is None:
                bucket = self.levels[level][k] = self.make()
            bucket.add(record)
            self._bump(level, k)

    def _bump(self, level: int, k: int) -> None:
        self._gen += 1
        self.version[level][k] = self._gen

    def removed(self, gone: Sequence[Row]) -> None:
        """These rows have left the table (oldest first): a bucket they emptied is dropped, one
        that still holds rows is rebuilt when next read."""
        oldest = self.rows[0][0] if self.rows else math.inf
        for row in gone:
            for level, width in enumerate(WIDTHS):
                k = key_of(row[0], width)
                if (k + 1) * width <= oldest:
                    self.levels[level].pop(k, None)
                    self.version[level].pop(k, None)
                    self.dirty.discard((level, k))
                else:
                    self.dirty.add((level, k))

    def records(self, a: float, b: float) -> list[Row]:
        rows = self.rows
        return rows[bisect.bisect_left(rows, (a,)) : bisect.bisect_left(rows, (b,))]

    def get(self, level: int, k: int) -> S | None:
        if (level, k) in self.dirty:
            self.dirty.discard((level, k))
            width = WIDTHS[level]
            rows = self.records(k * width, (k + 1) * width)
            self.levels[level].pop(k, None)
            self._bump(level, k)
            if not rows:
                self.version[level].pop(k, None)
                return None
            bucket = self.levels[level][k] = self.make()
            for row in rows:
                bucket.add(row[3])
        return self.levels[level].get(k)

    def walk(self, a: float, b: float, decide: Callable[[S], int], take: Callable[[S], None],
             each: Callable[[Record], None], level: int = len(WIDTHS) - 1) -> None:  # fmt: skip
        """Every record with a <= end_ts < b once: in a bucket `decide` takes whole, or one by one
        (`each`), unless `decide` skips its bucket."""
        if level < 0:
            for row in self.records(a, b):
                each(row[3])
            return
        width = WIDTHS[level]
        k0, k1 = _first_key_from(a, width), key_of(b, width)  # whole buckets: k0 <= k < k1
        if k0 >= k1:
            self.walk(a, b, decide, take, each, level - 1)
            return
        self.walk(a, k0 * width, decide, take, each, level - 1)
        run: list[int] = []  # consecutive whole buckets, merged once and cached
        for k in range(k0, k1):
            bucket = self.get(level, k)
            if bucket is None:
                continue
            verdict = decide(bucket)
            if verdict == TAKE:
                run.append(k)
                continue
            self._take_run(level, run, take)
            run = []
            if verdict == SPLIT:
                self.walk(k * width, (k + 1) * width, decide, take, each, level - 1)
        self._take_run(level, run, take)
        self.walk(k1 * width, b, decide, take, each, level - 1)

    def _take_run(self, level: int, run: list[int], take: Callable[[S], None]) -> None:
        if len(run) < 2:
            if run:
                take(self.levels[level][run[0]])
            return
        versions = tuple(self.version[level][k] for k in run)
        cached = self._cache.get((level, run[0], run[-1]))
        if cached is None or cached[0] != versions:
            merged = self.make()
            for k in run:
                merged.merge(self.levels[level][k])
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            cached = self._cache[(level, run[0], run[-1])] = (versions, merged)
        take(cached[1])


class VisitBucket:
    """The visits of a stretch of time: per queue, and per agent (answered, ring attempts)."""

    __slots__ = ("agents", "cfg", "queues")

    def __init__(self, cfg: KpiConfig) -> None:
        self.cfg = cfg
        self.queues: dict[str, QueueSums] = {}
        self.agents: dict[str, AgentSums] = {}

    def add(self, v: Record) -> None:
        q = v["queue"]
        sums = self.queues.get(q)
        if sums is None:
            sums = self.queues[q] = QueueSums()
        sums.add(v, self.cfg.queue(q), self.cfg.ring_cadence_s)
        if v["outcome"] == "answered" and v["agent"]:
            self._agent(v["agent"]).add_visit(v)
        for attempt in v["ring_attempts"]:  # every agent rung is in the agents, answered or not
            self._agent(attempt["agent"]).c[1] += attempt["result"] == "no_answer"

    def _agent(self, name: str) -> AgentSums:
        sums = self.agents.get(name)
        if sums is None:
            sums = self.agents[name] = AgentSums()
        return sums

    def merge(self, o: VisitBucket) -> None:
        merge_into(self.queues, o.queues, QueueSums)
        merge_into(self.agents, o.agents, AgentSums)


class StateBucket:
    """The agent state records that ended in a stretch of time, unclipped, and the earliest start."""

    __slots__ = ("agents", "min_start")

    def __init__(self) -> None:
        self.agents: dict[str, AgentSums] = {}
        self.min_start = math.inf

    def add(self, s: Record) -> None:
        self.min_start = min(self.min_start, s["start_ts"])
        self.add_clipped(s, _overlap(s["start_ts"], s["end_ts"], -math.inf, math.inf))

    def add_clipped(self, s: Record, d: float) -> None:
        if d > 0:  # a stretch with nothing inside the window is in no figure (as in kpis_over)
            sums = self.agents.get(s["agent"])
            if sums is None:
                sums = self.agents[s["agent"]] = AgentSums()
            sums.add_state(s, d)

    def merge(self, o: StateBucket) -> None:
        merge_into(self.agents, o.agents, AgentSums)
        self.min_start = min(self.min_start, o.min_start)


class FeedbackBucket:
    __slots__ = ("queues",)

    def __init__(self) -> None:
        self.queues: dict[str, FeedbackSums] = {}

    def add(self, f: Record) -> None:
        sums = self.queues.get(f["queue"])
        if sums is None:
            sums = self.queues[f["queue"]] = FeedbackSums()
        sums.add(f)

    def merge(self, o: FeedbackBucket) -> None:
        merge_into(self.queues, o.queues, FeedbackSums)


class WindowIndex:
    """The buckets of KpiEngine's three tables (it keeps the rows, sorted by end_ts, and tells
    this index of every row added or about to be dropped)."""

    def __init__(self, cfg: KpiConfig, visits: list[Row], states: list[Row], feedback: list[Row]) -> None:
        self.cfg = cfg
        self.visits = Buckets(lambda: VisitBucket(cfg), visits)
        self.states = Buckets(StateBucket, states)
        self.feedback = Buckets(FeedbackBucket, feedback)
        # adherence needs each stretch against each scheduled span: a scheduled agent's own rows
        self.scheduled: dict[str, list[Row]] = {name: [] for name in cfg.schedules or ()}

    def add(self, rows: list[Row], row: Row) -> None:
        if rows is self.visits.rows:
            self.visits.add(row[3])
        elif rows is self.states.rows:
            self.states.add(row[3])
            if row[3]["agent"] in self.scheduled:
                bisect.insort(self.scheduled[row[3]["agent"]], row)
        else:
            self.feedback.add(row[3])

    def removed(self, rows: list[Row], gone: Sequence[Row]) -> None:
        for buckets in (self.visits, self.states, self.feedback):
            if rows is buckets.rows:
                buckets.removed(gone)
        if rows is self.states.rows:
            for row in gone:
                own = self.scheduled.get(row[3]["agent"])
                if own is not None:
                    del own[bisect.bisect_left(own, row[:2])]

    def over(self, lo: float, hi: float) -> Kpis:
        """The KPIs of [lo, hi), equal to kpis_over of the rows held."""
        v, fb, st = VisitBucket(self.cfg), FeedbackBucket(), StateBucket()
        self.visits.walk(lo, hi, lambda b: TAKE, v.merge, v.add)
        self.feedback.walk(lo, hi, lambda b: TAKE, fb.merge, fb.add)

        def clipped(s: Record) -> None:
            st.add_clipped(s, _overlap(s["start_ts"], s["end_ts"], lo, hi))

        self.states.walk(lo, hi, lambda b: TAKE if b.min_start >= lo else SPLIT, st.merge, clipped)
        rows = self.states.rows
        if rows and rows[-1][0] >= hi:  # stretches that end after the window may begin inside it
            last = math.nextafter(rows[-1][0], math.inf)
            self.states.walk(hi, last, lambda b: SKIP if b.min_start >= hi else SPLIT, st.merge, clipped)
        return self._kpis(v, st, fb, lo, hi)

    def _kpis(self, v: VisitBucket, st: StateBucket, fb: FeedbackBucket, lo: float, hi: float) -> Kpis:
        cfg = self.cfg
        empty = QueueSums()
        queues = {
            q: v.queues.get(q, empty).kpis(cfg.queue(q), cfg) for q in sorted(cfg.queues.keys() | v.queues)
        }
        if cfg.cost_per_hour is not None:
            offered = sum(sums.c[0] for sums in v.queues.values())
            cost_per_call = _ratio(cfg.cost_per_hour * (hi - lo) / 3600.0, offered)
            for q in queues.values():
                q.update(cost_per_call=cost_per_call, cost_per_hour=cfg.cost_per_hour)
        agents, none = {}, AgentSums()
        for name in sorted(self.scheduled.keys() | v.agents.keys() | st.agents.keys()):
            out = agents[name] = v.agents.get(name, none).kpis(st.agents.get(name, none))
            if cfg.schedules is not None and name in cfg.schedules:
                out.update(schedule_kpis(cfg.schedules[name], self._clipped(name, lo, hi), lo, hi))
            if cfg.qa_scores is not None and name in cfg.qa_scores:
                out["monitoring_score"] = cfg.qa_scores[name]
        for queue in sorted(fb.queues.keys() | queues.keys()):
            queues.setdefault(queue, {}).update(fb.queues.get(queue, FeedbackSums()).kpis())
        return {"queues": queues, "agents": agents}

    def _clipped(self, name: str, lo: float, hi: float) -> list[tuple[Record, float]]:
        own = self.scheduled[name]
        rows = own[bisect.bisect_right(own, (lo, math.inf)) :]
        overlaps = ((row[3], _overlap(row[3]["start_ts"], row[3]["end_ts"], lo, hi)) for row in rows)
        return [(s, d) for s, d in overlaps if d > 0]
