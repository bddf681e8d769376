"""Urgent calls around the clock (core/oncall.py, the greeting script's choice in core/ivr.py and
the [hotlines.X] urgent / [[hotlines.X.oncall]] keys): which shift covers a local time, when an
urgent call rings the on-call engineer instead of its queue, and config errors that name the key."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest

from acdbridge import config
from acdbridge.core.ivr import CallContext, Caller, OpenSpan, hotline_script
from acdbridge.core.oncall import OncallShift, oncall_reason, shift_now
from acdbridge.core.routing import MemberBook, urgent_priority

from .test_flowconfig import data, parse_error
from .test_ivr import MENU, ROUTING, WATER, Run, drive

MON_FRI = frozenset(range(5))
NIGHT = OncallShift(MON_FRI, 18 * 60, 8 * 60, ("Local/9301@lab-oncall", "PJSIP/9302"), 15)
WEEKEND = OncallShift(frozenset({5, 6}), 0, 24 * 60, ("PJSIP/9303",))
DAY_8_18 = (OpenSpan(MON_FRI, 8 * 60, 18 * 60),)
URGENT = replace(WATER, hours=DAY_8_18, urgent=frozenset({"leak"}), oncall=(NIGHT, WEEKEND))
MONDAY_22, MONDAY_10 = datetime(2026, 11, 23, 22, 0), datetime(2026, 11, 23, 10, 0)
CLOSED_PROMPT, GREETING = "acdbridge/water-closed", "acdbridge/water-greeting"
LEAK: dict[str, list[str | None]] = {MENU: ["3"]}
REPAIR: dict[str, list[str | None]] = {MENU: ["2"]}


def greet(
    presses: dict[str, list[str | None]], now: datetime = MONDAY_22, *,
    logged_in: dict[str, int] | None = None, hotline: Any = URGENT, caller: Caller | None = None,
) -> tuple[Run, CallContext]:  # fmt: skip
    ctx = CallContext(caller, now, 0.0, logged_in=logged_in)
    return drive(hotline_script(hotline, ROUTING, ctx), presses), ctx


# --- which shift covers a local time -------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "covered"),
    [
        (datetime(2026, 11, 23, 17, 59), False),  # Monday before the shift
        (datetime(2026, 11, 23, 18, 0), True),  # Monday evening
        (datetime(2026, 11, 24, 7, 59), True),  # Tuesday morning: Monday's shift
        (datetime(2026, 11, 24, 8, 0), False),
        (datetime(2026, 11, 23, 3, 0), False),  # Monday morning: Sunday starts no shift
        (datetime(2026, 11, 28, 7, 0), True),  # Saturday morning: Friday's shift
        (datetime(2026, 11, 28, 19, 0), False),  # Saturday evening: not a shift day
    ],
)
def test_an_overnight_shift_covers_the_evening_of_its_days_and_the_next_morning(
    when: datetime, covered: bool
) -> None:
    assert NIGHT.covers(when) is covered


def test_the_first_shift_of_the_rota_that_covers_now_is_taken() -> None:
    everyone = OncallShift(frozenset(range(7)), 0, 24 * 60, ("PJSIP/9999",))
    saturday = datetime(2026, 11, 28, 12, 0)
    assert shift_now((WEEKEND, everyone), saturday) is WEEKEND
    assert shift_now((everyone, WEEKEND), saturday) is everyone
    assert shift_now((NIGHT, WEEKEND), MONDAY_10) is None


def test_the_reason_to_skip_the_queue() -> None:
    assert oncall_reason("closed", "water", {"water": 3}) == "closed"
    assert oncall_reason("holiday", "water", None) == "holiday"
    assert oncall_reason("open", "water", {"water": 0, "other": 2}) == "no_agents"
    assert oncall_reason("open", "water", {}) == "no_agents"
    assert oncall_reason("open", "water", {"water": 1}) == ""
    assert oncall_reason("open", "water", None) == ""  # membership not known yet: the queue


# --- the greeting script's choice ----------------------------------------------------------------


def test_an_urgent_call_outside_hours_rings_the_oncall_numbers_in_order() -> None:
    run, ctx = greet(LEAK)
    assert run.prompts == [GREETING, MENU]  # asked for the type, then no closed message
    assert run.vars["ACD_ONCALL"] == "Local/9301@lab-oncall^PJSIP/9302"
    assert (run.vars["ACD_ONCALL_RING"], run.vars["ACD_URGENT"]) == ("15", "1")
    assert run.vars["ACD_CALLTYPE"] == "leak"
    assert run.names[-1] == "ACD_IVR" and run.vars["ACD_IVR"] == "oncall"
    assert "ACD_QUEUE" not in run.vars  # an older dialplan queues the caller rather than hanging up
    assert ctx.summary["outcome"] == "oncall" and ctx.summary["oncall"] == "closed"


def test_a_call_that_is_not_urgent_outside_hours_hears_the_closed_message_after_the_menu() -> None:
    run, ctx = greet(REPAIR)
    assert run.prompts == [GREETING, MENU, CLOSED_PROMPT]
    assert (run.vars["ACD_QUEUE"], run.vars["ACD_IVR"]) == ("-", "closed")
    assert "ACD_ONCALL" not in run.vars and "ACD_URGENT" not in run.vars
    assert ctx.summary["outcome"] == "closed" and ctx.summary["call_type"] == "repair"


def test_outside_every_shift_the_closed_message_plays_at_once_as_without_a_rota() -> None:
    weekday_rota = replace(URGENT, oncall=(OncallShift(MON_FRI, 20 * 60, 23 * 60, ("PJSIP/9301",)),))
    run, _ = greet({}, datetime(2026, 11, 23, 19, 0), hotline=weekday_rota)
    assert run.prompts == [CLOSED_PROMPT] and run.vars["ACD_IVR"] == "closed"


def test_a_holiday_sends_an_urgent_call_to_the_oncall_engineer_even_within_the_hours() -> None:
    holiday = replace(URGENT, holidays=frozenset({date(2026, 11, 23)}), oncall=(WEEKEND, NIGHT,
                      OncallShift(frozenset(range(7)), 0, 24 * 60, ("PJSIP/9304",))))  # fmt: skip
    run, ctx = greet(LEAK, MONDAY_10, hotline=holiday, logged_in={"water": 2})
    assert run.vars["ACD_ONCALL"] == "PJSIP/9304" and ctx.summary["oncall"] == "holiday"
    other, _ = greet(REPAIR, MONDAY_10, hotline=holiday)
    assert other.prompts[-1] == "acdbridge/water-holiday"


def test_within_hours_with_nobody_logged_in_to_its_queue_an_urgent_call_rings_the_oncall() -> None:
    day = replace(URGENT, oncall=(OncallShift(frozenset(range(7)), 0, 24 * 60, ("PJSIP/9305",)),))
    run, ctx = greet(LEAK, MONDAY_10, hotline=day, logged_in={"water_es": 1})
    assert run.vars["ACD_IVR"] == "oncall" and ctx.summary["oncall"] == "no_agents"
    # a Spanish speaker's leak goes to water_es, where somebody is logged in: the queue
    maria = Caller("13800000002", language="es")
    queued, _ = greet(LEAK, MONDAY_10, hotline=day, logged_in={"water_es": 1}, caller=maria)
    assert (queued.vars["ACD_QUEUE"], queued.vars["ACD_IVR"]) == ("water_es", "routed")
    # not urgent: the queue even with nobody in it, as before
    repair, _ = greet(REPAIR, MONDAY_10, hotline=day, logged_in={})
    assert (repair.vars["ACD_QUEUE"], repair.vars["ACD_IVR"]) == ("water", "routed")


def test_an_urgent_call_in_its_queue_gets_a_priority_above_vip_and_repeat_callers() -> None:
    run, _ = greet(LEAK, MONDAY_10, logged_in={"water": 1})
    assert run.vars["QUEUE_PRIO"] == str(urgent_priority(ROUTING)) == "11"  # VIP 10, repeat 5
    assert (run.vars["ACD_URGENT"], run.vars["ACD_IVR"]) == ("1", "routed")
    vip, _ = greet(REPAIR, MONDAY_10, logged_in={"water": 1}, caller=Caller("1", vip=True))
    assert int(vip.vars["QUEUE_PRIO"]) < int(run.vars["QUEUE_PRIO"]) and "ACD_URGENT" not in vip.vars
    assert urgent_priority(replace(ROUTING, repeat_priority=50)) == 51


def test_membership_not_known_yet_queues_an_urgent_call_within_hours() -> None:
    run, _ = greet(LEAK, MONDAY_10, logged_in=None)
    assert run.vars["ACD_IVR"] == "routed"


# --- the config ----------------------------------------------------------------------------------

SHIFT = {"days": "mon-fri", "from": "18:00", "to": "08:00", "numbers": ["PJSIP/9301", "Local/9302@x/n"]}


def water(**changes: Any) -> Any:
    d = data(**({"hotlines__water__urgent": ["repair"], "hotlines__water__oncall": [SHIFT]} | changes))
    flow = config.parse(d, "t.toml").flow
    assert flow is not None
    return flow.hotlines["water"]


def test_urgent_types_and_the_rota_are_read() -> None:
    weekend = {"days": "sat-sun", "from": "00:00", "to": "24:00", "numbers": ["PJSIP/9303&PJSIP/9304"]}
    h = water(hotlines__water__oncall=[SHIFT, weekend | {"ring_s": 30}])
    assert h.urgent == frozenset({"repair"})
    assert h.oncall == (
        OncallShift(MON_FRI, 18 * 60, 8 * 60, ("PJSIP/9301", "Local/9302@x/n"), 20),
        OncallShift(frozenset({5, 6}), 0, 24 * 60, ("PJSIP/9303&PJSIP/9304",), 30),
    )


def test_a_hotline_without_the_keys_has_no_urgent_types_and_no_rota() -> None:
    flow = config.parse(data(), "t.toml").flow
    assert flow is not None and flow.hotlines["water"].urgent == frozenset()
    assert flow.hotlines["water"].oncall == ()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"hotlines__water__urgent": ["leak"]},
         "hotlines.water.urgent: 'leak' is not a call type of the menu"),
        ({"hotlines__water__oncall": {"days": "mon"}},
         "hotlines.water.oncall: expected [[hotlines.water.oncall]]"),
        ({"hotlines__water__oncall": [SHIFT | {"days": "weekdays"}]},
         "hotlines.water.oncall[0].days: 'weekdays': a day or a range of days"),
        ({"hotlines__water__oncall": [SHIFT | {"from": "6pm"}]},
         "hotlines.water.oncall[0].from: '6pm': expected a local time HH:MM"),
        ({"hotlines__water__oncall": [SHIFT | {"to": "18:00"}]}, "hotlines.water.oncall[0].to: must differ"),
        ({"hotlines__water__oncall": [SHIFT | {"from": "24:00"}]}, "hotlines.water.oncall[0].from: 24:00"),
        ({"hotlines__water__oncall": [{k: v for k, v in SHIFT.items() if k != "to"}]},
         "hotlines.water.oncall[0]: to is required"),
        ({"hotlines__water__oncall": [{k: v for k, v in SHIFT.items() if k != "numbers"}]},
         "hotlines.water.oncall[0]: numbers is required"),
        ({"hotlines__water__oncall": [SHIFT | {"numbers": ["9301"]}]},
         "hotlines.water.oncall[0].numbers: '9301': a Dial string TECH/resource"),
        ({"hotlines__water__oncall": [SHIFT | {"numbers": ["PJSIP/1^2"]}]}, "oncall[0].numbers: 'PJSIP/1^2'"),
        ({"hotlines__water__oncall": [SHIFT | {"numbers": ["PJSIP/1,3"]}]}, "oncall[0].numbers: 'PJSIP/1,3'"),
        ({"hotlines__water__oncall": [SHIFT | {"ring_s": 2}]}, "hotlines.water.oncall[0].ring_s"),
        ({"hotlines__water__oncall": [SHIFT | {"phone": "x"}]},
         "hotlines.water.oncall[0]: unknown keys ['phone']"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(changes: dict[str, Any], expected: str) -> None:
    d = data(hotlines__water__urgent=["repair"], hotlines__water__oncall=[SHIFT])
    d["hotlines"]["water"].update({k.split("__")[-1]: v for k, v in changes.items()})
    assert expected in parse_error(d)


def test_a_rota_without_urgent_types_is_a_warning() -> None:
    _cfg, problems = config.validate(data(hotlines__water__oncall=[SHIFT]), "t.toml")
    assert not problems.errors
    assert any("hotlines.water.oncall: warning: ignored without `urgent`" in w for w in problems.warnings)


# --- who is logged in, for the script (core/routing.py MemberBook) -------------------------------


def test_logged_in_counts_members_paused_or_not_once_a_listing_completed() -> None:
    book = MemberBook()
    book.feed("QueueMember", {"Queue": "water", "Location": "PJSIP/9101", "Penalty": "0", "Paused": "1"})
    assert book.logged_in() is None  # no QueueStatusComplete yet: not known
    book.feed("QueueMember", {"Queue": "water", "Location": "PJSIP/9102", "Penalty": "1"})
    book.feed("QueueMember", {"Queue": "broadband", "Location": "PJSIP/9102", "Penalty": "1"})
    book.feed("QueueStatusComplete", {})
    assert book.logged_in() == {"water": 2, "broadband": 1}
    book.feed("QueueMemberRemoved", {"Queue": "broadband", "Interface": "PJSIP/9102"})
    assert book.logged_in() == {"water": 2}
    book.new_connection()
    assert book.logged_in() is None
