"""Webhooks as pure code (docs/webhooks.md): which outbox rows a finished record makes, the
signature, and when a delivery is due, retried or dead. No clock, no sockets: the delivery
adapter (adapters/webhooks.py) passes `now` and the jitter in.

An event's idempotency key is derived from its record's own key and the event type only, so a
journal replay after a crash, which produces the same records again, produces the same keys: the
outbox insert ignores them, and a receiver that sees a key twice (a retry after a lost answer)
knows it is the same event."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acdbridge.core.desk import CallerCard
    from acdbridge.core.visit import RingAttempt, Visit

Record = Mapping[str, Any]
EVENTS = ("call.offered", "call.answered", "visit.ended", "disposition", "call.abandoned")
RESERVED_PREFIX = "callback."  # callback.* events come with the callback feature (issue 17)
CALL_EVENTS = ("call.offered", "call.answered")  # live events, not finished records
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
STATES = (PENDING, DELIVERED, DEAD)
SCHEMA = 1  # the payload envelope's version, in every body


@dataclass(frozen=True)
class Endpoint:
    """One `[[webhooks]]` entry as the outbox and the sender need it."""

    name: str
    url: str
    secret: str
    events: frozenset[str]
    retry_for_s: float = 86400.0
    timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 600.0
    concurrency: int = 4  # deliveries in flight at once (to different calls)


@dataclass(frozen=True)
class Event:
    """One event for one endpoint, as an outbox row is inserted (its time columns the store's)."""

    endpoint: str
    call_key: str
    event: str
    key: str
    payload: dict[str, Any]


def _num(value: Any) -> str:
    return repr(float(value))


def wants_call_events(endpoints: Iterable[Endpoint]) -> bool:
    """Whether the engine need emit call.offered / call.answered at all."""
    return any(e.events & set(CALL_EVENTS) for e in endpoints)


def record_key(event: str, record: Record) -> str:
    """The record's own key (the store's unique key of its table) for this event type."""
    uid = str(record.get("uniqueid", ""))
    if event in ("visit.ended", "call.abandoned"):
        return f"{uid}|{record['queue']}|{_num(record['enter_ts'])}"
    if event == "disposition":  # a disposition entered again is a new event (the row is replaced)
        return f"{uid}|disposition|{_num(record['ts'])}"
    visit = f"{uid}|{record['queue']}|{_num(record['enter_ts'])}"
    if event == "call.offered":  # one per ring attempt
        return f"{visit}|{record['interface']}|{_num(record['ts'])}"
    return visit  # call.answered: one per visit


def idempotency_key(pbx: str, event: str, record: Record) -> str:
    """32 hex digits, stable for the record and event (and the PBX: uniqueids are per PBX)."""
    text = f"{pbx}\x1f{event}\x1f{record_key(event, record)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def event_types(kind: str, record: Record) -> list[str]:
    """The events a finished record of a writer kind stands for."""
    if kind == "visit":
        return ["visit.ended", *(["call.abandoned"] if record.get("outcome") == "abandoned" else [])]
    if kind == "feedback" and record.get("kind") == "disposition":
        return ["disposition"]
    if kind == "call_event" and record.get("event") in CALL_EVENTS:
        return [str(record["event"])]
    return []


def payload(event: str, key: str, pbx: str, record: Record) -> dict[str, Any]:
    """The JSON body: an envelope around the record (a call event's record without `event`)."""
    data = {k: v for k, v in record.items() if k != "event"} if event in CALL_EVENTS else record
    return {"schema": SCHEMA, "event": event, "idempotency_key": key, "pbx": pbx, "data": data}


def events_of(endpoints: Iterable[Endpoint], pbx: str, kind: str, record: Record) -> list[Event]:
    """The outbox rows a record makes, one per subscribed endpoint and event."""
    out = []
    for event in event_types(kind, record):
        subscribed = [e for e in endpoints if event in e.events]
        if not subscribed:
            continue
        key = idempotency_key(pbx, event, record)
        body = payload(event, key, pbx, record)
        call = str(record.get("uniqueid", ""))
        out += [Event(e.name, call, event, key, body) for e in subscribed]
    return out


def live_record(event: str, v: Visit, attempt: RingAttempt | None, card: CallerCard | None) -> dict[str, Any]:
    """A call.offered (with its ring attempt) or call.answered as a `call_event` record: the
    screen pop's data (the caller, what the greeting learnt: core/desk.py's card) for a CRM."""
    out: dict[str, Any] = {
        "event": event, "uniqueid": v.uniqueid, "linkedid": v.linkedid, "queue": v.queue,
        "caller": v.caller, "caller_name": v.caller_name, "enter_ts": v.enter_ts,
    }  # fmt: skip
    if attempt is not None:
        out |= {"ts": attempt.start_ts, "agent": attempt.agent, "interface": attempt.interface}
    else:
        ts = v.answer_ts if v.answer_ts is not None else v.enter_ts
        out |= {"ts": ts, "agent": v.agent, "interface": v.agent_interface,
                "wait_s": round(max(0.0, ts - v.enter_ts), 6)}  # fmt: skip
    if card is not None:
        out["card"] = asdict(card)
    return out


# -- signing (Stripe's scheme: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">) --------------------
def signature(secret: str, t: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: the v1 MAC matches and the timestamp is recent (no replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, t, body).split("v1=", 1)[1]
    return abs(now - t) <= tolerance_s and hmac.compare_digest(expected, parts.get("v1", ""))


# -- scheduling ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Due:
    """A pending outbox row as the scheduler sees it."""

    id: int
    call_key: str
    next_attempt: float


def pick(rows: Iterable[Due], now: float, busy: set[str], free: int) -> list[Due]:
    """The rows to send now, oldest first: only each call's oldest pending row (a later event of a
    call waits until the earlier one is delivered or dead), none of a call in flight, at most
    `free`. `rows` are the endpoint's oldest pending rows by id: a row's earlier siblings, having
    smaller ids, are among them."""
    seen: set[str] = set()
    out: list[Due] = []
    for row in sorted(rows, key=lambda r: r.id):
        if row.call_key in seen:
            continue
        seen.add(row.call_key)
        if len(out) < free and row.call_key not in busy and row.next_attempt <= now:
            out.append(row)
    return out


def backoff_s(attempts: int, min_s: float, max_s: float, jitter: float) -> float:
    """The wait after the `attempts`-th failure: doubling from min_s, capped, times jitter
    (0.5-1.0: endpoints that failed together do not all come back at once)."""
    return min(max_s, min_s * 2.0 ** max(0, attempts - 1)) * jitter


@dataclass(frozen=True)
class Settled:
    """An attempt's result as the row's new state."""

    state: str
    attempts: int
    next_attempt: float
    last_error: str


def after_failure(
    attempts: int, since: float, now: float, ep: Endpoint, jitter: float, error: str
) -> Settled:
    """A failed attempt (`attempts` counts it): retried with backoff until retry_for_s after
    `since` (the row's creation, or a manual retry), the last try at that deadline; then dead."""
    deadline = since + ep.retry_for_s
    if now >= deadline:
        return Settled(DEAD, attempts, now, error)
    wait = backoff_s(attempts, ep.backoff_min_s, ep.backoff_max_s, jitter)
    return Settled(PENDING, attempts, min(now + wait, deadline), error)
