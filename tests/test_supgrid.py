"""The supervisor desk's pure pieces (core/supgrid.py) and its config table (settings/supconf.py)."""

from __future__ import annotations

from acdbridge.core.agents import Agent
from acdbridge.core.desk import CallerCard
from acdbridge.core.supgrid import (
    TimeLimits,
    abandon_key,
    agent_row,
    caller_repeats,
    changed_rows,
    open_abandons,
    queue_panels,
    waiting_callers,
)
from acdbridge.core.visit import Visit
from acdbridge.settings.problems import Problems
from acdbridge.settings.supconf import DEFAULT_LIMITS, parse_supervisor

T0 = 1_800_000_000.0
LIMITS = TimeLimits({"break": 900.0, "wrapup": 60.0}, red_factor=2.0)


def visit(uid: str, queue: str, enter: float, caller: str = "139", state: str = "waiting") -> Visit:
    return Visit(uid, uid, queue, caller, "", enter, "timestamp", state=state)  # type: ignore[arg-type]


def test_a_limit_goes_amber_at_itself_and_red_at_the_factor_by_reason_or_state() -> None:
    assert LIMITS.level("paused", "break", T0, T0 + 899.9) == "ok"
    assert LIMITS.level("paused", "break", T0, T0 + 900) == "amber"
    assert LIMITS.level("paused", "break", T0, T0 + 1800) == "red"
    assert LIMITS.level("paused", "lunch", T0, T0 + 99_999) == "ok"  # no limit for lunch
    assert LIMITS.level("wrapup", None, T0, T0 + 61) == "amber"
    assert LIMITS.level("talking", None, T0, T0 + 99_999) == "ok"
    assert LIMITS.level("wrapup", None, None, T0) == "ok"
    assert LIMITS.limit_of("paused", "break") == 900.0 and LIMITS.limit_of("ready", None) is None


def test_an_agent_row_has_state_reason_call_and_todays_figures() -> None:
    agent = Agent("PJSIP/9101", "Wang Fang", memberships={"water": True}, pause_reason="break",
                  shown="paused", since=T0)  # fmt: skip
    row = agent_row(
        "Wang Fang", {"water": 3}, {"water"}, agent, None, {"answered": 4, "aht_s": 200.0}, LIMITS
    )
    assert (row["state"], row["reason"], row["since"], row["limit_s"]) == ("paused", "break", T0, 900.0)
    assert (row["calls_today"], row["aht_today_s"], row["caller"], row["spyable"]) == (4, 200.0, None, False)
    call = visit("c1", "water", T0, state="talking")
    call.answer_ts = T0 + 5
    talking = agent_row("Wang Fang", {}, {"water"}, Agent("PJSIP/9101", "Wang Fang", shown="talking"), call,
                        None, LIMITS)  # fmt: skip
    assert (talking["caller"], talking["call_queue"], talking["answer_ts"], talking["spyable"]) == (
        "139", "water", T0 + 5, True)  # fmt: skip
    assert agent_row("X", {}, (), None, None, None, LIMITS)["state"] == "logged_out"


def test_waiting_callers_in_join_order_with_their_card_and_repeat() -> None:
    late, early = visit("c2", "water", T0 + 10, "222"), visit("c1", "water", T0, "111")
    answered = visit("c3", "water", T0 - 5, "333", state="talking")
    cards = {"c2": CallerCard(vip=True, call_type="repair", language="zh")}
    seen = caller_repeats(
        [{"caller": "111", "end_ts": T0 - 3600}, {"caller": "222", "end_ts": T0 - 9 * 3600}], 0
    )
    waiting = waiting_callers([late, early, answered], cards, seen, 4 * 3600)
    rows = waiting["water"]
    assert [(r["position"], r["caller"], r["repeat"]) for r in rows] == [(1, "111", True), (2, "222", False)]
    assert (rows[1]["vip"], rows[1]["call_type"], rows[1]["language"]) == (True, "repair", "zh")
    panels = queue_panels({"water", "sewer"}, waiting, [{"queues": ["water"], "state": "ready"}],
                          {"water": {"offered": 9, "service_level": 0.8}})  # fmt: skip
    assert panels["water"]["waiting"] == 2 and panels["water"]["agents"] == {"ready": 1}
    assert panels["water"]["today"]["offered"] == 9 and panels["sewer"]["waiting"] == 0


def test_open_abandons_leave_out_short_ones_handled_ones_yesterdays_and_other_queues() -> None:
    def rec(uid: str, queue: str, wait: float, end: float, outcome: str = "abandoned") -> dict[str, object]:
        return {"uniqueid": uid, "queue": queue, "caller": "139" + uid, "wait_s": wait, "end_ts": end,
                "outcome": outcome}  # fmt: skip

    records = [rec("1", "water", 40, T0 + 100), rec("2", "water", 5, T0 + 100),  # 5 s: short
               rec("3", "water", 40, T0 - 100), rec("4", "water", 40, T0 + 200, "answered"),
               rec("5", "sewer", 40, T0 + 300), rec("6", "water", 30, T0 + 400)]  # fmt: skip
    handled = {abandon_key(records[5]): "sue"}
    shorts = {"water": 5.0, "sewer": 5.0}.__getitem__
    got = open_abandons(records, T0, shorts, handled, {"water"})
    assert [a["caller"] for a in got] == ["1391"]
    assert [a["caller"] for a in open_abandons(records, T0, shorts, {}, None)] == ["1396", "1395", "1391"]


def test_changed_rows_are_the_new_and_different_ones_and_the_gone_keys() -> None:
    before = {"a": {"s": 1}, "b": {"s": 1}, "c": {"s": 1}}
    after = {"a": {"s": 1}, "b": {"s": 2}, "d": {"s": 1}}
    assert changed_rows(before, after) == ({"b": {"s": 2}, "d": {"s": 1}}, ["c"])


def test_the_supervisor_table_is_checked_with_each_problem_named() -> None:
    p = Problems("f.toml")
    cfg = parse_supervisor(p, {}, {"break"})
    assert p.errors == [] and dict(cfg.limits.limits) == DEFAULT_LIMITS and cfg.limits.red_factor == 2.0
    p = Problems("f.toml")
    cfg = parse_supervisor(p, {"limits": {"break": 600, "nap": 10, "wrapup": -1, "ringing": True},
                               "red_factor": 0.5, "phones": {"sue": "PJSIP/9201", "bob": "9201,q"},
                               "colour": "red"}, {"break", "lunch"})  # fmt: skip
    assert dict(cfg.limits.limits) == {"break": 600.0} and cfg.phones == {"sue": "PJSIP/9201"}
    text = "\n".join(p.errors)
    assert "supervisor: unknown keys ['colour']" in text
    assert "supervisor.limits.nap: not a pause reason or a state" in text
    assert "supervisor.limits.wrapup: expected seconds in (0, 86400], got -1" in text
    assert "supervisor.limits.ringing: expected seconds" in text
    assert "supervisor.red_factor" in text
    assert "supervisor.phones.bob: expected a dial string like 'PJSIP/9201', got '9201,q'" in text
