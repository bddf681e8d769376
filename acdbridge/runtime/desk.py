"""The desks' source: one agent's desk (core/desk.py) from the engine's trackers, the KPI windows
the wallboard reads (runtime/views.py), and the caller's previous calls from the store, read
once per call in a thread and kept for the call's life. The web side (adapters/web/desk.py)
asks for a desk at each board refresh and pushes it when it changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

import structlog

from acdbridge.core.desk import DeskTargets, calls_by_agent, desk_view, previous_calls, screen_pop
from acdbridge.core.visit import Visit
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.views import Views

log = structlog.get_logger("acdbridge.desk")
HISTORY_DAYS = 7.0  # previous calls shown: those of the last N days
MAX_CACHED = 1000  # calls whose previous calls are kept


class History(Protocol):
    """The store's reads the desk needs (both backends have them)."""

    def each_visit(
        self, since: float, until: float, queue: str | None = None, *, pbx: str | None = None
    ) -> Iterator[dict[str, Any]]: ...
    def feedback(self, since: float, until: float, *, pbx: str | None = None) -> list[dict[str, Any]]: ...


class DeskFeed:
    def __init__(
        self, engine: Engine, views: Views, store: History | None, *,
        targets: DeskTargets | None = None, history_days: float = HISTORY_DAYS,
    ) -> None:  # fmt: skip
        self.engine, self.views, self.store = engine, views, store
        self.targets = targets or DeskTargets()
        self.history_days = history_days
        self.previous: dict[str, list[dict[str, Any]]] = {}  # call uniqueid -> previous calls
        self._reading: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references
        self.on_history: list[Any] = []  # called (no argument) when a call's history is in

    def calls(self) -> dict[str, Visit]:
        """Each agent's call now (pass it to view() for many desks at one moment)."""
        calls = self.engine.pipeline.calls
        return calls_by_agent(calls.active.values(), calls.wraps.wrapping)

    def view(
        self, name: str, interface: str, now: float, calls: dict[str, Visit] | None = None
    ) -> dict[str, Any]:
        p = self.engine.pipeline
        agent = p.agents.agents.get(interface)
        visit = (self.calls() if calls is None else calls).get(interface)
        pop = None
        if visit is not None:
            pop = screen_pop(visit, p.cards.cards.get(visit.uniqueid))
            known = self.previous.get(visit.uniqueid)
            if known is None:
                self._read_history(visit.uniqueid, visit.caller, now)
            pop.previous = known or []
        kpis = self.views.windows.get("today", {}).get("agents", {}).get(name)
        view = desk_view(name, agent, pop, kpis, self.targets)
        if view["call"] is not None:
            view["call"]["history_loaded"] = visit is not None and visit.uniqueid in self.previous
        return view

    def _read_history(self, uniqueid: str, caller: str, now: float) -> None:
        if self.store is None or not caller:
            self.previous[uniqueid] = []
            return
        if uniqueid in self._reading:
            return
        self._reading.add(uniqueid)
        with contextlib.suppress(RuntimeError):  # no loop (a unit test): read inline
            task = asyncio.get_running_loop().create_task(self._history(uniqueid, caller, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._store_history(uniqueid, self._read(caller, uniqueid, now))

    async def _history(self, uniqueid: str, caller: str, now: float) -> None:
        try:
            found = await asyncio.to_thread(self._read, caller, uniqueid, now)
        except Exception:  # a store failure costs the history, never the screen pop
            log.exception("desk_history_failed")
            found = []
        self._store_history(uniqueid, found)
        for wake in self.on_history:
            wake()

    def _store_history(self, uniqueid: str, found: list[dict[str, Any]]) -> None:
        self._reading.discard(uniqueid)
        if len(self.previous) >= MAX_CACHED:
            del self.previous[next(iter(self.previous))]
        self.previous[uniqueid] = found

    def _read(self, caller: str, uniqueid: str, now: float) -> list[dict[str, Any]]:
        assert self.store is not None
        since = now - self.history_days * 86400.0
        visits = (v for v in self.store.each_visit(since, now + 1) if v.get("caller") == caller)
        mine = list(visits)
        feedback = self.store.feedback(since, now + 86400.0) if mine else []
        return previous_calls(caller, mine, feedback, exclude=uniqueid)
