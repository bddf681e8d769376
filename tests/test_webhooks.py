"""Webhooks as pure code (core/webhooks.py) and their config ([[webhooks]]): events and keys from
real replayed records, the signature a receiver checks, the per-call order and the backoff."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from acdbridge.config import validate
from acdbridge.core.webhooks import (
    DEAD,
    EVENTS,
    PENDING,
    Due,
    Endpoint,
    after_failure,
    backoff_s,
    events_of,
    idempotency_key,
    pick,
    signature,
    verify,
)
from acdbridge.replay import feed
from acdbridge.runtime.engine import Engine, Output

TRACES = Path(__file__).parent / "fixtures" / "traces"
ALL = Endpoint("crm", "https://crm.example/hook", "k", frozenset(EVENTS))


def outputs(trace: str) -> list[Output]:
    engine = Engine(validate({})[0].kpi, call_events=True)
    for _ in feed(engine, TRACES / trace):
        pass
    return engine.kept


def test_the_signature_is_stripes_scheme_and_verifies() -> None:
    body = b'{"event":"visit.ended"}'
    header = signature("whsec", 1_700_000_000, body)
    mac = hmac.new(b"whsec", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert verify("whsec", header, body, now=1_700_000_100)
    assert not verify("whsec", header, body + b" ", now=1_700_000_100)  # the body changed
    assert not verify("other", header, body, now=1_700_000_100)  # another secret
    assert not verify("whsec", header, body, now=1_700_000_000 + 301)  # too old: a replay
    assert not verify("whsec", "v1=" + mac, body, now=1_700_000_000)  # no timestamp


def test_a_replayed_trace_makes_each_call_s_events_in_order_with_stable_keys() -> None:
    first, again = outputs("mixed.ami.gz"), outputs("mixed.ami.gz")
    events = [e for o in first for e in events_of([ALL], "east", o.kind, o.record)]
    keys = [e.key for e in events]
    assert keys == [e.key for o in again for e in events_of([ALL], "east", o.kind, o.record)]
    assert len(set(keys)) == len(keys)  # one key per event
    kinds = {e.event for e in events}
    assert {"call.offered", "call.answered", "visit.ended", "call.abandoned"} <= kinds
    visits = [o.record for o in first if o.kind == "visit"]
    assert sum(e.event == "visit.ended" for e in events) == len(visits)
    assert sum(e.event == "call.abandoned" for e in events) == sum(
        v["outcome"] == "abandoned" for v in visits
    )
    order = {"call.offered": 0, "call.answered": 1, "visit.ended": 2, "call.abandoned": 2}
    for visit in visits:  # a visit's own events: offered before answered before its end
        mine = [
            e
            for e in events
            if e.payload["data"].get("enter_ts") == visit["enter_ts"] and e.call_key == visit["uniqueid"]
        ]
        ranks = [order[e.event] for e in mine]
        assert ranks == sorted(ranks) and ranks[-1] == 2
        offered = [e for e in mine if e.event == "call.offered"]
        assert len(offered) == len(visit["ring_attempts"])
        assert sum(e.event == "call.answered" for e in mine) == (visit["answer_ts"] is not None)


def test_a_pbx_and_an_event_type_change_the_key_and_a_subscription_filters() -> None:
    visit = {"uniqueid": "1.1", "queue": "water", "enter_ts": 10.0, "outcome": "abandoned"}
    assert idempotency_key("east", "visit.ended", visit) != idempotency_key("west", "visit.ended", visit)
    assert idempotency_key("", "visit.ended", visit) != idempotency_key("", "call.abandoned", visit)
    only_ends = Endpoint("bi", "https://bi.example/", "k", frozenset({"visit.ended"}))
    made = events_of([ALL, only_ends], "", "visit", visit)
    assert [(e.endpoint, e.event) for e in made] == [
        ("crm", "visit.ended"),
        ("bi", "visit.ended"),
        ("crm", "call.abandoned"),
    ]
    assert made[0].key == made[1].key  # the same event has one key at every endpoint
    assert made[0].payload == {
        "schema": 1,
        "event": "visit.ended",
        "idempotency_key": made[0].key,
        "pbx": "",
        "data": visit,
    }
    survey = {"uniqueid": "1.1", "kind": "survey", "value": "5", "ts": 20.0}
    assert events_of([ALL], "", "feedback", survey) == []  # only dispositions are events
    assert events_of([ALL], "", "agent_state", {"interface": "PJSIP/1"}) == []


def test_a_disposition_entered_again_is_a_new_event() -> None:
    first = {"uniqueid": "1.1", "kind": "disposition", "value": "resolved", "ts": 30.0}
    again = first | {"value": "work_order_created", "ts": 45.0}
    assert idempotency_key("", "disposition", first) != idempotency_key("", "disposition", again)


def test_pick_keeps_each_call_in_order_and_bounds_what_is_in_flight() -> None:
    rows = [
        Due(1, "a", 0.0),
        Due(2, "a", 0.0),
        Due(3, "b", 50.0),
        Due(4, "b", 0.0),
        Due(5, "c", 0.0),
        Due(6, "d", 0.0),
    ]
    assert [r.id for r in pick(rows, 10.0, set(), 10)] == [1, 5, 6]  # b's first row is not due yet
    assert [r.id for r in pick(rows, 60.0, set(), 10)] == [1, 3, 5, 6]
    assert [r.id for r in pick(rows, 60.0, {"a"}, 10)] == [3, 5, 6]  # a is in flight: not a's row 2
    assert [r.id for r in pick(reversed(rows), 60.0, set(), 2)] == [1, 3]  # the oldest first, at most 2
    assert pick(rows, 60.0, set(), 0) == []


def test_backoff_doubles_with_jitter_up_to_the_cap_and_then_the_row_is_dead() -> None:
    assert [backoff_s(n, 1.0, 30.0, 1.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_s(3, 1.0, 30.0, 0.5) == 2.0
    ep = Endpoint("crm", "https://x/", "k", frozenset(EVENTS), retry_for_s=100.0, backoff_min_s=10.0)
    first = after_failure(1, since=1000.0, now=1000.5, ep=ep, jitter=1.0, error="HTTP 500")
    assert (first.state, first.attempts, first.next_attempt, first.last_error) == (
        PENDING,
        1,
        1010.5,
        "HTTP 500",
    )
    late = after_failure(4, since=1000.0, now=1090.0, ep=ep, jitter=1.0, error="timeout")
    assert late.state == PENDING and late.next_attempt == 1100.0  # the last try at the deadline
    dead = after_failure(5, since=1000.0, now=1100.0, ep=ep, jitter=1.0, error="timeout")
    assert dead.state == DEAD and dead.attempts == 5 and dead.last_error == "timeout"


def _hooks(*entries: dict[str, Any], env: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    cfg, p = validate({"webhooks": list(entries)}, "c.toml", env or {}, for_daemon=False)
    return cfg.webhooks, p.errors + p.warnings


def test_a_webhook_config_is_read_with_its_secret_from_a_file_or_a_credential(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("s3cret\n")
    key.chmod(0o600)
    (tmp_path / "webhook-bi").write_text("from-systemd")
    hooks, problems = _hooks(
        {
            "name": "crm",
            "url": "https://crm.example/acd",
            "secret_file": str(key),
            "events": ["visit.ended"],
            "retry_for_s": 3600,
            "timeout_s": 5,
        },
        {"name": "bi", "url": "http://127.0.0.1:9000/x", "events": ["call.offered", "disposition"]},
        env={"CREDENTIALS_DIRECTORY": str(tmp_path)},
    )
    assert problems == []
    crm, bi = hooks
    assert (crm.name, crm.secret, crm.events, crm.retry_for_s, crm.timeout_s) == (
        "crm",
        "s3cret",
        frozenset({"visit.ended"}),
        3600.0,
        5.0,
    )
    assert bi.secret == "from-systemd" and bi.retry_for_s == 86400.0 and bi.concurrency == 4


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"url": "ftp://x/", "secret": "k", "events": ["visit.ended"]},
            "webhooks[0].url: expected an http://",
        ),
        ({"secret": "k", "events": ["visit.ended"]}, "webhooks[0].url: is required"),
        (
            {"url": "http://h:{port}/", "secret": "k", "events": ["visit.ended"]},
            "webhooks[0].url: expected an http://",
        ),
        ({"url": "https://x/", "events": ["visit.ended"]}, "webhooks[0].secret: is required"),
        ({"url": "https://x/", "secret": "k"}, "webhooks[0].events: is required"),
        ({"url": "https://x/", "secret": "k", "events": []}, "webhooks[0].events: is empty"),
        ({"url": "https://x/", "secret": "k", "events": ["call.ended"]}, "unknown event 'call.ended'"),
        ({"url": "https://x/", "secret": "k", "events": ["callback.done"]}, "callback.* events are reserved"),
        (
            {"url": "https://x/", "secret": "k", "events": ["visit.ended"], "retry_for_s": -1},
            "webhooks[0].retry_for_s",
        ),
        (
            {"url": "https://x/", "secret": "k", "events": ["visit.ended"], "timeout_s": "10"},
            "webhooks[0].timeout_s: expected float",
        ),
        (
            {"url": "https://x/", "secret": "k", "events": ["visit.ended"], "retries": 3},
            "unknown keys ['retries']",
        ),
        ({"url": "https://x/", "secret": "k", "events": ["visit.ended"], "name": "a b"}, "webhooks[0].name"),
        (
            {
                "url": "https://x/",
                "secret": "k",
                "events": ["visit.ended"],
                "backoff_min_s": 9,
                "backoff_max_s": 2,
            },
            "backoff_max_s: 2 is below backoff_min_s (9)",
        ),
    ],
)
def test_each_webhook_mistake_is_named(entry: dict[str, Any], expected: str) -> None:
    _, problems = _hooks(entry)
    assert any(expected in line for line in problems), problems


def test_two_webhooks_with_one_name_and_plain_http_off_the_host_are_reported() -> None:
    one = {"name": "crm", "url": "http://crm.example/a", "secret": "k", "events": ["visit.ended"]}
    hooks, problems = _hooks(one, one | {"url": "https://other.example/"})
    assert len(hooks) == 1
    assert any("webhooks[1].name: 'crm' is taken" in line for line in problems)
    assert any("webhooks[0].url: warning: is plain http" in line for line in problems)
    _, problems = _hooks()
    assert problems == []
    _, p = validate({"webhooks": {"url": "x"}}, "c.toml", {}, for_daemon=False)
    assert "c.toml: webhooks: expected an array of tables: [[webhooks]]" in p.errors
