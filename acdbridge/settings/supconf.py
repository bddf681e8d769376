"""The `[supervisor]` table: the supervisor desk's time-in-state limits and supervisors' phones.

    [supervisor]
    red_factor = 2.0                  # red at 2x a limit (amber at the limit itself)
    limits = {break = 900, lunch = 3600, "after-call work" = 60, wrapup = 60, ringing = 20}
    phones = {alice = "PJSIP/9201"}   # account -> the phone listen/whisper/barge rings

A limit's key is a pause reason (it applies while paused for it) or a shown state: ready,
ringing, talking, on_hold, wrapup. A phone is a dial string TECH/RESOURCE as Originate takes it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.supgrid import TimeLimits
from acdbridge.settings.problems import Problems, dotted, get, known, table

KEYS = {"limits", "red_factor", "phones"}
LIMIT_STATES = {"ready", "ringing", "talking", "on_hold", "wrapup"}
DIAL = re.compile(r"^[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9@._+-]{1,80}$")
DEFAULT_LIMITS = {"break": 900.0, "after-call work": 60.0, "wrapup": 60.0}


@dataclass(frozen=True)
class SupervisorConfig:
    limits: TimeLimits = field(default_factory=lambda: TimeLimits(dict(DEFAULT_LIMITS)))
    phones: dict[str, str] = field(default_factory=dict)  # account username -> dial string


def parse_supervisor(
    p: Problems, t: dict[str, Any], pause_reasons: set[str] | None = None
) -> SupervisorConfig:
    """`pause_reasons`: the [pause_reasons] values; a limit named neither one nor a state is an error."""
    w = "supervisor"
    known(p, t, w, KEYS)
    red = get(p, t, "red_factor", w, float, 2.0, lo=1, hi=100)
    limits: dict[str, float] = dict(DEFAULT_LIMITS) if "limits" not in t else {}
    names = LIMIT_STATES | (pause_reasons or set())
    for key, value in table(p, t.get("limits", {}), dotted(w, "limits")).items():
        where = dotted(w, "limits", key)
        if pause_reasons is not None and key not in names:
            p.error(where, f"not a pause reason or a state; known: {', '.join(sorted(names))}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
            p.error(where, f"expected seconds in (0, 86400], got {value!r}")
            continue
        limits[key] = float(value)
    phones: dict[str, str] = {}
    for user, dial in table(p, t.get("phones", {}), dotted(w, "phones")).items():
        if not isinstance(dial, str) or not DIAL.match(dial):
            p.error(dotted(w, "phones", user), f"expected a dial string like 'PJSIP/9201', got {dial!r}")
            continue
        phones[user] = dial
    return SupervisorConfig(TimeLimits(limits, red), phones)
