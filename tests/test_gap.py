"""A gap in the AMI stream (a link cut or a dead daemon), backfilled through the pipeline
(core/gap.py): the recorded mixed trace with a window of its events removed, a new connection
and the resync Asterisk would answer at the window's end, then the window's queue_log lines.

Checked against the whole trace's replay: every visit that ended in the gap comes out once, as
queue_log has it (whole seconds), with the tracker's ids where it knew the caller; every other
visit exactly as without a gap; a journal with the lines replays to the same records; without
the lines the vanished callers end at the resync, as before the backfill existed."""

from __future__ import annotations

import gzip
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from acdbridge.adapters.journal import CONNECT, QUEUE_LOG, Journal
from acdbridge.adapters.queuelog import read_gap, start_offset
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.qlines import MARGIN_S, excerpt, lines_of
from acdbridge.core.visit import RingAttempt, Visit
from acdbridge.replay import replay_records

TRACES = Path(__file__).parent / "fixtures" / "traces"
SEP = b"\r\n\r\n"
BANNER = b"Asterisk Call Manager/9.0.0\r\n"
GAP = (1795395530.4, 1795395560.0)  # 22 visits end in it; calls in talk and waiting across it
Record = dict[str, Any]


@cache
def frames() -> list[tuple[float, bytes]]:
    """The trace's frames with their Timestamp (0 for responses without one)."""
    raw = gzip.decompress((TRACES / "mixed.ami.gz").read_bytes())
    out = []
    for frame in raw.split(SEP)[1:]:  # the first piece is the banner and the first frame's head
        ts = next((float(h[11:]) for h in frame.split(b"\r\n") if h.startswith(b"Timestamp: ")), 0.0)
        out.append((ts, frame + SEP))
    return out


def queue_log() -> list[str]:
    return (TRACES / "mixed.ami.queue_log").read_text(encoding="utf-8").splitlines()


def resync(alive: set[str], at: float, waiting: tuple[dict[str, str], ...] = ()) -> bytes:
    """What the daemon's resync actions bring back: QueueStatus's waiting callers, then the
    channels alive (CoreShowChannels)."""
    entries = b"".join(
        (
            f"Event: QueueEntry\r\nQueue: {j['Queue']}\r\nUniqueid: {j['Uniqueid']}\r\n"
            f"Linkedid: {j['Linkedid']}\r\nCallerIDNum: {j['CallerIDNum']}\r\n"
            f"CallerIDName: {j['CallerIDName']}\r\n"
            f"Wait: {int(at - float(j['Timestamp']))}\r\nTimestamp: {at:.6f}\r\n\r\n"
        ).encode()
        for j in waiting
    )
    listed = b"".join(
        f"Event: CoreShowChannel\r\nUniqueid: {u}\r\nTimestamp: {at:.6f}\r\n\r\n".encode()
        for u in sorted(alive)
    )
    return entries + listed + f"Event: CoreShowChannelsComplete\r\nTimestamp: {at:.6f}\r\n\r\n".encode()


def cut_stream(since: float, until: float) -> tuple[bytes, bytes]:
    """(before the gap, the new connection from its banner on): the events in the gap are lost."""
    before = [f for ts, f in frames() if ts <= since]
    after = [f for ts, f in frames() if ts >= until]
    hung, seen, joined = set(), set(), {}
    for ts, f in frames():
        if ts < until:
            head = dict(h.split(": ", 1) for h in f.decode().split("\r\n") if ": " in h)
            if uid := head.get("Uniqueid"):
                seen.add(uid)
                event = head.get("Event")
                if event == "Hangup":
                    hung.add(uid)
                elif event == "QueueCallerJoin":
                    joined[uid] = head
                elif event in ("QueueCallerLeave", "QueueCallerAbandon"):
                    joined.pop(uid, None)
    waiting = tuple(j for u, j in joined.items() if u not in hung)
    return b"".join(before), BANNER + resync(seen - hung, until, waiting) + b"".join(after)


