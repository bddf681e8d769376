"""What the engine's state looks like from outside: KPI windows, live gauges, the wallboard and
the core's metric families. One object, so the board, MQTT and /metrics read the same windows
(refreshed here, on purpose, not as a side effect of the metrics task) and the live daemon and
`acdbridge replay --metrics` build their exposition with the same code. `now` is always passed
in: the daemon passes the later of the stream's clock and the host's, a replay the stream's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from acdbridge.adapters.metrics import Health, build_families, window_kpis, workforce_families
from acdbridge.core.board import AgentBoard, QueueBoard, agent_boards, queue_boards
from acdbridge.core.forecast import SlotLoad, forecast
from acdbridge.core.kpi import KpiConfig, Kpis, interval_bounds
from acdbridge.core.tallies import LiveGauges, live_gauges
from acdbridge.core.workforce import Need, needs, staffed
from acdbridge.runtime.engine import Engine

EMPTY_BOARD = b'{"queues": {}, "agents": {}}'


@dataclass(frozen=True)
class Board:
    """The wallboard at one moment: per queue and per agent, and as the JSON the web gets."""

    queues: dict[str, QueueBoard]
    agents: dict[str, AgentBoard]
    data: bytes
    changed: bool  # its JSON differs from the last board's


class Views:
    def __init__(self, engine: Engine, kpi: KpiConfig) -> None:
        self.engine, self.kpi = engine, kpi
        self.windows: dict[str, Kpis] = {}
        self.windows_at = 0.0  # the `now` they were computed for (0.0: not yet)
        self.board_json = EMPTY_BOARD
        self._board_unstamped = EMPTY_BOARD
        self.waiting = 0  # callers waiting at the last families build (systemd's STATUS= line)
        # the forecast's history: per queue, the next interval's slot in each past week (None: a
        # week the store does not cover), for the interval starting at history_for
        self.history: dict[str, list[SlotLoad | None]] = {}
        self.history_for: float | None = None
        self.needs: dict[str, Need] = {}
        # the hotlines with an on-call rota, as of the config in force (a reload changes them)
        self.oncall_hotlines: Callable[[], Iterable[str]] = tuple

    def next_interval(self, now: float) -> tuple[float, float]:
        """The interval after the one in progress: what "next" staffs for."""
        _, current = interval_bounds(now, self.kpi)
        return current + self.kpi.interval_s, current + 2 * self.kpi.interval_s

    def set_history(self, start: float, history: dict[str, list[SlotLoad | None]]) -> None:
        self.history, self.history_for = history, start

    def refresh_windows(self, now: float) -> None:
        """The KPI windows (rolling, today, 24 h, interval) as of `now`, and the staffing needs:
        "now" from the last interval's length of traffic, "next" from the forecast."""
        self.windows = window_kpis(self.engine.kpis, self.kpi, now)
        self.windows_at = now
        period = self.kpi.interval_s
        recent = self.engine.kpis.rolling(now, period)["queues"]
        fresh = self.history_for == self.next_interval(now)[0]  # else stale: the recent rate
        forecasts = {}
        for q, weeks in (self.history if fresh else {}).items():
            r = recent.get(q, {})
            f = forecast(weeks, float(r.get("offered") or 0), r.get("aht_s"))
            if f.source == "history":  # no week in the store: "next" is the recent load, as in a replay
                forecasts[q] = f
        qcs = {q: self.kpi.queue(q) for q in set(recent) | set(forecasts)}
        self.needs = needs(recent, period, qcs, forecasts)

    def live(self, now: float) -> LiveGauges:
        p = self.engine.pipeline
        return live_gauges(p.calls, p.agents, now)

    def families(self, now: float, health: Health | None = None) -> list[Metric]:
        """The core's metric families: tallies, live gauges, the last refreshed windows."""
        live = self.live(now)
        self.waiting = sum(live.calls_waiting.values())
        families = build_families(
            self.engine.pipeline.tallies, live, health, self.windows, self.kpi, self.oncall_hotlines()
        )
        families += workforce_families(self.needs, staffed(live))
        # when the window series were computed: a stalled refresh shows, and a replay can be
        # asked for the same moment (`acdbridge replay --metrics --at`)
        families.append(GaugeMetricFamily("acd_kpi_windows_time_seconds",
                                          "The time the KPI window series are computed for",
                                          value=self.windows_at))  # fmt: skip
        return families

    def board(self, now: float) -> Board:
        """The wallboard as of `now`."""
        live = self.live(now)
        people = agent_boards(live, self.engine.pipeline.agents.agents.values())
        queues = queue_boards(live, self.windows, self.kpi, self.needs)
        board = {"queues": {q: b.as_dict() for q, b in queues.items()},
                 "agents": {a: asdict(b) for a, b in people.items()}}  # fmt: skip
        data = json.dumps(board, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
        changed = data != self._board_unstamped
        self._board_unstamped = data
        # `now` rides along (the chips' time in state counts from it) but is not a change
        self.board_json = data[:-1] + b', "now": ' + json.dumps(round(now, 3)).encode() + b"}"
        return Board(queues, people, self.board_json, changed)
