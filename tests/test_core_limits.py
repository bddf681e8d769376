"""The core is never killed by its input: values checked where they enter, bounded state, a
linear parser with a frame limit, strict JSON. Each fixture in tests/fixtures/fuzz is an input
that crashed some stage before (see docs/security.md, "AMI input: limits and fuzz figures")."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from acdbridge.adapters.metrics import build_families, new_registry, render, window_kpis
from acdbridge.core.ami import MAX_FRAME_BYTES, AmiMessage, FrameParser
from acdbridge.core.board import agent_boards, queue_boards
from acdbridge.core.kpi import KpiConfig, KpiEngine, feedback_kpis, kpis_over
from acdbridge.core.limits import Limits
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.core.tallies import MAX_SERIES, OTHER, Tallies, live_gauges
from acdbridge.core.values import MAX_VALUE_CHARS, Problems, checked, event_time, parse_int, parse_seconds
from acdbridge.replay import dumps, read_chunks

FUZZ = Path(__file__).parent / "fixtures" / "fuzz"
T0 = 1_795_395_500.0


def chain(path: Path) -> tuple[Pipeline, list[Record], list[str]]:
    """A trace through everything the daemon does with it; any exception fails the test."""
    records: list[Record] = []
    problems: list[str] = []
    cfg = KpiConfig()
    engine = KpiEngine(cfg)

    def keep(add: Any) -> Any:
        def both(record: Record) -> None:
            records.append(record)
            add(record)

        return both

    p = Pipeline(
        {"water": 5.0},
        on_visit=keep(engine.add_visit),
        on_agent_state=keep(engine.add_agent_state),
        on_feedback=keep(engine.add_feedback),
        on_problem=problems.append,
    )
    for data in read_chunks(path):
        p.feed_bytes(data)
    p.finish()
    now = p.calls.now
    live = live_gauges(p.calls, p.agents, now)
    windows = window_kpis(engine, cfg, now)
    json.dumps(windows, allow_nan=False)
    registry, collector = new_registry()
    collector.publish(build_families(p.tallies, live, None, windows, cfg))
    assert b"NaN" not in render(registry)
    for b in queue_boards(live, windows, cfg).values():
        json.dumps(b.as_dict(), allow_nan=False)
    agent_boards(live)
    json.dumps(p.snapshot(), allow_nan=False)
    for r in records:
        dumps(r)
    return p, records, problems


@pytest.mark.parametrize("name", ["timestamp_1e20.ami", "timestamp_inf.ami", "timestamp_nan.ami"])
def test_an_absurd_timestamp_falls_back_and_is_counted(name: str) -> None:
    # before: 1e20 -> OverflowError in the KPI windows; inf -> OverflowError on the board and +Inf
    # on /metrics; NaN -> NaN in the record's JSON and a visit the store dropped
    p, records, problems = chain(FUZZ / name)
    assert p.problem_counts["timestamp_out_of_range"] >= 1
    assert problems[0].startswith("timestamp_out_of_range")
    assert len({line.split(":")[0] for line in problems}) == len(problems)  # once per kind
    assert all(T0 <= r["end_ts"] < T0 + 10 for r in records if "end_ts" in r)
    assert T0 <= p.calls.now < T0 + 10


def test_a_survey_score_that_is_no_ascii_digit_is_refused_and_a_stored_one_ignored() -> None:
    # before: '²'.isdigit() let it through, int('²') raised in the KPI code, after every restart
    p, records, _ = chain(FUZZ / "survey_superscript_digit.ami")
    assert not [r for r in records if r.get("kind") == "survey"] and p.legs.problems == 1
    stored = {
        "uniqueid": "c1.1",
        "kind": "survey",
        "value": "²",
        "resolved": False,
        "queue": "water",
        "agent": "",
        "ts": T0,
    }
    kpis = feedback_kpis(
        [stored, dict(stored, value="٣"), dict(stored, value="4")], {"queues": {}, "agents": {}}
    )
    assert kpis["queues"]["water"]["surveys"] == 1


def test_values_are_strict_ascii() -> None:
    assert parse_seconds("12.5") == 12.5 and parse_seconds("0") == 0.0
    for bad in ("nan", "inf", "1e20", "-1", " 1", "1_0", "٣", "²", "", "1" * 13):
        assert parse_seconds(bad) is None, bad
    assert parse_int("-3") == -3 and parse_int("٣") is None and parse_int("1.0") is None
    assert event_time("1795395500.123456", 0.0) == 1795395500.123456
    assert event_time("7258118401", 0.0) is None  # after 2200
    assert event_time("1795395500", 1795395500.0 + 3601) is None  # an hour off the receive time
    assert event_time("1795395500", 1795395500.0 + 3599) == 1795395500.0


def test_checked_drops_bad_numbers_truncates_long_values_and_reports_once_per_kind() -> None:
    said: list[str] = []
    problems = Problems(said.append)
    good = AmiMessage(
        "event",
        "AgentComplete",
        {"Event": "AgentComplete", "Timestamp": "1795395500.1", "TalkTime": "12", "Queue": "water"},
    )
    assert checked(good, 0.0, problems) is good and problems.counts == {}
    for _ in range(3):
        bad = AmiMessage(
            "event",
            "AgentComplete",
            {"Event": "AgentComplete", "Timestamp": "nan", "TalkTime": "١٢", "Queue": "q" * 5000},
        )
        out = checked(bad, 0.0, problems)
        assert "Timestamp" not in out.headers and "TalkTime" not in out.headers
        assert len(out.headers["Queue"]) == MAX_VALUE_CHARS
    assert problems.counts == {"timestamp_out_of_range": 3, "not_ascii_digits": 3, "value_too_long": 3}
    assert len(said) == 3


def test_a_status_word_is_a_problem_only_where_the_core_reads_a_number() -> None:
    problems = Problems(lambda _line: None)
    booted = AmiMessage("event", "FullyBooted", {"Event": "FullyBooted", "Status": "Fully Booted"})
    assert checked(booted, 0.0, problems) is booted and problems.counts == {}
    member = AmiMessage("event", "QueueMemberStatus", {"Event": "QueueMemberStatus", "Status": "Fully"})
    assert "Status" not in checked(member, 0.0, problems).headers
    assert problems.counts == {"not_ascii_digits": 1}


def test_an_oversized_frame_is_dropped_to_its_end_and_the_next_one_parsed() -> None:
    counted: list[str] = []
    parser = FrameParser(count=lambda kind, _detail: counted.append(kind))
    parser.feed(b"Asterisk Call Manager/11.0.0\r\n")
    big = b"Event: Hangup\r\nX: " + b"x" * (MAX_FRAME_BYTES + 10) + b"\r\n\r\n"
    after = b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    data = big + after
    got: list[AmiMessage] = []
    started = time.perf_counter()
    for at in range(0, len(data), 1460):
        got += parser.feed(data[at : at + 1460])
    elapsed = time.perf_counter() - started
    assert [m.headers.get("Uniqueid") for m in got] == ["1.1"]
    assert counted == ["frame_too_large"] and parser.stats.too_large == 1
    assert elapsed < 1.0  # linear: ~ms (the old parser took over 200 ms for 1 MB)


def test_a_large_frame_under_the_limit_is_parsed_whole_across_segments() -> None:
    parser = FrameParser(wanted=None)
    value = "é" * 200_000
    data = f"Event: Hangup\r\nCallerIDName: {value}\r\n\r\n".encode()
    got: list[AmiMessage] = []
    for at in range(0, len(data), 1460):
        got += parser.feed(data[at : at + 1460])
    assert len(got) == 1 and got[0].headers["CallerIDName"] == value


def join(uid: str, ts: float, queue: str = "water") -> AmiMessage:
    h = {
        "Event": "QueueCallerJoin",
        "Timestamp": f"{ts:.6f}",
        "Queue": queue,
        "Uniqueid": uid,
        "Linkedid": uid,
        "CallerIDNum": "555",
        "CallerIDName": "A",
        "Position": "1",
        "Count": "1",
    }
    return AmiMessage("event", "QueueCallerJoin", h)


def member(interface: str, queue: str, ts: float) -> AmiMessage:
    h = {
        "Event": "QueueMemberAdded",
        "Timestamp": f"{ts:.6f}",
        "Queue": queue,
        "Interface": interface,
        "MemberName": interface,
        "Paused": "0",
        "Penalty": "0",
        "Status": "1",
    }
    return AmiMessage("event", "QueueMemberAdded", h)


def test_callers_who_never_leave_are_evicted_by_age_and_count() -> None:
    said: list[str] = []
    p = Pipeline(on_problem=said.append, limits=Limits(max_callers=100, caller_max_age_s=3600))
    for i in range(500):
        p.feed(join(f"c{i}", T0 + i))
    assert len(p.calls.active) <= 100 + 64
    p.feed(join("late", T0 + 500 + 3601))  # an hour later: everyone before is stale
    assert list(p.calls.active) == ["late"]
    assert p.problem_counts["evicted_caller"] == 500
    assert sum(s.startswith("evicted_caller") for s in said) == 1


def test_agents_memberships_and_queues_are_capped() -> None:
    p = Pipeline(limits=Limits(max_agents=50, max_queues=20, max_members=200))
    for i in range(2000):
        p.feed(member(f"PJSIP/a{i}", f"q{i % 300}", T0 + i))
    p.janitor.check()
    assert len(p.agents.agents) <= 50 and len(p.calls.known_queues) <= 20
    assert len(p.members.penalty) <= 200
    assert {"evicted_agent", "evicted_member"} <= p.problem_counts.keys()


def test_live_gauges_stay_cheap_at_the_default_caps() -> None:
    lim = Limits()
    p = Pipeline()
    for i in range(lim.max_callers):
        p.feed(join(f"c{i}", T0 + i / 100, queue=f"q{i % lim.max_queues}"))
    for i in range(lim.max_agents):
        for q in range(3):
            p.feed(member(f"PJSIP/a{i}", f"q{(i + q) % lim.max_queues}", T0 + 200))
    assert len(p.calls.active) == lim.max_callers and len(p.agents.agents) == lim.max_agents
    started = time.perf_counter()
    live_gauges(p.calls, p.agents, T0 + 300)
    assert time.perf_counter() - started < 0.5  # about 0.05 s here (docs/security.md)


def test_kpi_engine_leaves_out_records_no_finite_sum_can_come_from_and_is_capped() -> None:
    engine = KpiEngine(KpiConfig(), max_records=100)
    v = {
        "uniqueid": "u",
        "queue": "water",
        "outcome": "answered",
        "enter_ts": T0,
        "end_ts": T0 + 10,
        "wait_s": 1.0,
        "ring_s": 0.0,
        "talk_s": 1e308,
        "hold_s": 1e308,
        "wrap_s": None,
        "agent": "A",
        "ring_attempts": [],
        "transfer": None,
    }
    engine.add_visit(v)
    engine.add_visit(dict(v, uniqueid="n", end_ts=math.nan))
    assert engine.rejected == 2 and engine.retained() == (0, 0)
    for i in range(300):
        engine.add_visit(dict(v, uniqueid=f"u{i}", talk_s=1.0, hold_s=0.0, end_ts=T0 + i))
    assert engine.retained()[0] == 100 and engine.evicted == 200
    assert engine.rolling(T0 + 300, 900)["queues"]["water"]["offered"] == 100
    assert kpis_over([v], [], KpiConfig())["queues"] == {}  # the direct path leaves it out too
    engine.add_visit(dict(v, uniqueid="future", talk_s=1.0, hold_s=0.0, end_ts=T0 + 10 * 86_400))
    engine.rolling(T0 + 300, 900)  # a record from the future: fewer records, no error
    with pytest.raises(ValueError, match="keeps"):
        engine.rolling(T0, 3 * 86_400)
    json.dumps(engine.today(1e300), allow_nan=False)  # a clock beyond datetime's range: no error


def test_tally_labels_beyond_the_cap_are_counted_as_other() -> None:
    t = Tallies()
    for i in range(MAX_SERIES + 10):
        t.add_visit(
            {
                "queue": f"q{i}",
                "outcome": "abandoned",
                "wait_s": math.inf,
                "ring_attempts": [],
                "transfer": None,
                "talk_s": 0,
                "hold_s": 0,
                "wrap_s": None,
            }
        )
    assert len(t.calls) == MAX_SERIES + 1 and t.calls[(OTHER, "abandoned")] == 10
    assert all(math.isfinite(h.total) for h in t.wait.values())


def test_a_receive_time_beyond_2200_is_ignored() -> None:
    # found by benchmarks/fuzz_ami.py: an event without a Timestamp took a receive time of
    # 9999999999.99 as its time, the clock went past 2200 and the "today" window raised
    cfg = KpiConfig()
    engine = KpiEngine(cfg)
    p = Pipeline(on_visit=engine.add_visit)
    for data in read_chunks(FUZZ / "receive_time_beyond_2200.ami"):
        p.feed_bytes(data, received_at=9_999_999_999.99)
    assert p.calls.now == 0.0 and p.problem_counts["timestamp_out_of_range"] >= 1
    json.dumps(window_kpis(engine, cfg, p.calls.now), allow_nan=False)
    json.dumps(window_kpis(engine, cfg, 9_999_999_999.99), allow_nan=False)  # and the engine clamps


def test_hold_on_the_channel_of_an_evicted_agent_is_ignored() -> None:
    p = Pipeline(limits=Limits(max_agents=1))
    connect = {"Event": "AgentConnect", "Timestamp": f"{T0:.6f}", "Queue": "water", "Uniqueid": "c1",
               "Interface": "PJSIP/a1", "MemberName": "A", "DestUniqueid": "agent-chan"}  # fmt: skip
    p.feed(AmiMessage("event", "AgentConnect", connect))
    for i in range(70):  # more agents than the cap: PJSIP/a1 is evicted at the next check
        p.feed(member(f"PJSIP/b{i}", "water", T0 + 1))
    assert "PJSIP/a1" not in p.agents.agents and p.agents.by_channel == {"agent-chan": "PJSIP/a1"}
    p.feed(
        AmiMessage("event", "Hold", {"Event": "Hold", "Timestamp": f"{T0 + 2:.6f}", "Uniqueid": "agent-chan"})
    )