def through_gap(lines: list[str] | None, since: float = GAP[0], until: float = GAP[1]) -> list[Record]:
    out: list[Record] = []
    pipeline = Pipeline(on_visit=out.append)
    first, second = cut_stream(since, until)
    pipeline.feed_bytes(first)
    pipeline.parser = pipeline.new_parser()
    pipeline.feed_bytes(second)  # the resync closes the gap; the live events go on meanwhile
    assert pipeline.gap.due() == (pipeline.gap.gap.since, until)  # type: ignore[union-attr]
    pipeline.backfill(lines)
    pipeline.finish()
    return out


def by_key(records: list[Record]) -> dict[tuple[str, str], Record]:
    out = {(r["uniqueid"], r["queue"]): r for r in records}
    assert len(out) == len(records), "a visit twice"
    return out


@cache
def whole() -> dict[tuple[str, str], Record]:
    return by_key(replay_records(TRACES / "mixed.ami.gz"))


def ended_in_gap(r: Record) -> bool:
    return bool(GAP[0] < r["end_ts"] < GAP[1])


def test_visits_that_ended_in_the_gap_come_from_queue_log_once() -> None:
    lines = [x for x in queue_log() if int(x.split("|")[0]) >= GAP[0] - MARGIN_S]
    got = by_key(through_gap(lines))
    gap_keys = {k for k, r in whole().items() if ended_in_gap(r) and r["outcome"] != "blocked"}
    assert len(gap_keys) >= 10
    for k in gap_keys:
        b, r = got[k], whole()[k]
        assert b["time_source"] == "queue_log", k
        assert (b["outcome"], b["agent"]) == (r["outcome"], r["agent"]), k
        assert abs(b["wait_s"] - r["wait_s"]) <= 1.0 and abs(b["end_ts"] - r["end_ts"]) <= 1.0, k
        assert abs(b["talk_s"] - (r["talk_s"] + r["hold_s"])) <= 1.0, k  # queue_log's talk holds hold
    known_before = [k for k in gap_keys if got[k]["linkedid"] is not None]
    assert known_before, "callers the tracker saw join keep its linkedid"
    assert all(got[k]["linkedid"] == whole()[k]["linkedid"] for k in known_before)
    # everything else as without a gap: before it exactly, across it with the tracker's times
    for k, r in whole().items():
        if r["end_ts"] <= GAP[0] or r["enter_ts"] >= GAP[1]:
            assert got[k] == r, k
    missing = whole().keys() - got.keys()
    assert all(whole()[k]["outcome"] == "blocked" for k in missing), missing  # no queue_log line


def test_without_queue_log_the_vanished_callers_end_at_the_resync() -> None:
    got = by_key(through_gap(None))
    vanished = [r for r in got.values() if r["end_ts"] == GAP[1]]
    assert vanished and all(r["time_source"] != "queue_log" for r in vanished)
    assert not any(r["time_source"] == "queue_log" for r in got.values())


def test_the_first_connection_opens_no_gap() -> None:
    pipeline = Pipeline()
    pipeline.feed_bytes(BANNER + resync(set(), 1795395500.0))
    assert pipeline.gap.gap is None and pipeline.gap.due() is None


def test_a_journal_with_the_lines_replays_to_the_same_records(tmp_path: Path) -> None:
    lines = excerpt([x for x in queue_log() if int(x.split("|")[0]) >= GAP[0] - MARGIN_S], GAP[0])
    live = through_gap(lines)
    first, second = cut_stream(*GAP)
    # receive time 0: as through_gap() feeds (a trace's events far apart, one read each part)
    journal = Journal(tmp_path / "j", fsync_interval_s=0.01)
    journal.open()
    journal.append(b"", 0.0, CONNECT)
    journal.append(BANNER + first, 0.0)
    journal.append(b"", 0.0, CONNECT)
    journal.append(second, 0.0)
    journal.append("".join(f"{t}\n" for t in lines).encode(), 0.0, QUEUE_LOG)
    journal.close()
    assert lines_of("".join(f"{t}\n" for t in lines).encode()) == lines
    replayed = replay_records(tmp_path / "j")
    assert by_key(replayed) == by_key(live)


