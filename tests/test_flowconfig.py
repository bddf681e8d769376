"""The caller's path in the config file (flowconfig.py), read through config.parse/load: the
shipped lab example, and errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from acdbridge import config
from acdbridge.config import ConfigError
from acdbridge.core.ivr import OpenSpan
from acdbridge.flowconfig import DEFAULT_PAUSE_REASONS, Disposition

REPO = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "ami": {"secret": "s"},
    "agi": {"listen": "127.0.0.1:24573"},
    "routing": {
        "call_types": {"inquiry": "water", "repair": "water"},
        "languages": {"zh": "", "es": "spanish"},
        "groups": {"water": {"skill": "water"}, "water_es": {"skill": "water", "language": "spanish"}},
    },
    "hotlines": {
        "water": {
            "dids": ["6000"],
            "default_queue": "water",
            "languages": ["zh", "es"],
            "menu": {"1": "inquiry", "2": "repair"},
            "hours": ["mon-fri 08:00-20:00"],
            "prompts": {
                lang: {
                    "greeting": f"g-{lang}",
                    "menu": f"m-{lang}",
                    "invalid": f"i-{lang}",
                    "closed": f"c-{lang}",
                }
                for lang in ("zh", "es")
            },
        }
    },
    "survey": {
        "prompts": {
            lang: {"survey": f"s-{lang}", "thanks": f"t-{lang}", "invalid": f"x-{lang}"}
            for lang in ("zh", "es")
        }
    },
}


def data(**changes: Any) -> dict[str, Any]:
    """BASE with changes at paths spelt with "__" (hotlines__water__menu={...}); None deletes the key."""
    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = d
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            del node[last]
        else:
            node[last] = value
    return d


def parse_error(d: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse(d, "t.toml")
    return str(info.value)


# --- the shipped example -------------------------------------------------------------------------


def test_the_shipped_lab_example_loads() -> None:
    cfg = config.load(REPO / "examples" / "acdbridge-lab.toml")
    flow = cfg.flow
    assert flow is not None
    assert sorted(flow.hotlines) == ["complaints", "telecom", "water"]
    assert flow.dids == {"6000": "water", "6100": "telecom", "6200": "complaints"}
    assert sorted(flow.profiles) == ["Ana Torres", "Chen Li", "Lucía Vega", "Wang Fang", "Zhou Min"]
    assert flow.profiles["Chen Li"].interface == "PJSIP/1005"  # the default: the PJSIP endpoint
    assert flow.profiles["Lucía Vega"].interface == "Local/9103@lab-agents/n"
    assert flow.profiles["Lucía Vega"].skills == {"water": 4, "spanish": 5, "english": 3}
    assert flow.profile_by_extension("9104") == flow.profiles["Ana Torres"]
    assert sorted(flow.prompts) == ["en", "es", "zh"]
    for lang in ("zh", "es", "en"):
        assert {"water-greeting", "survey", "survey-thanks", "notice-haidian-mains"} <= set(
            flow.prompts[lang]
        )
    assert flow.prompts["zh"]["water-holiday"].startswith("今天是节假日")  # its own text
    assert flow.prompts["en"]["water-holiday"] == flow.prompts["en"]["water-closed"]  # falls back
    assert (flow.agi_host, flow.agi_port) == ("127.0.0.1", 24573)
    assert flow.directory == Path("examples/callers.csv")
    water = flow.hotlines["water"]
    assert water.menu == {"1": "inquiry", "2": "repair", "3": "leak", "4": "complaint"}
    assert water.languages == ("zh", "es", "en") and water.menu_timeout_s == 4.0
    assert water.hours == (OpenSpan(frozenset(range(7)), 0, 24 * 60),)
    complaints = flow.hotlines["complaints"]
    assert complaints.menu == {} and complaints.default_call_type == "complaint"
    assert complaints.hours == (
        OpenSpan(frozenset(range(5)), 8 * 60, 20 * 60),
        OpenSpan(frozenset({5}), 9 * 60, 13 * 60),
    )
    assert [n.name for n in flow.notices] == ["haidian-mains"]
    assert flow.notices[0].areas == frozenset({"Haidian"}) and flow.notices[0].hotlines == frozenset(
        {"water"}
    )
    assert {g.queue for g in flow.routing.groups} == {
        "water",
        "water_es",
        "complaints",
        "fixed_line",
        "broadband",
    }
    assert flow.routing.repeat_window_s == 4 * 3600
    assert flow.dispositions["2"] == Disposition("needs_callback", False)
    assert flow.pause_reasons["5"] == "after-call work"


def test_without_agi_there_is_no_flow() -> None:
    d = data()
    del d["agi"]
    assert config.parse(d, "t.toml").flow is None
    assert config.parse({"ami": {"secret": "s"}}, "t.toml").flow is None


def test_the_minimal_flow_parses_with_defaults() -> None:
    flow = config.parse(data(), "t.toml").flow
    assert flow is not None
    water = flow.hotlines["water"]
    assert water.default_call_type == "inquiry"  # the menu's first call type
    assert water.menu_tries == 2 and water.survey is True and water.holidays == frozenset()
    assert flow.pause_reasons == DEFAULT_PAUSE_REASONS and flow.dispositions == {}
    assert flow.prompts["es"]["water-holiday"] == "c-es"
    assert flow.notices == () and flow.directory is None


# --- errors name the key -------------------------------------------------------------------------


def test_a_missing_greeting_prompt_for_a_listed_language() -> None:
    msg = parse_error(data(hotlines__water__prompts__es__greeting=None))
    assert msg.startswith("t.toml: hotlines.water.prompts.es")
    assert "greeting" in msg


def test_a_language_without_any_prompts() -> None:
    msg = parse_error(data(hotlines__water__languages=["zh", "es", "en"]))
    assert "hotlines.water.prompts.en" in msg


@pytest.mark.parametrize("key", ["a", "12", "", "+"])
def test_a_menu_key_that_is_not_a_keypad_key(key: str) -> None:
    msg = parse_error(data(hotlines__water__menu={"1": "inquiry", key: "repair"}))
    assert "hotlines.water.menu" in msg and repr(key) in msg


def test_star_and_hash_are_keypad_keys() -> None:
    d = data(hotlines__water__menu={"*": "inquiry", "#": "repair"})
    flow = config.parse(d, "t.toml").flow
    assert flow is not None and flow.hotlines["water"].menu == {"*": "inquiry", "#": "repair"}


@pytest.mark.parametrize("level", [6, 0, True, "5"])
def test_a_proficiency_outside_1_to_5(level: object) -> None:
    msg = parse_error(data(agents={"Ana": {"extension": "9104", "skills": {"water": level}}}))
    assert "agents.Ana.skills.water" in msg


def test_an_agent_without_an_extension_is_not_a_profile() -> None:
    flow = config.parse(data(agents={"Ana": {"qa_score": 90.0}}), "t.toml").flow
    assert flow is not None and flow.profiles == {}


@pytest.mark.parametrize(
    "hours", ["mon-fri 8-20", "mon-fri 08:00", "weekdays 08:00-20:00", "mon-fri 20:00-08:00"]
)
def test_bad_hours(hours: str) -> None:
    msg = parse_error(data(hotlines__water__hours=[hours]))
    assert "hotlines.water.hours" in msg and hours in msg


def test_hours_wrap_around_the_week() -> None:
    flow = config.parse(data(hotlines__water__hours=["sat-mon 00:00-24:00"]), "t.toml").flow
    assert flow is not None
    assert flow.hotlines["water"].hours == (OpenSpan(frozenset({5, 6, 0}), 0, 24 * 60),)


def test_hours_with_minutes_past_59_are_rejected() -> None:
    msg = parse_error(data(hotlines__water__hours=["mon-fri 08:75-20:00"]))
    assert "hotlines.water.hours" in msg


def test_a_menu_call_type_missing_from_routing_call_types() -> None:
    msg = parse_error(data(hotlines__water__menu={"1": "inquiry", "2": "billing"}))
    assert "hotlines.water.menu" in msg and "billing" in msg


NOTICE = {
    "name": "mains",
    "areas": ["Haidian"],
    "start": "2026-01-02T00:00:00+08:00",
    "end": "2026-01-03T00:00:00+08:00",
    "prompts": {"zh": "z", "es": "e"},
}


def test_a_notice_applies_to_every_hotline_when_none_are_named() -> None:
    flow = config.parse(data(notices=[NOTICE]), "t.toml").flow
    assert flow is not None
    (n,) = flow.notices
    assert n.hotlines == frozenset({"water"}) and n.end_ts - n.start_ts == 86400
    assert flow.prompts["es"]["notice-mains"] == "e"


@pytest.mark.parametrize("end", ["2026-01-01T00:00:00+08:00", "2026-01-02T00:00:00+08:00"])
def test_a_notice_ending_before_it_starts(end: str) -> None:
    msg = parse_error(data(notices=[{**NOTICE, "end": end}]))
    assert "notices[0]" in msg and "end" in msg


def test_a_notice_missing_a_languages_text() -> None:
    msg = parse_error(data(notices=[{**NOTICE, "prompts": {"zh": "z"}}]))
    assert "notices[0].prompts" in msg and "'es'" in msg


@pytest.mark.parametrize(
    "listen", ["24573", "localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "h:x"]
)
def test_a_bad_agi_listen(listen: str) -> None:
    msg = parse_error(data(agi={"listen": listen}))
    assert "agi.listen" in msg


def test_an_ipv6_agi_listen() -> None:
    flow = config.parse(data(agi={"listen": "[::1]:4573"}), "t.toml").flow
    assert flow is not None and (flow.agi_host, flow.agi_port) == ("::1", 4573)


def test_codes_01_and_1_are_the_same_key() -> None:
    d = data(
        dispositions={"01": {"code": "resolved"}, "12": {"code": "escalated", "resolved": False}},
        pause_reasons={"01": "break", "2": "lunch"},
    )
    flow = config.parse(d, "t.toml").flow
    assert flow is not None
    assert flow.dispositions == {"1": Disposition("resolved", True), "12": Disposition("escalated", False)}
    assert flow.pause_reasons == {"1": "break", "2": "lunch"}


@pytest.mark.parametrize("code", ["123", "x", "1a"])
def test_a_code_that_is_not_one_or_two_digits(code: str) -> None:
    msg = parse_error(data(dispositions={code: {"code": "resolved"}}))
    assert repr(code) in msg


def test_a_bad_code_error_names_its_section() -> None:
    assert "dispositions" in parse_error(data(dispositions={"x": {"code": "resolved"}}))


def test_codes_01_and_1_both_given_is_an_error() -> None:
    msg = parse_error(data(pause_reasons={"1": "break", "01": "lunch"}))
    assert "pause_reasons" in msg


def test_a_survey_that_is_not_a_table_is_a_config_error() -> None:
    msg = parse_error(data(survey="yes"))
    assert "survey" in msg


def test_unknown_hotline_keys_are_named() -> None:
    msg = parse_error(data(hotlines__water__menu_timeout=4))
    assert "hotlines.water" in msg and "menu_timeout" in msg


def test_a_hotline_without_a_default_queue() -> None:
    assert "default_queue" in parse_error(data(hotlines__water__default_queue=None))


def test_a_skill_group_without_a_skill() -> None:
    assert "routing.groups.water" in parse_error(data(routing__groups__water={"rule": "r"}))


def test_a_missing_survey_prompt() -> None:
    msg = parse_error(data(survey__prompts__zh__thanks=None))
    assert "survey.prompts.zh" in msg and "thanks" in msg


def test_a_bad_holiday_date() -> None:
    assert "hotlines.water.holidays" in parse_error(data(hotlines__water__holidays=["2026-13-01"]))


# --- recording ------------------------------------------------------------------------------------


def test_recording_is_never_by_default_and_consent_needs_its_notice_in_every_language() -> None:
    flow = config.parse(BASE, "t.toml").flow
    assert flow is not None and flow.hotlines["water"].record == "never"
    msg = parse_error(data(hotlines__water__record="consent"))
    assert "hotlines.water.prompts.zh" in msg and "recording" in msg
    texts = {
        lang: {**BASE["hotlines"]["water"]["prompts"][lang], "recording": f"r-{lang}"}
        for lang in ("zh", "es")
    }
    flow = config.parse(
        data(hotlines__water__record="consent", hotlines__water__prompts=texts), "t.toml"
    ).flow
    assert flow is not None
    assert (flow.hotlines["water"].record, flow.hotlines["water"].record_optout_key) == ("consent", "9")
    assert flow.prompts["zh"]["water-recording"] == "r-zh"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("record", "sometimes", "'sometimes': one of always, consent, never"),
     ("record_optout_key", "1", "'1': one keypad key, not one of the menu's"),
     ("record_optout_key", "99", "'99': one keypad key")],
)  # fmt: skip
def test_a_bad_recording_setting_is_named(key: str, value: str, named: str) -> None:
    msg = parse_error(data(**{f"hotlines__water__{key}": value}))
    assert f"hotlines.water.{key}" in msg and named in msg
