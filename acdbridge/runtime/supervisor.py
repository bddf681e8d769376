"""The supervisor desk's source: the grid (core/supgrid.py) from the engine's trackers, the
caller cards, the KPI windows the wallboard reads (runtime/views.py) and the KPI engine's held
records (today's abandons), filtered to a supervisor's queues. The web side
(adapters/web/supervisor.py) asks for it at each board refresh and sends what changed.

Abandoned calls marked handled are kept here; the audit log keeps who marked which, and a
restarted daemon reads its marks back from there (`restore_handled`), so a call marked handled
does not come back. `mark_handled` is the hook the callback feature will call too."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from acdbridge.access.model import AuditEntry
from acdbridge.core.desk import calls_by_agent
from acdbridge.core.kpi import day_start
from acdbridge.core.routing import memberships
from acdbridge.core.supgrid import (
    TimeLimits,
    agent_row,
    caller_repeats,
    open_abandons,
    queue_panels,
    waiting_callers,
)
from acdbridge.core.visit import Visit
from acdbridge.flowconfig import FlowConfig
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.views import Views

MAX_HANDLED = 10_000  # handled marks kept (oldest dropped): more than a day's abandons


@dataclass(frozen=True)
class Handled:
    by: str  # the account that marked it (or "callback" for the callback feature)
    ts: float


@dataclass
class Grid:
    """One moment's desk for one scope: rows by agent, panels by queue, open abandons."""

    rows: dict[str, dict[str, Any]]
    queues: dict[str, dict[str, Any]]
    abandons: list[dict[str, Any]]


class SupervisorFeed:
    def __init__(self, engine: Engine, views: Views, flow: Callable[[], FlowConfig | None],
                 limits: TimeLimits) -> None:  # fmt: skip
        self.engine, self.views, self.flow, self.limits = engine, views, flow, limits
        self.handled: dict[str, Handled] = {}
        self.on_handled: list[Callable[[str, Handled], None]] = []  # the callback feature listens
        self._memberships: tuple[FlowConfig | None, dict[str, set[str]]] = (None, {})

    def mark_handled(self, key: str, by: str, ts: float) -> bool:
        """Mark one abandoned call (supgrid.abandon_key) handled; False when it already was."""
        if key in self.handled:
            return False
        if len(self.handled) >= MAX_HANDLED:
            del self.handled[next(iter(self.handled))]
        mark = self.handled[key] = Handled(by, ts)
        for listener in self.on_handled:
            listener(key, mark)
        return True

    def restore_handled(self, marks: Iterable[AuditEntry]) -> int:
        """The marks of earlier runs, from the audit log's `abandon_handled` rows (oldest first)."""
        before = len(self.handled)
        for entry in marks:
            if len(self.handled) >= MAX_HANDLED:
                del self.handled[next(iter(self.handled))]
            self.handled.setdefault(entry.target, Handled(entry.actor, entry.ts))
        return len(self.handled) - before

    def _configured(self, flow: FlowConfig) -> dict[str, set[str]]:
        """agent -> their queues by routing, computed once per flow (a reload or a skill change
        makes a new one): 500 agents x 50 groups at every tick would be most of a grid's cost."""
        if self._memberships[0] is not flow:
            self._memberships = (
                flow,
                {p.name: set(memberships(p, flow.routing)) for p in flow.profiles.values()},
            )
        return self._memberships[1]

    def _members_now(self) -> dict[str, set[str]]:
        """interface -> the queues app_queue has it in now (one pass over the member book)."""
        out: dict[str, set[str]] = {}
        for queue, interface in self.engine.pipeline.members.penalty:
            out.setdefault(interface, set()).add(queue)
        return out

    def calls(self) -> dict[str, Visit]:
        calls = self.engine.pipeline.calls
        return calls_by_agent(calls.active.values(), calls.wraps.wrapping)

    def grid(self, now: float, scope: set[str] | None) -> Grid:
        """The desk for a supervisor of `scope`'s queues (None: an admin, everything)."""
        flow = self.flow()
        p = self.engine.pipeline
        calls = self.calls()
        today = self.views.windows.get("today", {})
        agent_kpis = today.get("agents", {})
        rows: dict[str, dict[str, Any]] = {}
        configured = self._configured(flow) if flow is not None else {}
        now_in = self._members_now()
        for profile in flow.profiles.values() if flow is not None else ():
            queues = configured.get(profile.name, set()) | now_in.get(profile.interface, set())
            if scope is not None and not queues & scope:
                continue
            agent = p.agents.agents.get(profile.interface)
            rows[profile.name] = agent_row(profile.name, profile.skills, queues, agent,
                                           calls.get(profile.interface), agent_kpis.get(profile.name),
                                           self.limits)  # fmt: skip
        start = day_start(now, self.engine.kpis.cfg)
        records = self.engine.kpis.visits_since(start)
        window = flow.routing.repeat_window_s if flow is not None else 4 * 3600.0
        waiting = waiting_callers(
            p.calls.active.values(), p.cards.cards, caller_repeats(records, window), window
        )
        names = set(waiting) | {q for r in rows.values() for q in r["queues"]}
        if flow is not None:
            names |= {g.queue for g in flow.routing.groups}
        if scope is not None:
            names &= scope
        panels = queue_panels(names, waiting, rows.values(), today.get("queues", {}))
        cfg = self.engine.kpis.cfg
        abandons = open_abandons(records, start, lambda q: cfg.queue(q).short_abandon_s, self.handled,
                                 None if scope is None else names)  # fmt: skip
        return Grid(rows, panels, abandons)