def test_a_checkpoint_mid_gap_keeps_the_vanished_callers() -> None:
    pipeline = Pipeline()
    first, second = cut_stream(*GAP)
    pipeline.feed_bytes(first)
    pipeline.parser = pipeline.new_parser()
    pipeline.feed_bytes(second)
    snap = pipeline.snapshot()
    assert snap["gap"] is not None and snap["gap"]["vanished"]
    out: list[Record] = []
    fresh = Pipeline(on_visit=out.append)
    fresh.restore(snap)
    assert fresh.gap.due() == (snap["gap"]["since"], GAP[1])
    fresh.backfill(queue_log())
    assert {(r["uniqueid"], r["queue"]) for r in out} >= {
        (v["uniqueid"], v["queue"]) for v in snap["gap"]["vanished"]
    }


@pytest.mark.parametrize("lines_total", [10, 50_000])
def test_read_gap_finds_the_start_by_bisection(tmp_path: Path, lines_total: int) -> None:
    path = tmp_path / "queue_log"
    t0 = 1795000000
    body = [f"{t0 + i}|call{i}|water|NONE|ENTERQUEUE||55{i}|1" for i in range(lines_total)]
    path.write_text("\n".join(body) + "\n")
    since = t0 + lines_total - 5 + MARGIN_S
    with path.open("rb") as f:
        off = start_offset(f, path.stat().st_size, since - MARGIN_S)
        f.seek(off)
        assert f.read().count(b"\n") < lines_total // 2 + 20 or lines_total == 10
    lines, cut = read_gap(path, since - MARGIN_S + 2)
    assert cut == 0 and lines == body[-3:]
    assert math.isfinite(since)


def test_rings_in_the_gap_join_a_caller_tracked_across_it() -> None:
    pipeline = Pipeline()
    v = Visit("c1", "c1", "water", "555", "", 1000.2, "event")
    v.ring_attempts = [
        RingAttempt("Ana", "PJSIP/1", 1000.5, 1010.5, "no_answer"),  # seen before the gap
        RingAttempt("Bob", "PJSIP/2", 1011.0),  # still ringing at the cut
    ]
    pipeline.calls.active["c1"] = v
    pipeline.gap.connected(1012.0)
    pipeline.gap.resynced([], 1060.0, {"c1"})
    lines = [
        "1000|c1|water|NONE|ENTERQUEUE||555|1",
        "1010|c1|water|Ana|RINGNOANSWER|10000",  # the one the tracker has
        "1026|c1|water|Bob|RINGNOANSWER|15000",  # Bob's ring, open at the cut, ended in the gap
        "1040|c1|water|Cleo|RINGNOANSWER|12000",  # never seen on AMI
    ]
    pipeline.backfill(lines)
    got = [(a.agent, a.result, a.end_ts) for a in v.ring_attempts]
    assert got == [("Ana", "no_answer", 1010.5), ("Bob", "no_answer", 1026.0), ("Cleo", "no_answer", 1040.0)]
    assert pipeline.gap.gap is None  # settled


def test_a_ring_ended_in_the_second_the_gap_began_counts_once() -> None:
    # seen on the lab: a ring begun in one gap ended 0.2 s after the next cut; queue_log logs it
    # at the whole second before the cut's time
    pipeline = Pipeline()
    v = Visit("c1", "c1", "water", "555", "", 1000.2, "event")
    v.ring_attempts = [RingAttempt("Ana", "PJSIP/1", 1001.0, 1011.9, "no_answer")]  # seen end
    pipeline.calls.active["c1"] = v
    pipeline.gap.connected(1011.95)
    pipeline.gap.resynced([], 1020.0, {"c1"})
    lines = [
        "1000|c1|water|NONE|ENTERQUEUE||555|1",
        "1011|c1|water|Ana|RINGNOANSWER|10000",  # the one the tracker has (1011.9)
        "1011|c1|water|Pedro|RINGNOANSWER|10000",  # begun unseen, ended at 1011.98, after the cut
    ]
    pipeline.backfill(lines)
    got = [(a.agent, a.end_ts) for a in v.ring_attempts]
    assert got == [("Ana", 1011.9), ("Pedro", 1011.0)]


