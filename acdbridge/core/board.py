"""What a wallboard shows, per queue and per agent: one pure view shared by the MQTT signs and
the built-in web wallboard, computed from the live gauges and the KPI windows. Sans-IO."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from acdbridge.core.agents import Agent
from acdbridge.core.kpi import KpiConfig, Kpis
from acdbridge.core.tallies import LiveGauges
from acdbridge.core.values import MAX_TS, finite
from acdbridge.core.workforce import Need, staffed


@dataclass(frozen=True)
class Missed:
    """A target a tile misses: the figure, its value and target, and in words (English: the MQTT
    signs and logs; the web page words it in the viewer's language from the other fields)."""

    figure: str  # service_level | waiting (callers waiting with no agent ready)
    value: float
    target: float
    text: str  # "SL 72% below its 80% target", "2 waiting, no agent ready"


@dataclass(frozen=True)
class QueueBoard:
    queue: str
    calls_waiting: int
    longest_wait_s: float
    avg_wait_today_s: float | None  # average queue time of today's answered calls (ASA)
    service_level: float | None  # rolling window (the first configured, 15 min by default)
    abandon_rate: float | None  # same window
    offered_today: int
    agents_ready: int
    agents_talking: int  # talking or on hold
    agents_paused: int
    sl_target: float
    sl_threshold_s: float
    window: str
    status: str  # ok | warn | alarm, against the targets
    missed: tuple[Missed, ...] = ()  # why the status is not ok
    # "need 12, have 9" (docs/kpi.md, "Workforce"): Erlang's agents for the SL target at the last
    # half hour's load (None: no AHT yet), the next interval's, and members logged in, not paused
    agents_needed: int | None = None
    agents_needed_next: int | None = None
    agents_staffed: int = 0

    @property
    def led(self) -> str:
        """One line for a 1-2 line LED matrix sign, e.g. 'WAIT 3 LONG 0:45 SL 82%'."""
        # int() of inf or NaN raises: a gauge's value is finite, but a board must never fail
        longest = int(min(finite(self.longest_wait_s), MAX_TS))
        sl = "--" if self.service_level is None else f"{round(self.service_level * 100)}%"
        return f"WAIT {self.calls_waiting} LONG {longest // 60}:{longest % 60:02d} SL {sl}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "led": self.led}


@dataclass(frozen=True)
class AgentBoard:
    agent: str
    state: str
    since: float | None = None  # when the shown state began (the event's time): the chip's clock
    reason: str = ""  # the pause reason, while paused


def _pct(x: float) -> str:
    return f"{round(x * 100)}%"


def _status(sl: float | None, target: float, waiting: int, ready: int) -> tuple[str, tuple[Missed, ...]]:
    """ok | warn | alarm, and each target missed: a red tile says why it is red."""
    status, missed = "ok", []
    if sl is not None and sl < target:
        status = "alarm" if sl < target - 0.1 else "warn"
        missed.append(Missed("service_level", sl, target, f"SL {_pct(sl)} below its {_pct(target)} target"))
    if waiting and not ready:
        status = "alarm"
        missed.append(Missed("waiting", waiting, 0, f"{waiting} waiting, no agent ready"))
    return status, tuple(missed)


def queue_boards(
    live: LiveGauges, windows: dict[str, Kpis], cfg: KpiConfig, needs: Mapping[str, Need] | None = None
) -> dict[str, QueueBoard]:
    window = f"{cfg.windows_s[0] / 60:g}m"
    have = staffed(live)
    rolling = windows.get(window, {}).get("queues", {})
    today = windows.get("today", {}).get("queues", {})
    queues = sorted(set(live.calls_waiting) | set(rolling) | {q for q, _ in live.agents})
    boards = {}
    for q in queues:

        def agents(*states: str, q: str = q) -> int:
            return sum(live.agents.get((q, s), 0) for s in states)

        qc = cfg.queue(q)
        sl = rolling.get(q, {}).get("service_level")
        waiting, ready = live.calls_waiting.get(q, 0), agents("ready")
        status, missed = _status(sl, qc.sl_target, waiting, ready)
        need = (needs or {}).get(q)
        boards[q] = QueueBoard(
            queue=q,
            calls_waiting=waiting,
            longest_wait_s=live.longest_wait_s.get(q, 0.0),
            avg_wait_today_s=today.get(q, {}).get("asa_s"),
            service_level=sl,
            abandon_rate=rolling.get(q, {}).get("abandon_rate"),
            offered_today=int(today.get(q, {}).get("offered", 0)),
            agents_ready=ready,
            agents_talking=agents("talking", "on_hold"),
            agents_paused=agents("paused"),
            sl_target=qc.sl_target,
            sl_threshold_s=qc.sl_threshold_s,
            window=window,
            status=status,
            missed=missed,
            agents_needed=None if need is None else need.now,
            agents_needed_next=None if need is None else need.next,
            agents_staffed=have.get(q, 0),
        )
    return boards


def agent_boards(live: LiveGauges, agents: Iterable[Agent] = ()) -> dict[str, AgentBoard]:
    """Each agent's shown state, with since when and (paused) why, from the agent tracker."""
    detail = {a.name: a for a in agents}
    boards = {}
    for (name, state), on in sorted(live.agent_state.items()):
        if not on:
            continue
        agent = detail.get(name)
        since = agent.since if agent is not None else None
        reason = agent.pause_reason if agent is not None and state == "paused" else ""
        boards[name] = AgentBoard(name, state, since, reason)
    return boards
