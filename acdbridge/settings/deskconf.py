"""The `[desk]` table: the agent desk's targets and how far back a caller's previous calls go.

    [desk]
    history_days = 7        # previous calls shown on the screen pop: those of the last N days
    target_answered = 40    # calls answered today (no target unless set)
    target_aht_s = 300      # mean handle time (talk + hold + wrap-up)
    target_acw_s = 60       # after-call work per answered call
    target_hold_s = 60      # hold per answered call
    target_occupancy = 0.85 # busy / (logged in - paused)

A target of 0 means none (the figure is shown without one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.desk import DeskTargets
from acdbridge.settings.problems import Problems, get, known

KEYS = {
    "history_days",
    "target_answered",
    "target_aht_s",
    "target_acw_s",
    "target_hold_s",
    "target_occupancy",
}
DEFAULT = DeskTargets()


@dataclass(frozen=True)
class DeskConfig:
    history_days: float = 7.0
    targets: DeskTargets = field(default_factory=DeskTargets)


def parse_desk(p: Problems, t: dict[str, Any]) -> DeskConfig:
    w = "desk"
    known(p, t, w, KEYS)

    def target(key: str, default: float | None, hi: float) -> float | None:
        value = get(p, t, key, w, float, default if default is not None else 0.0, lo=0, hi=hi)
        return None if not value else float(value)

    answered = target("target_answered", DEFAULT.answered, 100_000)
    return DeskConfig(
        history_days=get(p, t, "history_days", w, float, 7.0, lo=0, hi=366),
        targets=DeskTargets(
            answered=None if answered is None else int(answered),
            aht_s=target("target_aht_s", DEFAULT.aht_s, 86_400),
            acw_s=target("target_acw_s", DEFAULT.acw_s, 86_400),
            hold_s=target("target_hold_s", DEFAULT.hold_s, 86_400),
            occupancy=target("target_occupancy", DEFAULT.occupancy, 1),
        ),
    )