def test_a_ring_begun_in_a_gap_and_ended_after_it_counts() -> None:
    pipeline = Pipeline()
    head = "Uniqueid: c2\r\nLinkedid: c2\r\nQueue: water\r\nCallerIDNum: 555\r\nCallerIDName: X\r\n"
    pipeline.feed_bytes(
        f"Event: QueueCallerJoin\r\n{head}Position: 1\r\nCount: 1\r\nTimestamp: 2000.0\r\n\r\n"
        f"Event: AgentRingNoAnswer\r\n{head}Interface: PJSIP/9\r\nMemberName: Pedro\r\n"
        "RingTime: 10000\r\nTimestamp: 2030.5\r\n\r\n".encode()
    )  # its AgentCalled (at 2020.5) was lost
    (a,) = pipeline.calls.active["c2"].ring_attempts
    assert (a.agent, a.interface, a.start_ts, a.end_ts, a.result) == (
        "Pedro",
        "PJSIP/9",
        2020.5,
        2030.5,
        "no_answer",
    )


def test_a_blind_transfer_whose_target_join_came_first_keeps_it() -> None:
    # seen on the lab: app_queue put the caller in the next queue before the BlindTransfer event
    out: list[Record] = []
    pipeline = Pipeline(wrapup_s={"water": 5.0}, on_visit=out.append)
    head = "Uniqueid: c3\r\nLinkedid: c3\r\nCallerIDNum: 555\r\nCallerIDName: X\r\n"
    agent = "Interface: PJSIP/7\r\nMemberName: Ana\r\n"
    frames_ = [
        f"Event: QueueCallerJoin\r\n{head}Queue: water\r\nTimestamp: 3000.0",
        f"Event: AgentCalled\r\n{head}Queue: water\r\n{agent}DestUniqueid: a1\r\nTimestamp: 3000.1",
        f"Event: QueueCallerLeave\r\n{head}Queue: water\r\nTimestamp: 3001.0",
        f"Event: AgentConnect\r\n{head}Queue: water\r\n{agent}DestUniqueid: a1\r\n"
        "HoldTime: 1\r\nTimestamp: 3001.0",
        f"Event: QueueCallerJoin\r\n{head}Queue: broadband\r\nTimestamp: 3013.0",
        "Event: BlindTransfer\r\nResult: Success\r\nTransfererUniqueid: a1\r\nTransfereeUniqueid: c3\r\n"
        "Extension: 6100\r\nContext: inbound\r\nTimestamp: 3013.0",
        f"Event: AgentComplete\r\n{head}Queue: water\r\n{agent}Reason: transfer\r\n"
        "TalkTime: 12\r\nTimestamp: 3013.0",
    ]
    pipeline.feed_bytes("".join(f + "\r\n\r\n" for f in frames_).encode())
    pipeline.finish()
    (water,) = [r for r in out if r["queue"] == "water"]
    assert water["transfer"] == {"kind": "blind", "to": "6100@inbound"} and water["ended_by"] == "transfer"
    assert pipeline.calls.active["c3"].queue == "broadband"


def talking_across_a_cut() -> tuple[Pipeline, list[Record]]:
    """Caller c4 in talk with Ana in water when the link went; the new connection's banner."""
    out: list[Record] = []
    pipeline = Pipeline(wrapup_s={"water": 5.0, "broadband": 5.0}, on_visit=out.append)
    head = "Uniqueid: c4\r\nLinkedid: c4\r\nCallerIDNum: 555\r\nCallerIDName: X\r\nQueue: water\r\n"
    agent = "Interface: PJSIP/7\r\nMemberName: Ana\r\nDestUniqueid: a4\r\n"
    frames_ = [
        f"Event: QueueCallerJoin\r\n{head}Timestamp: 4000.0",
        f"Event: AgentCalled\r\n{head}{agent}Timestamp: 4000.1",
        f"Event: QueueCallerLeave\r\n{head}Timestamp: 4002.0",
        f"Event: AgentConnect\r\n{head}{agent}HoldTime: 2\r\nTimestamp: 4002.0",
    ]
    pipeline.feed_bytes("".join(f + "\r\n\r\n" for f in frames_).encode())
    pipeline.new_connection()
    pipeline.feed_bytes(BANNER)
    return pipeline, out


