"""The agent desk's view model (/desk, adapters/web/desk.py): per agent, their state and since
when, the screen pop of their ringing or current call, their previous calls, today's figures
beside the targets. Sans-IO: it reads the engine's trackers and KPI windows (the same ones the
wallboard reads: no second tracking of states or calls) and takes `now` as an argument.

The one thing the trackers do not keep is what the greeting learnt about a caller (account,
name, address, notice: the __ACD_* channel variables of core/ivr.py): CallerCards keeps it per
caller channel, from the same VarSet events, until the caller hangs up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from acdbridge.core.agents import Agent
from acdbridge.core.ami import AmiMessage
from acdbridge.core.visit import Visit

Record = Mapping[str, Any]
MAX_CARDS = 10_000  # callers whose Hangup was missed are dropped, oldest first, beyond this
MAX_HISTORY = 20  # previous calls shown on a screen pop
# the VarSet names (leading underscores stripped) and the card field each fills
CARD_VARS = {
    "ACD_HOTLINE": "hotline", "ACD_CALLTYPE": "call_type", "ACD_LANG": "language", "ACD_VIP": "vip",
    "ACD_ACCOUNT": "account", "ACD_NAME": "name", "ACD_ADDRESS": "address", "ACD_NOTICE": "notice",
}  # fmt: skip


@dataclass
class CallerCard:
    """What the greeting stored about one caller (empty strings: not known)."""

    hotline: str = ""
    call_type: str = ""
    language: str = ""
    vip: bool = False
    account: str = ""
    name: str = ""
    address: str = ""
    notice: str = ""


class CallerCards:
    """Feed every AMI message; `cards[uniqueid]` is the caller channel's card."""

    def __init__(self, max_cards: int = MAX_CARDS) -> None:
        self.cards: dict[str, CallerCard] = {}
        self.max_cards = max_cards

    def feed(self, msg: AmiMessage) -> None:
        if msg.kind != "event":
            return
        h = msg.headers
        uid = h.get("Uniqueid", "")
        if msg.name == "Hangup":
            self.cards.pop(uid, None)
            return
        if msg.name != "VarSet" or not uid:
            return
        attr = CARD_VARS.get(h.get("Variable", "").lstrip("_"))
        if attr is None:
            return
        card = self.cards.get(uid)
        if card is None:
            if len(self.cards) >= self.max_cards:
                del self.cards[next(iter(self.cards))]
            card = self.cards[uid] = CallerCard()
        value = h.get("Value", "")
        setattr(card, attr, value == "1" if attr == "vip" else value[:200])


@dataclass(frozen=True)
class DeskTargets:
    """Today's figures an agent aims at (None: no target shown)."""

    answered: int | None = None
    aht_s: float | None = 300.0
    acw_s: float | None = 60.0
    hold_s: float | None = 60.0  # mean hold per answered call
    occupancy: float | None = 0.85


@dataclass
class ScreenPop:
    uniqueid: str
    queue: str
    caller: str
    caller_name: str
    enter_ts: float
    answer_ts: float | None
    wait_s: float | None  # until answered; None while not yet (count from enter_ts: no push a second)
    card: CallerCard
    previous: list[dict[str, Any]] = field(default_factory=list)


def calls_by_agent(active: Iterable[Visit], wrapping: Mapping[str, Visit]) -> dict[str, Visit]:
    """Each agent's call, in one pass over the calls (every open desk reads it at each refresh):
    the one in wrap-up, else the one they talk on, else the first one ringing them."""
    talking: dict[str, Visit] = {}
    ringing: dict[str, Visit] = {}
    for v in active:
        if v.agent_interface is not None and v.state == "talking":
            talking[v.agent_interface] = v
        for a in v.ring_attempts:
            if a.end_ts is None:
                ringing.setdefault(a.interface, v)
    return ringing | talking | dict(wrapping)


def screen_pop(visit: Visit, card: CallerCard | None) -> ScreenPop:
    waited = None if visit.answer_ts is None else round(max(0.0, visit.answer_ts - visit.enter_ts), 3)
    return ScreenPop(
        visit.uniqueid, visit.queue, visit.caller, visit.caller_name, visit.enter_ts, visit.answer_ts,
        waited, card or CallerCard(),
    )  # fmt: skip


def previous_calls(
    caller: str, visits: Iterable[Record], feedback: Iterable[Record], exclude: str = ""
) -> list[dict[str, Any]]:
    """The caller's stored visits (newest first, at most MAX_HISTORY) with their disposition and
    survey score: the store's rows, read by the adapter for the last N days."""
    if not caller:
        return []
    mine = [v for v in visits if v.get("caller") == caller and v.get("uniqueid") != exclude]
    mine.sort(key=lambda v: float(v.get("enter_ts") or 0.0), reverse=True)
    mine = mine[:MAX_HISTORY]
    wanted = {v.get("uniqueid") for v in mine}
    notes: dict[tuple[str, str], str] = {}
    for f in feedback:
        if f.get("uniqueid") in wanted:
            notes[(str(f.get("uniqueid")), str(f.get("kind")))] = str(f.get("value"))
    return [
        {"time": v.get("enter_ts"), "queue": v.get("queue"), "outcome": v.get("outcome"),
         "agent": v.get("agent"), "disposition": notes.get((str(v.get("uniqueid")), "disposition")),
         "survey": notes.get((str(v.get("uniqueid")), "survey"))}
        for v in mine
    ]  # fmt: skip


def today_figures(kpis: Mapping[str, Any] | None, targets: DeskTargets) -> dict[str, Any]:
    """Calls answered, AHT, ACW and hold per call, occupancy (core/kpi.py's agent definitions),
    each beside its target and whether it meets it (None: no figure or no target)."""
    k = kpis or {}
    answered = int(k.get("answered") or 0)

    def per_call(total: Any) -> float | None:
        return round(float(total) / answered, 3) if answered else None

    figures = {
        "answered": (answered, targets.answered, True),
        "aht_s": (k.get("aht_s"), targets.aht_s, False),
        "acw_s": (per_call(k.get("wrap_s") or 0.0), targets.acw_s, False),
        "hold_s": (per_call(k.get("hold_s") or 0.0), targets.hold_s, False),
        "occupancy": (k.get("occupancy"), targets.occupancy, True),
    }
    out: dict[str, Any] = {}
    for name, (value, target, higher_better) in figures.items():
        met = None
        if value is not None and target is not None:
            met = value >= target if higher_better else value <= target
        out[name] = {"value": value, "target": target, "met": met}
    return out


def desk_view(
    name: str, agent: Agent | None, pop: ScreenPop | None, kpis: Mapping[str, Any] | None,
    targets: DeskTargets,
) -> dict[str, Any]:  # fmt: skip
    """The desk of one agent as JSON-able data (times are the events' epoch seconds)."""
    state = agent.shown if agent is not None else "logged_out"
    return {
        "agent": name,
        "state": state,
        "since": agent.since if agent is not None else None,
        "reason": agent.pause_reason if agent is not None and state == "paused" else None,
        "queues": sorted(agent.memberships) if agent is not None else [],
        "call": None if pop is None else asdict(pop),
        "today": today_figures(kpis, targets),
    }
