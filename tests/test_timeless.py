"""Streams without Timestamp and without receive time (Asterisk's default `timestampevents = no`,
captured by a tool that kept no receive times): the lab's recorded traces with every Timestamp
header stripped, replayed as plain captures, give the same visits with the durations the events
carry themselves (HoldTime, TalkTime, RingTime: whole seconds, so within 1 s), on a clock that
starts at 0.0 (core/timeless.py), and the missing Timestamp is said once."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import pytest

from acdbridge.core.pipeline import Pipeline
from acdbridge.core.values import PROBLEM_KINDS
from acdbridge.lab import queuelog
from acdbridge.replay import read_chunks, replay_kpis, replay_records
from tests.truth import compare, truth_visits

TRACES = Path(__file__).parent / "fixtures" / "traces"
NAMES = ["smoke.ami", "edge.ami", "sip_hold.ami", "mixed.ami.gz", "callflow.ami"]
Record = dict[str, Any]


def stripped(name: str, tmp_path: Path) -> Path:
    """The trace as a plain capture of a PBX without timestampevents."""
    raw = (TRACES / name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    bare = re.sub(rb"Timestamp: [^\r]*\r\n", b"", raw)
    assert b"Timestamp:" not in bare and len(bare) < len(raw)
    path = tmp_path / name.removesuffix(".gz")
    path.write_bytes(bare)
    return path


def pairs(original: list[Record], timeless: list[Record]) -> list[tuple[Record, Record]]:
    by_key: dict[tuple[str, str], list[Record]] = {}
    for r in timeless:
        by_key.setdefault((r["uniqueid"], r["queue"]), []).append(r)
    out = [(r, by_key[(r["uniqueid"], r["queue"])].pop(0)) for r in original]
    assert not any(by_key.values()), "visits only the timeless replay has"
    return out


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1.0  # HoldTime, TalkTime and AgentConnect's RingTime are whole seconds


@pytest.mark.parametrize("name", NAMES)
def test_durations_come_from_the_events_and_the_problem_is_said_once(name: str, tmp_path: Path) -> None:
    said: list[str] = []
    timeless = replay_records(stripped(name, tmp_path), on_problem=said.append)
    original_said: list[str] = []
    original = replay_records(TRACES / name, on_problem=original_said.append)
    assert [line for line in said if line.startswith("timestamp_missing")] == said and len(said) == 1
    assert "no Timestamp and no receive time" in said[0] and "HoldTime/TalkTime/RingTime" in said[0]
    assert not any(line.startswith("timestamp_missing") for line in original_said)
    assert len(timeless) == len(original)
    for r, t in pairs(original, timeless):
        assert t["time_source"] == "durations" and r["time_source"] != "durations"
        same = ("outcome", "blocked_reason", "agent", "agent_interface", "ended_by", "hold_count", "transfer")
        assert {k: t[k] for k in same} == {k: r[k] for k in same}
        assert [a["result"] for a in t["ring_attempts"]] == [a["result"] for a in r["ring_attempts"]]
        if r["outcome"] != "exit_key":  # a key press carries no wait (QueueCallerLeave has no HoldTime)
            assert close(t["wait_s"], r["wait_s"]), (r, t)
        if r["outcome"] == "answered":  # TalkTime holds the hold: hold_s is not measured
            assert t["hold_s"] is None and close(t["talk_s"], r["talk_s"] + r["hold_s"]), (r, t)
            assert t["enter_ts"] <= t["answer_ts"] <= t["end_ts"]
        else:
            assert t["hold_s"] == 0.0 and t["talk_s"] == 0.0
        if all(a["result"] in ("answered", "no_answer") for a in r["ring_attempts"]):
            assert close(t["ring_s"], r["ring_s"]), (r, t)  # a ring the caller hung up on is not measured
        if t["wrap_s"] is not None:  # null: a pause, logout or disposition cut it short, when is unknown
            assert close(t["wrap_s"], r["wrap_s"]), (r, t)


@pytest.mark.parametrize("name", NAMES)
def test_every_visit_still_matches_queue_log(name: str, tmp_path: Path) -> None:
    timeless = replay_records(stripped(name, tmp_path))
    truth = truth_visits(queuelog.read(TRACES / (name.removesuffix(".gz") + ".queue_log")))
    differences = compare(truth, timeless)
    if name == "edge.ami":  # the one key-press exit: its wait is in no AMI event
        assert len(differences) == 1 and "wait 0.0 vs queue_log 2.0" in differences[0]
    else:
        assert differences == []


def test_the_clock_starts_at_zero_keeps_the_order_of_the_joins_and_runs_behind_real_time(
    tmp_path: Path,
) -> None:
    timeless = replay_records(stripped("mixed.ami.gz", tmp_path))
    original = replay_records(TRACES / "mixed.ami.gz")
    matched = sorted(pairs(original, timeless), key=lambda p: p[0]["enter_ts"])
    enters = [t["enter_ts"] for _, t in matched]
    assert enters[0] == 0.0 and enters == sorted(enters)  # joins at the clock so far, in order
    span = max(r["end_ts"] for r in original) - min(r["enter_ts"] for r in original)
    assert 0.5 * span < max(t["end_ts"] for t in timeless) <= span  # idle time is not seen
    keys = {(t["uniqueid"], t["queue"], t["enter_ts"]) for t in timeless}
    assert len(keys) == len(timeless)  # the store's key stays unique
    for t in timeless:
        for a in t["ring_attempts"]:
            assert t["enter_ts"] <= a["start_ts"] <= a["end_ts"]


@pytest.mark.parametrize("name", ["mixed.ami.gz", "smoke.ami", "sip_hold.ami"])
def test_kpis_over_the_whole_capture_come_out_right(name: str, tmp_path: Path) -> None:
    timeless, original = replay_kpis(stripped(name, tmp_path)), replay_kpis(TRACES / name)
    assert timeless["queues"].keys() == original["queues"].keys()
    for queue, want in original["queues"].items():
        got = timeless["queues"][queue]
        counts = ("offered", "answered", "abandoned", "short_abandoned", "timeout", "blocked",
                  "answered_within_sl", "service_level", "transfers")  # fmt: skip
        assert {k: got[k] for k in counts} == {k: want[k] for k in counts}, queue
        for k in ("asa_s", "avg_wait_s", "max_wait_s", "aht_s"):
            assert (got[k] is None) == (want[k] is None) and close(got[k] or 0.0, want[k] or 0.0), (queue, k)
        assert got["avg_hold_s"] is None  # not measured, not 0
    for agent, want in original["agents"].items():
        assert timeless["agents"][agent]["answered"] == want["answered"]


def test_a_stream_with_receive_times_is_not_timeless() -> None:
    """A journal of a PBX without timestampevents has each read's receive time: those are used."""
    said: list[str] = []
    out: list[Record] = []
    pipeline = Pipeline(on_visit=out.append, on_problem=said.append)
    bare = re.sub(rb"Timestamp: [^\r]*\r\n", b"", b"".join(read_chunks(TRACES / "smoke.ami")))
    pipeline.feed_bytes(bare, received_at=1_795_395_500.0)
    pipeline.finish()
    assert out and all(r["time_source"] == "receive" and r["enter_ts"] == 1_795_395_500.0 for r in out)
    assert "timestamp_missing" not in pipeline.problem_counts and said == []


def test_the_problem_is_a_counted_kind() -> None:
    assert "timestamp_missing" in PROBLEM_KINDS
    pipeline = Pipeline()
    pipeline.feed_bytes(re.sub(rb"Timestamp: [^\r]*\r\n", b"", (TRACES / "smoke.ami").read_bytes()))
    assert pipeline.problem_counts["timestamp_missing"] > 1  # every such event, said once
    assert pipeline.calls.now > 0.0  # the durations moved the clock
