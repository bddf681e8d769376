from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdbridge.errors import ScenarioError
from acdbridge.lab import scenario

BASE: dict[str, Any] = {
    "queues": {"water": {"dial": "6000", "max_wait_s": 30, "talk_s": {"min": 2, "max": 4}}},
    "agents": [{"id": "9001", "queues": ["water"], "ring_delay_s": 1}],
    "calls": [{"at_s": 0, "queue": "water"}],
}


def with_(path: str, value: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(BASE))
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return data


def test_shipped_scenarios_all_load() -> None:
    names = scenario.shipped()
    assert {"mixed", "smoke", "sip_hold", "demo"} <= set(names)
    for name in names:
        scn = scenario.load(name)
        assert scn.calls and scn.agents


def test_mixed_scenario_has_20_calls_and_every_agent_behaviour() -> None:
    scn = scenario.load("mixed")
    assert len(scn.calls) >= 20
    assert any(a.ring_delay_s is None for a in scn.agents)  # ring-no-answer
    actions = {c.action for c in scn.calls}
    assert {"blind_transfer", "attended_transfer", "agent_hangs_up", "caller_hangs_up"} <= actions
    assert any(c.patience_s < 5 for c in scn.calls)  # a short abandon
    assert any(c.max_wait_s is not None and c.max_wait_s < 10 for c in scn.calls)  # a queue timeout


def test_plan_is_deterministic_and_gives_unique_caller_numbers() -> None:
    scn = scenario.load("mixed")
    first, second = scenario.plan(scn), scenario.plan(scn)
    assert first == second
    assert len({c.caller_number for c in first}) == len(first)
    assert [c.at_s for c in first] == sorted(c.at_s for c in first)


def test_poisson_arrivals_follow_the_rate_roughly() -> None:
    data = dict(BASE, calls=[], arrivals={"rate_per_min": 60, "duration_s": 600, "patience_s": {"mean": 30}})
    scn = scenario.parse(data)
    assert 480 < len(scn.calls) < 720  # 600 expected; 4 sigma is about +-100
    assert all(0 <= c.at_s < 600 for c in scn.calls)


def test_talk_time_distribution_stays_in_bounds() -> None:
    calls = scenario.plan(
        scenario.parse(dict(BASE, calls=[{"at_s": i, "queue": "water"} for i in range(200)]))
    )
    assert all(2 <= c.talk_s <= 4 for c in calls)
    assert len({c.talk_s for c in calls}) > 100


def test_a_toml_file_and_its_json_twin_give_the_same_scenario(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[queues.water]\ndial = "6000"\n[[agents]]\nid = "9001"\nqueues = ["water"]\n'
        '[[calls]]\nat_s = 0\nqueue = "water"\n'
    )
    js = tmp_path / "s.json"
    twin = {
        "queues": {"water": {"dial": "6000"}},
        "agents": [{"id": "9001", "queues": ["water"]}],
        "calls": [{"at_s": 0, "queue": "water"}],
    }
    js.write_text(json.dumps(twin))
    assert scenario.load(toml).calls == scenario.load(js).calls


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_("queues.water.dial", "six"), "queues.water.dial: expected digits"),
        (with_("agents.0.queues", ["nope"]), "agents[0].queues: unknown queue 'nope'"),
        (with_("agents.0.ring_delay_s", -1), "agents[0].ring_delay_s: must be a non-negative"),
        (with_("agents.0.ring_delay_s", "soon"), "agents[0].ring_delay_s: expected an integer or a number"),
        (with_("agents.0.kind", "robot"), "agents[0].kind: expected 'local' or 'sipp'"),
        (with_("agents.0.after_talk", {"blind_transfer": 1}), "agents[0].transfer_to: needed"),
        (with_("agents.0.after_talk", {"dance": 1}), "agents[0].after_talk: unknown choice 'dance'"),
        (with_("calls.0.action", "shout"), "calls[0].action: expected one of"),
        (with_("calls.0.digit", "12"), "calls[0].digit: expected one DTMF digit"),
        (with_("calls.0.queue", "gas"), "calls[0].queue: unknown queue 'gas'"),
        (with_("queues.water.talk_s", {"min": 5, "max": 1}), "queues.water.talk_s: max (1.0) is below min"),
        (with_("queues.water.talk_s", {"median": 5}), "unknown keys ['median']"),
        (with_("calls", []), "the scenario places no call"),
        (with_("colour", "blue"), "top level: unknown keys ['colour']"),
        ({**BASE, "agents": [BASE["agents"][0], BASE["agents"][0]]}, "duplicate agent ids ['9001']"),
        (with_("agents.0", {"id": "2001", "kind": "sipp", "queues": ["water"]}), "must be one of the PJSIP"),
        (with_("calls.0.patience_s", True), "expected an integer or a number, got True"),
    ],
)
def test_invalid_scenarios_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario.parse(data, "test.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("test.toml: ")


def test_unreadable_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario file 'nope'"):
        scenario.load("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[queues\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        scenario.load(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[1, 2]")
    with pytest.raises(ScenarioError, match="expected a table at the top level"):
        scenario.load(bad_json)


@given(
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=5)
)
def test_arbitrary_tables_never_crash_the_parser(data: dict[str, Any]) -> None:
    with contextlib.suppress(ScenarioError):
        scenario.parse(data)
