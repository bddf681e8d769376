"""Replay of real traces recorded on the lab, checked visit by visit against the queue_log
Asterisk wrote for the same calls."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.pipeline import Pipeline
from acdbridge.lab import queuelog
from acdbridge.replay import read_chunks, replay_records
from tests.truth import compare, truth_visits

TRACES = Path(__file__).parent / "fixtures" / "traces"
ALL = sorted(p for p in TRACES.iterdir() if p.suffix in (".ami", ".gz"))


def queue_log_of(trace: Path) -> Path:
    return trace.with_name(trace.name.removesuffix(".gz") + ".queue_log")


@pytest.mark.parametrize("trace", ALL, ids=lambda p: p.name)
def test_every_visit_matches_queue_log(trace: Path) -> None:
    records = replay_records(trace)
    truth = truth_visits(queuelog.read(queue_log_of(trace)))
    assert truth, "the fixture has no queue_log visits"
    assert compare(truth, records) == []


def test_mixed_trace_has_every_outcome_and_transfer() -> None:
    records = replay_records(TRACES / "mixed.ami.gz")
    outcomes = {r["outcome"] for r in records}
    assert {"answered", "abandoned", "timeout"} <= outcomes
    kinds = {r["transfer"]["kind"]: r for r in records if r["transfer"]}
    assert kinds["blind"]["transfer"]["to"] == "6100@inbound" and kinds["blind"]["ended_by"] == "transfer"
    assert kinds["attended"]["transfer"]["to"] == "6100@inbound"
    # the blind-transferred caller's channel starts a second visit, in broadband, same linkedid
    blind = kinds["blind"]
    second = [r for r in records if r["uniqueid"] == blind["uniqueid"] and r["queue"] == "broadband"]
    assert len(second) == 1 and second[0]["linkedid"] == blind["linkedid"]
    assert second[0]["enter_ts"] >= blind["end_ts"]
    # ring attempts: ring-no-answer, and a caller who hung up while an agent's phone rang
    results = {a["result"] for r in records for a in r["ring_attempts"]}
    assert {"answered", "no_answer", "dumped"} <= results
    # names in several scripts survive intact
    assert "王小明" in {r["caller_name"] for r in records}


def test_edge_trace_blocked_full_exit_empty_exit_key_and_wrap_cut_short() -> None:
    records = replay_records(TRACES / "edge.ami")
    blocked = [r for r in records if r["outcome"] == "blocked"]
    reasons = sorted((r["queue"], r["blocked_reason"]) for r in blocked)
    assert reasons == [("broadband", "joinempty"), ("complaints", "full"), ("water", "joinempty")]
    assert all(r["wait_s"] == 0 and r["agent"] is None for r in blocked)
    assert [r["outcome"] for r in records].count("exit_empty") == 1
    (key_exit,) = [r for r in records if r["outcome"] == "exit_key"]
    assert key_exit["queue"] == "water" and 1.0 < key_exit["wait_s"] < 2.5
    answered = [r for r in records if r["outcome"] == "answered"]
    # wrapuptime is 5 s (GetConfig in the trace); pauses and the logout at the end cut it short
    assert all(r["wrap_s"] is not None and 0 <= r["wrap_s"] <= 5.0 for r in answered)
    assert any(1.5 < r["wrap_s"] < 2.5 for r in answered)  # the ACW pause 2 s after the call


def test_sip_hold_trace_measures_hold_on_the_agent_channel() -> None:
    records = replay_records(TRACES / "sip_hold.ami")
    assert [r["hold_count"] for r in records] == [1, 1]
    for r in records:
        assert 2.9 < r["hold_s"] < 3.2  # the softphone holds for 3 s
        assert r["ended_by"] == "agent" and r["agent"] == "Mei Chen"
    assert abs(records[0]["wrap_s"] - 5.0) < 0.05  # the next call was offered as wrapuptime ran out


def test_replay_cli_is_byte_identical_twice_and_reads_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "mixed.ami"
    with gzip.open(TRACES / "mixed.ami.gz") as packed:
        plain.write_bytes(packed.read())

    def run(path: Path) -> str:
        cmd = [sys.executable, "-m", "acdbridge", "replay", str(path), "--records"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    first = run(TRACES / "mixed.ami.gz")
    assert first == run(TRACES / "mixed.ami.gz") == run(plain)
    lines = first.splitlines()
    assert len(lines) == 31
    keys = list(json.loads(lines[0]))
    for required in ("uniqueid", "linkedid", "queue", "caller", "outcome", "blocked_reason", "enter_ts",
                     "answer_ts", "end_ts", "wait_s", "ring_s", "talk_s", "hold_s", "hold_count", "wrap_s",
                     "agent", "agent_interface", "ring_attempts", "transfer", "ended_by"):  # fmt: skip
        assert required in keys


def test_replay_of_a_missing_trace_is_a_clear_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "acdbridge", "replay", str(tmp_path / "nope.ami"), "--records"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "no such trace" in res.stderr


def agent_states(trace: Path) -> list[dict[str, object]]:
    states: list[dict[str, object]] = []
    pipeline = Pipeline(on_agent_state=states.append)
    for chunk in read_chunks(trace):
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return states


def test_agent_states_follow_the_softphone_through_ring_talk_hold_and_wrap_up() -> None:
    states = [
        s for s in agent_states(TRACES / "sip_hold.ami") if s["duration_s"] or s["state"] == "logged_out"
    ]
    sequence = [s["state"] for s in states]
    one_call = ["ringing", "talking", "on_hold", "talking", "wrapup"]
    assert sequence[:11] == ["ready", *one_call, *one_call]
    holds = [s for s in states if s["state"] == "on_hold"]
    assert len(holds) == 2 and all(2.9 < float(str(s["duration_s"])) < 3.2 for s in holds)
    for s in states:
        assert float(str(s["end_ts"])) >= float(str(s["start_ts"]))


def test_agent_pauses_carry_their_reason_and_time() -> None:
    paused = [s for s in agent_states(TRACES / "edge.ami") if s["state"] == "paused"]
    assert [(s["reason"], round(float(str(s["duration_s"])))) for s in paused] == [("break", 14), ("ACW", 5)]


def _sip_hold_messages() -> list[AmiMessage]:
    parser = FrameParser()
    return [m for chunk in read_chunks(TRACES / "sip_hold.ami") for m in parser.feed(chunk)]


def test_a_quiet_spell_still_ends_the_wrap_up_when_the_clock_advances() -> None:
    msgs = _sip_hold_messages()
    last_complete = max(i for i, m in enumerate(msgs) if m.name == "AgentComplete")
    out: list[dict[str, object]] = []
    pipeline = Pipeline(on_visit=out.append)
    for m in msgs[: last_complete + 1]:  # nothing after the call ends: no logout, no next call
        pipeline.feed(m)
    assert len(out) == 1  # the second visit waits out its wrap-up
    pipeline.advance(float(msgs[last_complete].get("Timestamp")) + 60)
    assert len(out) == 2 and out[1]["wrap_s"] == 5.0  # the queue's wrapuptime, read by GetConfig


def test_agent_complete_after_the_agent_left_the_queue_has_no_wrap_up() -> None:
    msgs = _sip_hold_messages()
    last_complete = max(i for i, m in enumerate(msgs) if m.name == "AgentComplete")
    removed = next(i for i, m in enumerate(msgs) if m.name == "QueueMemberRemoved" and i > last_complete)
    reordered = [
        *msgs[:last_complete],
        msgs[removed],
        msgs[last_complete],
        *msgs[last_complete + 1 : removed],
    ]
    out: list[dict[str, object]] = []
    pipeline = Pipeline(on_visit=out.append)
    for m in reordered:
        pipeline.feed(m)
    assert len(out) == 2 and out[1]["wrap_s"] == 0.0
