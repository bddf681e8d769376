"""The supervisor desk's view model (/supervisor, adapters/web/supervisor.py): a row per agent,
a panel per queue (its waiting callers, agents by state, today's figures), and today's abandoned
calls nobody has called back yet. Sans-IO: it reads the engine's trackers, the caller cards and
the KPI engine's held records (no second tracking path) and takes `now` as an argument.

Rows carry timestamps (since, answer_ts), not ages, so a row changes only when its agent does:
the page counts time in state and talk time on itself, and colours a row by the same limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from acdbridge.core.agents import Agent
from acdbridge.core.desk import CallerCard
from acdbridge.core.visit import Visit

Record = Mapping[str, Any]
STATES = ("ready", "ringing", "talking", "on_hold", "wrapup", "paused", "logged_out")
MAX_ABANDONS = 500  # shown at most, newest first
MAX_WAITING = 200  # callers listed per queue (the count is always exact)


@dataclass(frozen=True)
class TimeLimits:
    """Time-in-state limits ([supervisor] limits): by pause reason while paused, else by shown
    state (ready, ringing, talking, on_hold, wrapup). Amber at the limit, red at red_factor x it."""

    limits: Mapping[str, float] = field(default_factory=dict)
    red_factor: float = 2.0

    def limit_of(self, state: str, reason: str | None) -> float | None:
        if state == "paused" and reason and reason in self.limits:
            return self.limits[reason]
        return self.limits.get(state)

    def level(self, state: str, reason: str | None, since: float | None, now: float) -> str:
        """ok | amber | red for time in state at `now` (the page applies the same rule)."""
        limit = self.limit_of(state, reason)
        if limit is None or since is None:
            return "ok"
        spent = now - since
        if spent >= limit * self.red_factor:
            return "red"
        return "amber" if spent >= limit else "ok"


def agent_row(
    name: str, skills: Mapping[str, int], queues: Iterable[str], agent: Agent | None,
    call: Visit | None, kpis: Mapping[str, Any] | None, limits: TimeLimits,
) -> dict[str, Any]:  # fmt: skip
    """One grid row (JSON-able). `call`: the agent's call now (core/desk.py calls_by_agent)."""
    state = agent.shown if agent is not None else "logged_out"
    # paused in every queue: shown as "paused" when idle, but a call in progress shows first
    paused = agent is not None and bool(agent.memberships) and all(agent.memberships.values())
    reason = agent.pause_reason if agent is not None and paused else None
    k = kpis or {}
    return {
        "agent": name,
        "state": state,
        "paused": paused,
        "reason": reason,
        "since": agent.since if agent is not None else None,
        "limit_s": limits.limit_of(state, reason),
        "queues": sorted(queues),
        "skills": dict(sorted(skills.items())),
        "caller": call.caller if call is not None else None,
        "call_queue": call.queue if call is not None else None,
        "answer_ts": call.answer_ts if call is not None else None,
        "spyable": call is not None and call.state == "talking",
        "calls_today": int(k.get("answered") or 0),
        "aht_today_s": k.get("aht_s"),
    }


def caller_repeats(records: Iterable[Record], window_s: float) -> dict[str, float]:
    """caller -> end of their latest stored visit (a caller waiting now within `window_s` of it
    is a repeat caller, the greeting's own rule: core/routing.py repeat_window_s)."""
    last: dict[str, float] = {}
    for r in records:
        caller = r.get("caller") or ""
        if caller:
            last[caller] = max(last.get(caller, 0.0), float(r.get("end_ts") or 0.0))
    return last


def waiting_callers(
    active: Iterable[Visit], cards: Mapping[str, CallerCard], last_seen: Mapping[str, float],
    repeat_window_s: float,
) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """queue -> its callers waiting (not yet answered), oldest first, with their position (by
    the order they joined; app_queue's priority may put a VIP ahead: shown by `vip`)."""
    by_queue: dict[str, list[Visit]] = {}
    for v in active:
        if v.state == "waiting" and v.answer_ts is None:
            by_queue.setdefault(v.queue, []).append(v)
    out: dict[str, list[dict[str, Any]]] = {}
    for queue, visits in by_queue.items():
        visits.sort(key=lambda v: v.enter_ts)
        rows = []
        for pos, v in enumerate(visits, 1):
            card = cards.get(v.uniqueid) or CallerCard()
            seen = last_seen.get(v.caller)
            rows.append({
                "position": pos, "uniqueid": v.uniqueid, "caller": v.caller, "caller_name": v.caller_name,
                "enter_ts": v.enter_ts, "vip": card.vip, "call_type": card.call_type,
                "language": card.language,
                "repeat": seen is not None and v.enter_ts - seen <= repeat_window_s,
            })  # fmt: skip
        out[queue] = rows
    return out


def queue_panels(
    queues: Iterable[str], waiting: Mapping[str, list[dict[str, Any]]],
    rows: Iterable[dict[str, Any]], today: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """queue -> callers waiting (at most MAX_WAITING listed), its agents by state, today's figures."""
    by_state: dict[str, dict[str, int]] = {}
    for row in rows:
        for q in row["queues"]:
            counts = by_state.setdefault(q, {})
            counts[row["state"]] = counts.get(row["state"], 0) + 1
    out = {}
    for q in sorted(queues):
        k = today.get(q, {})
        callers = waiting.get(q, [])
        out[q] = {
            "queue": q,
            "waiting": len(callers),
            "callers": callers[:MAX_WAITING],
            "agents": {s: n for s, n in sorted(by_state.get(q, {}).items())},
            "today": {
                "offered": int(k.get("offered") or 0), "answered": int(k.get("answered") or 0),
                "abandoned": int(k.get("abandoned") or 0), "service_level": k.get("service_level"),
                "asa_s": k.get("asa_s"), "aht_s": k.get("aht_s"), "abandon_rate": k.get("abandon_rate"),
            },
        }  # fmt: skip
    return out


def open_abandons(
    records: Iterable[Record], day_start: float, short_abandon_s: Callable[[str], float],
    handled: Mapping[str, Any], queues: set[str] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Today's abandoned visits that were not short abandons (wait above the queue's
    short_abandon_s) and are not marked handled, newest first (at most MAX_ABANDONS).
    `queues`: only those (a supervisor's); None: all."""
    out = []
    for r in records:
        if r.get("outcome") != "abandoned" or float(r.get("end_ts") or 0.0) < day_start:
            continue
        queue = str(r.get("queue") or "")
        if queues is not None and queue not in queues:
            continue
        wait = float(r.get("wait_s") or 0.0)
        if wait <= short_abandon_s(queue) or abandon_key(r) in handled:
            continue
        out.append({"key": abandon_key(r), "queue": queue, "caller": r.get("caller") or "",
                    "caller_name": r.get("caller_name") or "", "wait_s": wait,
                    "time": r.get("end_ts")})  # fmt: skip
    out.sort(key=lambda a: float(a["time"] or 0.0), reverse=True)
    return out[:MAX_ABANDONS]


def abandon_key(r: Record) -> str:
    """One abandoned visit's key (a caller may abandon two queues in one call)."""
    return f"{r.get('uniqueid')}|{r.get('queue')}"


def changed_rows(
    before: Mapping[str, dict[str, Any]], after: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """What a stream sends: the rows new or changed since `before`, and the keys gone."""
    changed = {key: row for key, row in after.items() if before.get(key) != row}
    return changed, sorted(set(before) - set(after))
