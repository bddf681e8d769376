"""What the engine's state looks like from outside: KPI windows, live gauges, the wallboard and
the core's metric families. One object, so the board, MQTT and /metrics read the same windows
(refreshed here, on purpose, not as a side effect of the metrics task) and the live daemon and
`acdbridge replay --metrics` build their exposition with the same code. `now` is always passed
in: the daemon passes the later of the stream's clock and the host's, a replay the stream's."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from acdbridge.adapters.metrics import Health, build_families, window_kpis
from acdbridge.core.board import AgentBoard, QueueBoard, agent_boards, queue_boards
from acdbridge.core.kpi import KpiConfig, Kpis
from acdbridge.core.tallies import LiveGauges, live_gauges
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

    def refresh_windows(self, now: float) -> None:
        """The KPI windows (rolling, today, 24 h, interval) as of `now`."""
        self.windows = window_kpis(self.engine.kpis, self.kpi, now)
        self.windows_at = now

    def live(self, now: float) -> LiveGauges:
        p = self.engine.pipeline
        return live_gauges(p.calls, p.agents, now)

    def families(self, now: float, health: Health | None = None) -> list[Metric]:
        """The core's metric families: tallies, live gauges, the last refreshed windows."""
        live = self.live(now)
        self.waiting = sum(live.calls_waiting.values())
        families = build_families(self.engine.pipeline.tallies, live, health, self.windows, self.kpi)
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
        queues = queue_boards(live, self.windows, self.kpi)
        board = {"queues": {q: b.as_dict() for q, b in queues.items()},
                 "agents": {a: asdict(b) for a, b in people.items()}}  # fmt: skip
        data = json.dumps(board, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
        changed = data != self._board_unstamped
        self._board_unstamped = data
        # `now` rides along (the chips' time in state counts from it) but is not a change
        self.board_json = data[:-1] + b', "now": ' + json.dumps(round(now, 3)).encode() + b"}"
        return Board(queues, people, self.board_json, changed)
