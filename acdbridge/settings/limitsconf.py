"""The `[limits]` table: how much the trackers remember at most (acdbridge/core/limits.py).

    [limits]
    max_callers = 10000        # callers tracked at once (waiting, talking); a big centre has ~1,000
    caller_max_age_h = 24      # a caller never seen to leave is dropped after this much event time
    max_agents = 5000          # member interfaces
    max_queues = 1000
    max_members = 20000        # (queue, interface) memberships
    max_channels = 20000       # agent channels in a call, channels listed by a resync

Every eviction is counted in acd_core_input_problems_total{kind="evicted_..."}. The defaults
suit a centre of a few thousand seats; raise them for a bigger one rather than lose state."""

from __future__ import annotations

from typing import Any

from acdbridge.core.limits import Limits
from acdbridge.settings.problems import Problems, get, known

_COUNTS = ("max_callers", "max_agents", "max_queues", "max_members", "max_channels")


def parse_limits(p: Problems, t: dict[str, Any]) -> Limits:
    known(p, t, "limits", {*_COUNTS, "caller_max_age_h"})
    d = Limits()
    counts = {key: get(p, t, key, "limits", int, getattr(d, key), lo=1, hi=500_000) for key in _COUNTS}
    age_h = get(p, t, "caller_max_age_h", "limits", float, d.caller_max_age_s / 3600, lo=0.1, hi=24 * 30)
    return Limits(**counts, caller_max_age_s=age_h * 3600)