TRANSFERRED = ["4000|c4|water|NONE|ENTERQUEUE||555|1", "4002|c4|water|Ana|CONNECT|2|a4|1",
               "4014|c4|water|Ana|BLINDTRANSFER|6100|inbound|2|12|1",
               "4014|c4|broadband|NONE|ENTERQUEUE||555|1"]  # fmt: skip


def test_a_caller_transferred_in_the_gap_and_waiting_at_the_resync_is_in_the_new_queue() -> None:
    pipeline, out = talking_across_a_cut()
    entry = {"Queue": "broadband", "Uniqueid": "c4", "Linkedid": "c4", "CallerIDNum": "555",
             "CallerIDName": "X", "Timestamp": "4014.0"}  # fmt: skip
    pipeline.feed_bytes(resync({"c4"}, 4020.0, (entry,)))  # alive, waiting in broadband
    assert pipeline.calls.active["c4"].queue == "broadband" and out == []
    assert pipeline.backfill(TRANSFERRED) == 1
    (water,) = out
    assert (water["queue"], water["time_source"], water["end_ts"]) == ("water", "queue_log", 4014.0)
    assert water["transfer"] == {"kind": "blind", "to": "6100@inbound"} and water["agent"] == "Ana"
    assert pipeline.calls.active["c4"].enter_ts == 4014.0  # still tracked, in its new queue


def test_a_call_queue_log_ended_in_the_gap_is_not_left_in_talk_though_its_caller_lives() -> None:
    # the caller went on to the survey (or was answered in the next queue): alive at the resync,
    # listed waiting nowhere, and queue_log has its end
    pipeline, out = talking_across_a_cut()
    pipeline.feed_bytes(resync({"c4"}, 4020.0))
    assert pipeline.calls.active["c4"].state == "talking"
    lines = [*TRANSFERRED[:2], "4010|c4|water|Ana|COMPLETEAGENT|2|8|1"]
    assert pipeline.backfill(lines) == 1
    (water,) = out
    assert (water["outcome"], water["end_ts"], water["talk_s"], water["linkedid"]) == (
        "answered",
        4010.0,
        8.0,
        "c4",
    )
    assert "c4" not in pipeline.calls.active and not pipeline.calls.by_agent_channel


def test_a_visit_reported_just_before_a_checkpoint_is_not_rebuilt_after_a_restart() -> None:
    # seen on the lab: a caller left (EXITEMPTY) at 727.65, the checkpoint after it, a SIGKILL;
    # the gap starts at that event's second, so queue_log's line of it (727) falls inside
    out: list[Record] = []
    first = Pipeline(on_visit=out.append)
    head = "Uniqueid: c5\r\nLinkedid: c5\r\nCallerIDNum: 555\r\nCallerIDName: X\r\nQueue: water\r\n"
    first.feed_bytes(
        f"Event: QueueCallerJoin\r\n{head}Timestamp: 722.6\r\n\r\n"
        f"Event: QueueCallerAbandon\r\n{head}HoldTime: 5\r\nTimestamp: 727.65\r\n\r\n"
        f"Event: VarSet\r\n{head}Variable: QUEUESTATUS\r\nValue: LEAVEEMPTY\r\n"
        "Timestamp: 727.65\r\n\r\n".encode()
    )
    assert [r["outcome"] for r in out] == ["exit_empty"]
    again: list[Record] = []
    restarted = Pipeline(on_visit=again.append)
    restarted.restore(json.loads(json.dumps(first.snapshot())))
    restarted.feed_bytes(BANNER + resync(set(), 732.3))
    lines = ["722|c5|water|NONE|ENTERQUEUE||555|1", "727|c5|water|NONE|EXITEMPTY|1|1|5"]
    assert restarted.backfill(lines) == 0 and again == []


