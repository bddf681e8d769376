"""The agent desk's view model (core/desk.py, runtime/desk.py) on a recorded lab trace and on
hand-made events: the state and since-when, the screen pop at AgentCalled, wrap-up ended by the
disposition, the caller's previous calls from a real store, today's figures beside targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acdbridge import config
from acdbridge.adapters.store import SqliteStore
from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.desk import CallerCards, DeskTargets, calls_by_agent, previous_calls, today_figures
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.visit import RingAttempt, Visit
from acdbridge.runtime.desk import DeskFeed
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.views import Views

TRACE = Path(__file__).parent / "fixtures" / "traces" / "callflow.ami"
ANA = "Local/9104@lab-agents/n"  # the trace's agent, Ana Torres


def messages() -> list[AmiMessage]:
    return FrameParser().feed(TRACE.read_bytes())


def test_the_desk_follows_the_agent_through_a_recorded_call() -> None:
    engine = Engine(KpiConfig(), {"complaints": 15.0})
    feed = DeskFeed(engine, Views(engine, KpiConfig()), None)
    seen: dict[str, dict[str, Any]] = {}
    for msg in messages():
        engine.feed(msg, 0.0)
        if (msg.kind == "event" and msg.name in ("AgentCalled", "AgentConnect", "AgentComplete")) or (
            msg.name == "VarSet" and msg.get("Variable") == "ACD_DISPOSITION"
        ):
            seen.setdefault(msg.name if msg.name != "VarSet" else "disposition",
                            feed.view("Ana Torres", ANA, engine.now))  # fmt: skip
    ring, talk, wrap, after = (
        seen[k] for k in ("AgentCalled", "AgentConnect", "AgentComplete", "disposition")
    )
    assert ring["state"] == "ringing" and ring["since"] == pytest.approx(1795403985.829911)
    pop = ring["call"]
    assert pop["caller"] == "13900000061" and pop["queue"] == "complaints" and pop["answer_ts"] is None
    assert pop["card"]["hotline"] == "water" and pop["card"]["call_type"] == "complaint"
    assert pop["card"]["language"] == "zh" and pop["card"]["vip"] is False
    assert pop["wait_s"] is None and pop["previous"] == [] and pop["history_loaded"] is True  # no store
    assert talk["state"] == "talking" and talk["call"]["uniqueid"] == pop["uniqueid"]
    assert talk["call"]["answer_ts"] is not None
    assert talk["call"]["wait_s"] == pytest.approx(
        talk["call"]["answer_ts"] - talk["call"]["enter_ts"], abs=1e-3
    )
    assert wrap["state"] == "wrapup" and wrap["call"]["uniqueid"] == pop["uniqueid"]
    # the disposition's VarSet ends the wrap-up at once: the desk shows no call any more
    assert after["state"] in ("ready", "paused") and after["call"] is None
    assert after["since"] > wrap["since"] > talk["since"] > ring["since"]
    assert after["queues"] == ["complaints", "water"]


def event(name: str, **headers: str) -> AmiMessage:
    return AmiMessage("event", name, headers)


def test_caller_cards_keep_what_the_greeting_set_until_the_caller_hangs_up() -> None:
    cards = CallerCards(max_cards=2)
    for var, value in [("__ACD_ACCOUNT", "W-1001"), ("__ACD_NAME", "Zhang Wei"), ("__ACD_VIP", "1"),
                       ("__ACD_ADDRESS", "Haidian 5"), ("__ACD_NOTICE", "haidian-mains"),
                       ("ACD_CALLTYPE", "repair"), ("ACD_OTHER", "x")]:  # fmt: skip
        cards.feed(event("VarSet", Uniqueid="c1", Variable=var, Value=value))
    card = cards.cards["c1"]
    assert (card.account, card.name, card.vip, card.address, card.notice, card.call_type) == (
        "W-1001", "Zhang Wei", True, "Haidian 5", "haidian-mains", "repair")  # fmt: skip
    cards.feed(event("Hangup", Uniqueid="c1"))
    assert "c1" not in cards.cards
    for uid in ("a", "b", "c"):  # bounded: the oldest goes
        cards.feed(event("VarSet", Uniqueid=uid, Variable="ACD_HOTLINE", Value="water"))
    assert list(cards.cards) == ["b", "c"]


def visit(uid: str, caller: str, enter: float, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"uniqueid": uid, "linkedid": uid, "queue": "water", "caller": caller,
            "caller_name": "",
            "outcome": "answered", "blocked_reason": None, "enter_ts": enter, "answer_ts": enter + 5,
            "end_ts": enter + 65, "wait_s": 5.0, "ring_s": 3.0, "talk_s": 60.0, "hold_s": 0.0,
            "hold_count": 0, "wrap_s": 10.0, "agent": "Wang Fang", "agent_interface": "PJSIP/9101",
            "ring_attempts": [], "transfer": None, "ended_by": "agent", "time_source": "events"}  # fmt: skip
    return base | kw


def test_previous_calls_come_from_the_store_newest_first_with_disposition_and_score(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    try:
        now = 1_800_000_000.0
        rows = [visit("u1", "139", now - 3 * 86400), visit("u2", "139", now - 3600, outcome="abandoned"),
                visit("u3", "138", now - 600), visit("old", "139", now - 9 * 86400)]  # fmt: skip
        store.write(rows, [])
        fb = {"queue": "water", "agent": "PJSIP/9101", "resolved": True, "uniqueid": "u1"}
        then = now - 3 * 86400
        disposition = fb | {"kind": "disposition", "value": "resolved", "ts": then + 70}
        store.write_flow([], [disposition, fb | {"kind": "survey", "value": "4", "ts": then + 90}])
        engine = Engine(KpiConfig())
        feed = DeskFeed(engine, Views(engine, KpiConfig()), store, history_days=7)
        found = feed._read("139", "current", now)
        assert [p["time"] for p in found] == [now - 3600, now - 3 * 86400]  # u3 another caller, old too old
        assert found[0]["outcome"] == "abandoned" and found[0]["disposition"] is None
        assert (found[1]["disposition"], found[1]["survey"], found[1]["agent"]) == (
            "resolved",
            "4",
            "Wang Fang",
        )
    finally:
        store.close()


def test_previous_calls_leave_out_the_call_itself_and_an_unknown_number() -> None:
    rows = [visit("now", "139", 10.0), visit("before", "139", 5.0)]
    assert [p["time"] for p in previous_calls("139", rows, [], exclude="now")] == [5.0]
    assert previous_calls("", rows, []) == []


def test_today_figures_stand_beside_their_targets() -> None:
    kpis = {"answered": 4, "aht_s": 320.0, "wrap_s": 200.0, "hold_s": 40.0, "occupancy": 0.9}
    out = today_figures(kpis, DeskTargets(answered=5, aht_s=300.0, acw_s=60.0, hold_s=None, occupancy=0.85))
    assert out["answered"] == {"value": 4, "target": 5, "met": False}
    assert out["aht_s"]["met"] is False and out["acw_s"] == {"value": 50.0, "target": 60.0, "met": True}
    assert out["hold_s"] == {"value": 10.0, "target": None, "met": None}
    assert out["occupancy"]["met"] is True
    empty = today_figures(None, DeskTargets())
    assert empty["answered"]["value"] == 0 and empty["aht_s"] == {"value": None, "target": 300.0, "met": None}


def test_the_desks_disposition_user_event_replays_exactly_as_the_feature_codes_varset() -> None:
    """The same recorded call, once with *551's VarSet and once with the desk's UserEvent in its
    place (same time, same value): the same feedback row, the same visit (wrap-up ended then)."""
    frames = TRACE.read_bytes().split(b"\r\n\r\n")
    (i,) = [n for n, f in enumerate(frames) if b"Variable: ACD_DISPOSITION\r\n" in f]
    headers = dict(line.split(": ", 1) for line in frames[i].decode().split("\r\n")[1:] if ": " in line)
    user_event = (f"Event: UserEvent\r\nPrivilege: user,all\r\nTimestamp: {headers['Timestamp']}\r\n"
                  f"UserEvent: AcdDisposition\r\nValue: {headers['Value']}").encode()  # fmt: skip

    def replay(data: bytes) -> Engine:
        engine = Engine(KpiConfig(), {"complaints": 15.0})
        engine.feed_bytes(data, 0.0)
        engine.finish()
        return engine

    by_code = replay(TRACE.read_bytes())
    by_desk = replay(b"\r\n\r\n".join([*frames[:i], user_event, *frames[i + 1 :]]))
    dispositions = [r for r in by_desk.records("feedback") if r["kind"] == "disposition"]
    assert len(dispositions) == 1 and dispositions[0]["value"] == "resolved"
    assert by_desk.records("feedback") == by_code.records("feedback")
    assert by_desk.records("visit") == by_code.records("visit")
    assert by_desk.records("visit")[0]["wrap_s"] < 15.0


def test_an_agents_call_is_the_one_in_wrap_up_then_the_one_talking_then_one_ringing() -> None:
    def v(uid: str, state: Any, agent: str | None = None, rung: tuple[str, ...] = ()) -> Visit:
        visit = Visit(uid, uid, "water", "139", "", 1.0, "events", state=state, agent_interface=agent)
        visit.ring_attempts = [RingAttempt("", i, 2.0) for i in rung]
        return visit

    talk, ring, wrap = v("t", "talking", "A"), v("r", "waiting", rung=("A", "B")), v("w", "wrapup", "C")
    calls = calls_by_agent([ring, talk], {"C": wrap})
    assert (calls["A"], calls["B"], calls["C"]) == (talk, ring, wrap)
    ended = v("e", "waiting", rung=("D",))
    ended.ring_attempts[0].end_ts = 3.0  # no answer: no longer ringing D
    assert "D" not in calls_by_agent([ended], {})


def test_desk_targets_and_history_come_from_the_desk_section() -> None:
    base = {"ami": {"secret": "x"}}
    desk = {"history_days": 30, "target_answered": 40, "target_aht_s": 0, "target_occupancy": 0.9}
    cfg, p = config.validate(base | {"desk": desk}, "t.toml", {})
    assert p.errors == []
    assert cfg.desk.history_days == 30.0
    assert cfg.desk.targets == DeskTargets(answered=40, aht_s=None, acw_s=60.0, hold_s=60.0, occupancy=0.9)
    assert config.validate(base, "t.toml", {})[0].desk.targets == DeskTargets()
    _, bad = config.validate(base | {"desk": {"target_occupancy": 2, "colour": "red"}}, "t.toml", {})
    assert any("desk.target_occupancy" in e for e in bad.errors)
    assert any("colour" in e for e in bad.errors)
