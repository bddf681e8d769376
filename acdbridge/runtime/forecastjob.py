"""The forecast's history, read from the store: for the interval after the one in progress, the
same interval of each of the last N weeks (core/forecast.py), read once per interval in a
worker thread and handed to the views, which turn it into "next" staffing at each refresh."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import structlog

from acdbridge.adapters.store import Store
from acdbridge.core.forecast import DEFAULT_WEEKS, SlotLoad, history_for, slot_loads, week_back
from acdbridge.runtime.views import Views

log = structlog.get_logger()
CHECK_S = 30.0  # how often it looks whether the next interval moved on


class ForecastJob:
    def __init__(self, store: Store, views: Views, *, pbx: str | None = None, weeks: int = DEFAULT_WEEKS,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.store, self.views, self.pbx, self.weeks, self.clock = store, views, pbx, weeks, clock
        self.reads = 0  # history reads done (tests look at it)

    def read(self, start: float, end: float) -> dict[str, list[SlotLoad | None]]:
        """Per queue, the slot [start, end) in each of the last `weeks` weeks (worker thread)."""
        tz = self.views.kpi.tz
        first = self.store.first_visit_end(pbx=self.pbx)
        per_week: list[Mapping[str, SlotLoad] | None] = []
        for k in range(1, self.weeks + 1):
            lo, hi = week_back(start, k, tz), week_back(end, k, tz)
            if first is None or hi <= first:  # before the store began: no history, not a quiet slot
                per_week.append(None)
            else:
                per_week.append(slot_loads(self.store.report_visits(lo, hi, pbx=self.pbx)))
        queues = {q for week in per_week if week for q in week} | set(self.views.kpi.queues)
        return history_for(per_week, queues)

    async def tick(self) -> None:
        start, end = self.views.next_interval(self.clock())
        if start == self.views.history_for:
            return
        history = await asyncio.to_thread(self.read, start, end)
        self.reads += 1
        self.views.set_history(start, history)
        log.info("forecast_history", interval_start=start, queues=len(history),
                 weeks=max((sum(s is not None for s in h) for h in history.values()), default=0))  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        """Supervised: a store failure is raised, counted as a restart and tried again."""
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_S)