def test_a_caller_answered_in_the_gap_and_still_talking_is_not_left_waiting() -> None:
    # seen on the lab: an attended transfer's consult leg, answered while the daemon was dead;
    # Asterisk sends no AgentComplete for it, so only its Hangup ends the talk afterwards
    out: list[Record] = []
    pipeline = Pipeline(wrapup_s={"broadband": 0.0}, on_visit=out.append)
    head = "Uniqueid: c6\r\nLinkedid: c6\r\nCallerIDNum: 555\r\nCallerIDName: X\r\nQueue: broadband\r\n"
    pipeline.feed_bytes(f"Event: QueueCallerJoin\r\n{head}Timestamp: 913.2\r\n\r\n".encode())
    pipeline.new_connection()
    pipeline.feed_bytes(BANNER + resync({"c6", "a6"}, 919.0))
    lines = ["913|c6|broadband|NONE|ENTERQUEUE||555|1", "917|c6|broadband|Wang Fang|CONNECT|4|a6|1"]
    pipeline.backfill(lines)
    v = pipeline.calls.active["c6"]
    assert (v.state, v.agent, v.answer_ts, v.agent_uniqueid) == ("talking", "Wang Fang", 917.0, "a6")
    pipeline.feed_bytes(f"Event: Hangup\r\n{head}Timestamp: 929.1\r\n\r\n".encode())
    pipeline.finish()  # the Hangup's grace for an AgentComplete runs out
    (r,) = out
    assert (r["outcome"], r["agent"], r["wait_s"]) == ("answered", "Wang Fang", 3.8)
    assert abs(r["talk_s"] - 12.1) < 1e-6


def test_a_caller_who_joined_and_was_answered_in_the_gap_is_tracked_to_its_hangup() -> None:
    # seen on the lab: ENTERQUEUE and CONNECT in a 30 s outage, the caller still talking at the
    # resync; its AgentComplete came after the caller's channel was gone, naming no caller
    out: list[Record] = []
    pipeline = Pipeline(on_visit=out.append)
    pipeline.gap.connected(1000.0)
    pipeline.gap.resynced([], 1035.0, {"c7", "a7"})
    pipeline.backfill([
        "1017|c7|broadband|NONE|ENTERQUEUE||555000021|3",
        "1032|c7|broadband|Zhou Min|CONNECT|15|a7|1",
        "1033|c9|broadband|NONE|ENTERQUEUE||555000099|4",  # joined, answered, gone before the resync
        "1034|c9|broadband|Zhou Min|CONNECT|1|a9|1",
    ])  # fmt: skip
    v = pipeline.calls.active["c7"]
    assert (v.state, v.enter_ts, v.answer_ts, v.agent, v.caller, v.time_source) == (
        "talking",
        1017.0,
        1032.0,
        "Zhou Min",
        "555000021",
        "queue_log",
    )
    assert "c9" not in pipeline.calls.active  # not alive at the resync: nothing to track
    pipeline.feed_bytes(
        b"Event: Hangup\r\nUniqueid: c7\r\nChannel: Local/555000021@x-1;1\r\nTimestamp: 1038.2\r\n\r\n"
        b"Event: AgentComplete\r\nQueue: broadband\r\nMemberName: Zhou Min\r\nInterface: Local/9006@a/n\r\n"
        b"HoldTime: 15\r\nTalkTime: 6\r\nReason: caller\r\nTimestamp: 1038.3\r\n\r\n"
    )
    pipeline.advance(1100.0)
    pipeline.finish()
    got = [(r["uniqueid"], r["outcome"], r["enter_ts"], r["agent"]) for r in out]
    assert got == [("c7", "answered", 1017.0, "Zhou Min")]
