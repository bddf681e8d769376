"""The wallboard's pure view (core/board.py): a tile's status says which target it missed, and
an agent's chip carries since when and, paused, why."""

from __future__ import annotations

from acdbridge.core.agents import Agent
from acdbridge.core.board import QueueBoard, agent_boards, queue_boards
from acdbridge.core.kpi import KpiConfig, Kpis, QueueKpiConfig
from acdbridge.core.tallies import LiveGauges


def _live(waiting: int, ready: int) -> LiveGauges:
    return LiveGauges({"water": waiting}, {"water": 12.0}, {("water", "ready"): ready}, {})


def _board(sl: float | None, waiting: int = 0, ready: int = 1) -> QueueBoard:
    windows: dict[str, Kpis] = {"15m": {"queues": {"water": {"service_level": sl}}}}
    cfg = KpiConfig(default=QueueKpiConfig(sl_target=0.8))
    return queue_boards(_live(waiting, ready), windows, cfg)["water"]


def test_a_tile_names_each_target_it_missed() -> None:
    def words(b: QueueBoard) -> tuple[str, list[str]]:
        return b.status, [m.text for m in b.missed]

    assert words(_board(0.85)) == ("ok", [])
    assert words(_board(0.75)) == ("warn", ["SL 75% below its 80% target"])
    assert _board(0.6).status == "alarm"
    both = _board(0.6, waiting=2, ready=0)
    assert words(both) == ("alarm", ["SL 60% below its 80% target", "2 waiting, no agent ready"])
    assert [(m.figure, m.value, m.target) for m in both.missed] == [
        ("service_level", 0.6, 0.8),
        ("waiting", 2, 0),
    ]
    assert both.as_dict()["missed"][1] == {"figure": "waiting", "value": 2, "target": 0,
                                           "text": "2 waiting, no agent ready"}  # fmt: skip
    assert words(_board(None, waiting=1, ready=0)) == ("alarm", ["1 waiting, no agent ready"])
    assert _board(0.8).missed == ()  # the target met exactly is met


def test_an_agent_chip_has_its_since_and_pause_reason() -> None:
    live = LiveGauges({}, {}, {}, {("Ana", "paused"): 1, ("Ana", "ready"): 0, ("Bo", "talking"): 1})
    ana = Agent("PJSIP/9104", "Ana", {"water": True}, pause_reason="lunch", shown="paused", since=100.0)
    bo = Agent("PJSIP/9105", "Bo", {"water": False}, pause_reason="lunch", shown="talking", since=50.0)
    boards = agent_boards(live, [ana, bo])
    assert (boards["Ana"].state, boards["Ana"].since, boards["Ana"].reason) == ("paused", 100.0, "lunch")
    assert (boards["Bo"].state, boards["Bo"].reason) == ("talking", "")  # a stale reason is not shown
    assert agent_boards(live)["Ana"].since is None  # no tracker detail: no clock, still a chip
