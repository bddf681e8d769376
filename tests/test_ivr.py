"""The caller's greeting script and the post-call survey (core/ivr.py), driven by hand: each Play
and Ask gets the key the test scripts for it (or nothing), as the FastAGI adapter would."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import pytest

from acdbridge.core.ivr import (
    Ask,
    CallContext,
    Caller,
    Hotline,
    Notice,
    OpenSpan,
    Play,
    SetVar,
    Step,
    hotline_script,
    is_open,
    survey_script,
)
from acdbridge.core.routing import RoutingConfig, SkillGroup

ROUTING = RoutingConfig(
    groups=(
        SkillGroup("water", "water"),
        SkillGroup("water_es", "water", language="spanish"),
        SkillGroup("complaints", "complaints", widen_to=("water",), rule="widen-with-wait"),
    ),
    call_types={"inquiry": "water", "repair": "water", "leak": "water", "complaint": "complaints"},
    languages={"zh": "", "es": "spanish", "en": "english"},
    generalist_penalty=10,
    vip_priority=10,
    repeat_priority=5,
)
WATER = Hotline(
    name="water",
    default_queue="water",
    default_call_type="inquiry",
    languages=("zh", "es", "en"),
    menu={"1": "inquiry", "2": "repair", "3": "leak", "4": "complaint"},
    menu_timeout_s=4.0,
)
MONDAY_10 = datetime(2026, 11, 23, 10, 0)  # a Monday
NOW_TS = 1_795_000_000.0
GREETING, MENU, INVALID = "acdbridge/water-greeting", "acdbridge/water-menu", "acdbridge/water-invalid"
MARIA = Caller("13800000002", "W-100232", "María López", "5 Calle Mayor", "Chaoyang", language="es")
ZHANG = Caller("13800000001", "W-100231", "Zhang San", "12 Zhongguancun St", "Haidian", language="zh")


@dataclass
class Run:
    steps: list[Step]
    vars: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps if isinstance(s, SetVar)]

    @property
    def prompts(self) -> list[str]:
        return [s.prompt for s in self.steps if isinstance(s, Play | Ask)]

    @property
    def asks(self) -> list[Ask]:
        return [s for s in self.steps if isinstance(s, Ask)]


def drive(
    script: Generator[Step, str | None, None], presses: Mapping[str, Sequence[str | None]] | None = None
) -> Run:
    """Run a script to its end. `presses`: prompt -> the keys pressed on its successive plays
    (None: nothing pressed; a prompt not listed: nothing pressed). Every scripted key must be used."""
    pending = {prompt: list(keys) for prompt, keys in (presses or {}).items()}
    steps: list[Step] = []
    variables: dict[str, str] = {}
    try:
        step = next(script)
        while True:
            assert len(steps) < 100, "the script does not end"
            steps.append(step)
            reply: str | None = None
            if isinstance(step, Play | Ask):
                keys = pending.get(step.prompt)
                reply = keys.pop(0) if keys else None
                if isinstance(step, Play):  # a key ends a Play only if it is one of its escape digits
                    assert reply is None or reply in step.escape_digits, (step, reply)
            else:
                variables[step.name] = step.value
            step = script.send(reply)
    except StopIteration:
        pass
    assert all(not keys for keys in pending.values()), f"keys never asked for: {pending}"
    return Run(steps, variables)


def greet(
    caller: Caller | None = None,
    presses: Mapping[str, Sequence[str | None]] | None = None,
    hotline: Hotline = WATER,
    *,
    now: datetime = MONDAY_10,
    repeat: bool = False,
    notices: tuple[Notice, ...] = (),
    on_duty: Mapping[str, list[int]] | None = None,
) -> tuple[Run, CallContext]:
    c = CallContext(caller, now, NOW_TS, repeat=repeat, notices=notices, on_duty=on_duty)
    return drive(hotline_script(hotline, ROUTING, c), presses), c


# --- variables: order and content ----------------------------------------------------------------


def test_acd_hotline_comes_first_and_acd_queue_then_acd_ivr_last() -> None:
    run, c = greet(None, {MENU: ["2"]})
    assert run.names[0] == "ACD_HOTLINE" and run.vars["ACD_HOTLINE"] == "water"
    assert run.names[-2:] == ["ACD_QUEUE", "ACD_IVR"]
    assert run.vars["ACD_QUEUE"] == "water" and run.vars["ACD_IVR"] == "routed"
    assert isinstance(run.steps[-1], SetVar)  # nothing is played after the routing is final
    once = [n for n in run.names if n != "ACD_IVR_STAGE"]
    assert len(once) == len(set(once))  # every other variable is set once
    assert run.vars["ACD_CALLTYPE"] == "repair" and run.vars["ACD_LANG"] == "zh"
    assert run.vars["ACD_SURVEY"] == "1" and run.vars["QUEUE_MAX_PENALTY"] == "1"
    assert run.vars["__ACD_SKILLS"] == "water"
    assert c.summary == {
        "hotline": "water",
        "language": "zh",
        "call_type": "repair",
        "queue": "water",
        "outcome": "routed",
    }


def test_an_unknown_callers_language_is_the_hotlines_own_and_no_screen_pop_is_set() -> None:
    run, _ = greet(None, {MENU: ["1"]})
    assert run.vars["CHANNEL(language)"] == "zh"
    assert not {"__ACD_ACCOUNT", "__ACD_NAME", "__ACD_ADDRESS"} & set(run.names)
    assert run.vars["__ACD_VIP"] == "0"


def test_a_known_spanish_caller_hears_spanish_and_reaches_the_spanish_group() -> None:
    run, c = greet(MARIA, {MENU: ["3"]})
    assert run.vars["CHANNEL(language)"] == "es" and run.vars["ACD_LANG"] == "es"
    assert run.vars["ACD_QUEUE"] == "water_es" and run.vars["__ACD_SKILLS"] == "water,spanish"
    assert run.names.index("CHANNEL(language)") < run.names.index("ACD_QUEUE")
    assert c.summary["language"] == "es" and c.summary["queue"] == "water_es"


def test_the_screen_pop_is_set_for_a_known_caller_only_before_the_greeting() -> None:
    run, _ = greet(ZHANG, {MENU: ["1"]})
    assert run.vars["__ACD_ACCOUNT"] == "W-100231"
    assert run.vars["__ACD_NAME"] == "Zhang San"
    assert run.vars["__ACD_ADDRESS"] == "12 Zhongguancun St"
    greeting = run.steps.index(Play(GREETING, "1234"))
    assert all(run.steps.index(SetVar(n, run.vars[n])) < greeting for n in ("__ACD_ACCOUNT", "__ACD_VIP"))


def test_a_caller_language_the_hotline_does_not_offer_gets_the_hotlines_own() -> None:
    run, _ = greet(replace(MARIA, language="fr"), {MENU: ["1"]})
    assert run.vars["CHANNEL(language)"] == "zh" and run.vars["ACD_QUEUE"] == "water"


def test_an_english_caller_falls_back_to_the_plain_group_with_a_note() -> None:
    run, c = greet(replace(MARIA, language="en"), {MENU: ["1"]})
    assert run.vars["ACD_QUEUE"] == "water" and run.vars["__ACD_SKILLS"] == "water,english"
    assert c.summary["note"] == "no water group speaks english"


# --- the menu ------------------------------------------------------------------------------------


def test_a_menu_key_pressed_during_the_greeting_skips_the_menu() -> None:
    run, _ = greet(None, {GREETING: ["4"]})
    assert run.prompts == [GREETING]
    assert Play(GREETING, "1234") in run.steps  # escapable by every menu key
    assert "ACD_IVR_STAGE" not in run.names
    assert run.vars["ACD_CALLTYPE"] == "complaint" and run.vars["ACD_QUEUE"] == "complaints"
    assert run.vars["ACD_RULE"] == "widen-with-wait"


def test_an_invalid_key_plays_the_invalid_prompt_then_asks_again() -> None:
    run, c = greet(None, {MENU: ["9", "3"]})
    assert run.prompts == [GREETING, MENU, INVALID, MENU]
    assert run.asks == [Ask(MENU, 4000), Ask(MENU, 4000)]  # menu_timeout_s in ms, one key
    stages = [s.value for s in run.steps if isinstance(s, SetVar) and s.name == "ACD_IVR_STAGE"]
    assert stages == ["menu1", "menu2"]
    assert run.vars["ACD_CALLTYPE"] == "leak" and "menu" not in c.summary


def test_two_failures_route_the_default_call_type() -> None:
    run, c = greet(None, {MENU: ["9", "*"]})
    assert run.prompts == [GREETING, MENU, INVALID, MENU]  # no invalid prompt after the last try
    assert run.vars["ACD_CALLTYPE"] == "inquiry" and run.vars["ACD_QUEUE"] == "water"
    assert run.vars["ACD_IVR"] == "routed" and c.summary["menu"] == "default"


def test_no_input_routes_the_default_call_type() -> None:
    run, c = greet(None)
    assert run.asks == [Ask(MENU, 4000), Ask(MENU, 4000)]
    assert run.vars["ACD_CALLTYPE"] == "inquiry" and run.vars["ACD_IVR"] == "routed"
    assert c.summary["menu"] == "default" and c.summary["outcome"] == "routed"


def test_menu_tries_bounds_the_questions_and_silence_is_not_called_invalid() -> None:
    run, _ = greet(None, hotline=replace(WATER, menu_tries=3))
    assert len(run.asks) == 3 and run.prompts.count(INVALID) == 0


def test_a_hotline_with_an_empty_menu_routes_its_default_call_type_without_asking() -> None:
    complaints = Hotline("complaints", "complaints", "complaint", ("zh", "en"), menu={})
    run, c = greet(ZHANG, hotline=complaints)
    assert run.prompts == ["acdbridge/complaints-greeting"]
    assert Play("acdbridge/complaints-greeting", "") in run.steps  # no escape digits
    assert not run.asks and "ACD_IVR_STAGE" not in run.names
    assert run.vars["ACD_CALLTYPE"] == "complaint" and run.vars["ACD_QUEUE"] == "complaints"
    assert c.summary["menu"] == "default"


def test_a_call_type_without_a_skill_group_goes_to_the_default_queue() -> None:
    hotline = replace(WATER, name="billing", default_queue="billing", menu={"1": "billing"})
    run, _ = greet(None, {"acdbridge/billing-menu": ["1"]}, hotline=hotline)
    assert run.vars["ACD_CALLTYPE"] == "billing" and run.vars["ACD_QUEUE"] == "billing"
    assert run.vars["__ACD_SKILLS"] == ""
    assert not {"QUEUE_MAX_PENALTY", "ACD_RULE", "QUEUE_PRIO"} & set(run.names)


def test_survey_off_sets_acd_survey_0() -> None:
    run, _ = greet(None, {MENU: ["1"]}, hotline=replace(WATER, survey=False))
    assert run.vars["ACD_SURVEY"] == "0"


# --- recording notice and consent ---------------------------------------------------------------

RECORDING = "acdbridge/water-recording"


def test_a_hotline_that_never_records_plays_no_notice_and_sets_nothing() -> None:
    run, ctx = greet(None, {MENU: ["1"]})
    assert RECORDING not in [s.prompt for s in run.steps if isinstance(s, Play | Ask)]
    assert "ACD_RECORD" not in run.vars and "recording" not in ctx.summary


def test_always_plays_the_notice_and_records() -> None:
    run, ctx = greet(None, {MENU: ["1"]}, hotline=replace(WATER, record="always"))
    assert Play(RECORDING) in run.steps
    assert (run.vars["ACD_RECORDING"], run.vars["ACD_RECORD"], ctx.summary["recording"]) == (
        "always",
        "1",
        "always",
    )


def test_with_consent_silence_consents_and_the_opt_out_key_opts_out() -> None:
    consent = replace(WATER, record="consent", record_optout_key="9")
    silent, _ = greet(None, {MENU: ["1"]}, hotline=consent)
    asked = [s for s in silent.asks if s.prompt == RECORDING]
    assert len(asked) == 1 and asked[0].timeout_ms == 3000
    assert (silent.vars["ACD_RECORDING"], silent.vars["ACD_RECORD"]) == ("consent", "1")
    out, ctx = greet(None, {MENU: ["1"], RECORDING: ["9"]}, hotline=consent)
    assert (out.vars["ACD_RECORDING"], out.vars["ACD_RECORD"], ctx.summary["recording"]) == (
        "opted_out",
        "0",
        "opted_out",
    )
    other, _ = greet(None, {MENU: ["1"], RECORDING: ["5"]}, hotline=consent)  # not the key: consents
    assert other.vars["ACD_RECORD"] == "1"
    # asked after the menu, before the queue is named: the dialplan sees ACD_RECORD in time
    names = [s.name for s in out.steps if isinstance(s, SetVar)]
    assert names.index("ACD_CALLTYPE") > names.index("ACD_RECORD") < names.index("ACD_QUEUE")


# --- hours and holidays --------------------------------------------------------------------------

WEEKDAYS_8_20 = (OpenSpan(frozenset(range(5)), 8 * 60, 20 * 60),)


def test_closed_hours_play_the_closed_prompt_and_end_the_call() -> None:
    saturday = datetime(2026, 11, 28, 10, 0)
    run, c = greet(ZHANG, hotline=replace(WATER, hours=WEEKDAYS_8_20), now=saturday)
    assert run.prompts == ["acdbridge/water-closed"]
    assert run.names[-2:] == ["ACD_QUEUE", "ACD_IVR"]
    assert run.vars["ACD_QUEUE"] == "-" and run.vars["ACD_IVR"] == "closed"
    assert "ACD_CALLTYPE" not in run.names and c.summary["outcome"] == "closed"
    assert run.names[0] == "ACD_HOTLINE" and run.vars["__ACD_ACCOUNT"] == "W-100231"


def test_a_holiday_plays_the_holiday_prompt_even_within_the_hours() -> None:
    hotline = replace(WATER, hours=WEEKDAYS_8_20, holidays=frozenset({date(2026, 11, 23)}))
    run, c = greet(None, hotline=hotline)
    assert run.prompts == ["acdbridge/water-holiday"]
    assert run.vars["ACD_QUEUE"] == "-" and run.vars["ACD_IVR"] == "closed"
    assert c.summary["outcome"] == "holiday"


def test_open_within_the_hours() -> None:
    run, _ = greet(None, {MENU: ["1"]}, hotline=replace(WATER, hours=WEEKDAYS_8_20))
    assert run.vars["ACD_IVR"] == "routed"


SPANS = replace(
    WATER,
    hours=(
        OpenSpan(frozenset({4}), 18 * 60, 24 * 60),  # friday evening ...
        OpenSpan(frozenset({5, 6, 0}), 0, 24 * 60),  # ... sat-mon around the clock ...
        OpenSpan(frozenset({2}), 9 * 60, 17 * 60),  # ... and wednesday 9-17
    ),
    holidays=frozenset({date(2026, 12, 25)}),
)


@pytest.mark.parametrize(
    ("when", "state"),
    [
        (datetime(2026, 11, 27, 18, 0), "open"),  # Friday: the start is inclusive
        (datetime(2026, 11, 27, 17, 59), "closed"),  # Friday before it
        (datetime(2026, 11, 28, 23, 59), "open"),  # Saturday, last minute
        (datetime(2026, 11, 29, 0, 0), "open"),  # Sunday midnight
        (datetime(2026, 11, 30, 23, 59), "open"),  # Monday, the last day of the span
        (datetime(2026, 12, 1, 12, 0), "closed"),  # Tuesday: in no span
        (datetime(2026, 12, 2, 9, 0), "open"),  # Wednesday
        (datetime(2026, 12, 2, 8, 59), "closed"),
        (datetime(2026, 12, 2, 17, 0), "closed"),  # the end is exclusive
        (datetime(2026, 12, 3, 10, 0), "closed"),  # Thursday
        (datetime(2026, 12, 25, 19, 0), "holiday"),  # a Friday evening, but a holiday
    ],
)
def test_is_open_with_spans_across_weekdays(when: datetime, state: str) -> None:
    assert is_open(SPANS, when) == state


def test_no_hours_means_always_open_but_holidays_still_close() -> None:
    assert is_open(WATER, datetime(2026, 11, 29, 3, 0)) == "open"
    assert is_open(replace(WATER, holidays=frozenset({date(2026, 11, 29)})), datetime(2026, 11, 29, 3)) == (
        "holiday"
    )


# --- service notices -----------------------------------------------------------------------------

MAINS = Notice("haidian-mains", frozenset({"water"}), frozenset({"Haidian"}), NOW_TS - 3600, NOW_TS + 3600)
NOTICE = "acdbridge/notice-haidian-mains"


def test_a_notice_is_played_after_the_greeting_to_callers_of_its_area() -> None:
    run, c = greet(ZHANG, {MENU: ["1"]}, notices=(MAINS,))
    assert run.prompts == [GREETING, NOTICE, MENU]
    at = run.steps.index(Play(GREETING, "1234"))
    # marked before and after it: a hang-up meanwhile or just after is "informed" (core/legs.py)
    name = "haidian-mains"
    assert run.steps[at + 1 : at + 4] == [
        SetVar("__ACD_NOTICE", name), Play(NOTICE, "1234"), SetVar("ACD_NOTICE_END", name)
    ]  # fmt: skip
    assert c.summary["notice"] == "haidian-mains"


@pytest.mark.parametrize(
    ("caller", "notice"),
    [
        (MARIA, MAINS),  # Chaoyang
        (None, MAINS),  # unknown caller: no area
        (ZHANG, replace(MAINS, start_ts=NOW_TS + 1)),  # not yet in force
        (ZHANG, replace(MAINS, end_ts=NOW_TS)),  # over: the end is exclusive
        (ZHANG, replace(MAINS, hotlines=frozenset({"telecom"}))),  # another hotline's
    ],
    ids=["other-area", "unknown-caller", "before-start", "at-end", "other-hotline"],
)
def test_a_notice_is_not_played_outside_its_area_time_or_hotline(
    caller: Caller | None, notice: Notice
) -> None:
    run, c = greet(caller, {MENU: ["1"]}, notices=(notice,))
    assert NOTICE not in run.prompts and "notice" not in c.summary


def test_a_notice_in_force_from_now_and_without_areas_is_played_to_everyone() -> None:
    everyone = replace(MAINS, areas=frozenset(), start_ts=NOW_TS)
    run, _ = greet(None, {MENU: ["1"]}, notices=(everyone,))
    assert NOTICE in run.prompts


def test_a_key_pressed_during_the_greeting_skips_the_notice_and_one_during_the_notice_the_menu() -> None:
    run, _ = greet(ZHANG, {GREETING: ["2"]}, notices=(MAINS,))
    assert run.prompts == [GREETING] and run.vars["ACD_CALLTYPE"] == "repair"
    run, _ = greet(ZHANG, {NOTICE: ["3"]}, notices=(MAINS,))
    assert run.prompts == [GREETING, NOTICE] and run.vars["ACD_CALLTYPE"] == "leak"


# --- priority and widening -----------------------------------------------------------------------


def test_a_vip_caller_gets_the_vip_priority() -> None:
    run, _ = greet(replace(ZHANG, vip=True), {MENU: ["1"]}, repeat=True)
    assert run.vars["__ACD_VIP"] == "1" and run.vars["QUEUE_PRIO"] == "10"


def test_a_repeat_caller_gets_the_repeat_priority() -> None:
    run, _ = greet(ZHANG, {MENU: ["1"]}, repeat=True)
    assert run.vars["QUEUE_PRIO"] == "5"


def test_an_ordinary_caller_gets_no_queue_prio() -> None:
    run, _ = greet(ZHANG, {MENU: ["1"]})
    assert "QUEUE_PRIO" not in run.names


def test_no_expert_on_duty_widens_the_penalty_limit_at_once() -> None:
    run, c = greet(None, {MENU: ["1"]}, on_duty={"water": [10]})
    assert run.vars["QUEUE_MAX_PENALTY"] == "10"
    assert c.summary["note"] == "no water expert on duty: widened at once"
    run, c = greet(None, {MENU: ["1"]}, on_duty={"water": [0, 10]})
    assert run.vars["QUEUE_MAX_PENALTY"] == "1" and "note" not in c.summary


# --- the survey ----------------------------------------------------------------------------------

SURVEY, THANKS, SURVEY_INVALID = "acdbridge/survey", "acdbridge/survey-thanks", "acdbridge/survey-invalid"


def test_a_valid_score_is_set_then_thanked() -> None:
    run = drive(survey_script(), {SURVEY: ["4"]})
    assert run.steps == [
        SetVar("ACD_IVR_STAGE", "survey"),
        Ask(SURVEY, 6000),
        SetVar("ACD_SURVEY_SCORE", "4"),
        Play(THANKS),
    ]


def test_a_wrong_key_gets_one_retry() -> None:
    run = drive(survey_script(), {SURVEY: ["9", "5"]})
    assert run.prompts == [SURVEY, SURVEY_INVALID, SURVEY, THANKS]
    assert run.vars["ACD_SURVEY_SCORE"] == "5"


@pytest.mark.parametrize("keys", [["9", "0"], ["*", "#"], ["0", None]])
def test_two_wrong_answers_give_no_score(keys: list[str | None]) -> None:
    run = drive(survey_script(), {SURVEY: keys})
    assert "ACD_SURVEY_SCORE" not in run.vars
    assert run.prompts == [SURVEY, SURVEY_INVALID, SURVEY]  # no second retry, no thanks


def test_no_input_twice_gives_no_score_and_no_invalid_prompt() -> None:
    run = drive(survey_script())
    assert run.prompts == [SURVEY, SURVEY]
    assert "ACD_SURVEY_SCORE" not in run.vars


def test_the_top_of_the_scale_follows_max_score() -> None:
    assert drive(survey_script(max_score=3), {SURVEY: ["4", "3"]}).vars["ACD_SURVEY_SCORE"] == "3"
    assert drive(survey_script(max_score=9), {SURVEY: ["9"]}).vars["ACD_SURVEY_SCORE"] == "9"
