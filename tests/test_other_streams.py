"""Streams not like the lab's: a capture begun mid-call (joins never seen), an attended transfer
whose consult call went to a phone, a caller blocked at a queue no join ever named, a PBX without
timestampevents captured without receive times (core/timeless.py; the lab's traces stripped of
their Timestamps are in tests/test_timeless.py). Each fact is
from Asterisk 22's manager events (apps/app_queue.c, main/manager_bridges.c, the dialplan's
Newexten); the frames are written as Asterisk sends them."""

from __future__ import annotations

from typing import Any

from acdbridge.core.ami import FrameParser
from acdbridge.core.pipeline import Pipeline

Record = dict[str, Any]
CALLER = "Uniqueid: c1\r\nLinkedid: c1\r\nCallerIDNum: 555\r\nCallerIDName: X\r\nQueue: water\r\n"
AGENT = "Interface: PJSIP/7\r\nMemberName: Ana\r\nDestUniqueid: a1\r\n"


def run(*frames: str, twice: bool = False) -> list[Record]:
    out: list[Record] = []
    pipeline = Pipeline(wrapup_s={"water": 0.0}, on_visit=out.append)
    data = "".join(f + "\r\n\r\n" for f in frames).encode()
    for _ in range(2 if twice else 1):
        pipeline.feed_bytes(data)
    pipeline.finish()
    return out


def test_an_abandon_whose_join_was_never_seen_is_a_visit_from_its_holdtime() -> None:
    frames = (
        f"Event: QueueCallerAbandon\r\n{CALLER}Position: 1\r\nOriginalPosition: 1\r\nHoldTime: 42\r\n"
        "Timestamp: 1000.5",
        f"Event: Hangup\r\n{CALLER}Cause: 16\r\nTimestamp: 1000.6",
    )
    (r,) = run(*frames)
    assert (r["outcome"], r["enter_ts"], r["wait_s"], r["time_source"]) == (
        "abandoned",
        958.5,
        42.0,
        "holdtime",
    )
    assert len(run(*frames, twice=True)) == 1  # the same stream again adds nothing


def test_an_answer_whose_join_was_never_seen_is_a_visit_from_its_holdtime() -> None:
    frames = (
        f"Event: AgentConnect\r\n{CALLER}{AGENT}HoldTime: 7\r\nRingTime: 2\r\nTimestamp: 2007.0",
        f"Event: AgentComplete\r\n{CALLER}{AGENT}HoldTime: 7\r\nTalkTime: 30\r\nReason: agent\r\n"
        "Timestamp: 2037.0",
    )
    (r,) = run(*frames)
    assert (r["outcome"], r["agent"], r["enter_ts"], r["answer_ts"]) == ("answered", "Ana", 2000.0, 2007.0)
    assert (r["wait_s"], r["talk_s"], r["ended_by"]) == (7.0, 30.0, "agent")
    assert len(run(*frames, twice=True)) == 1


def test_an_attended_transfer_to_a_phone_names_the_number_dialled() -> None:
    frames = (
        f"Event: QueueCallerJoin\r\n{CALLER}Position: 1\r\nCount: 1\r\nTimestamp: 3000.0",
        f"Event: AgentConnect\r\n{CALLER}{AGENT}HoldTime: 1\r\nTimestamp: 3001.0",
        "Event: AttendedTransfer\r\nResult: Success\r\nOrigTransfererUniqueid: a1\r\n"
        "TransfereeUniqueid: c1\r\n"
        "SecondTransfererChannel: PJSIP/7-00000009\r\nSecondTransfererExten: 2001\r\n"
        "SecondTransfererContext: agents\r\nTransferTargetChannel: PJSIP/2001-0000000a\r\n"
        "TransferTargetExten: \r\nTransferTargetContext: \r\nDestType: Bridge\r\nTimestamp: 3010.0",
        f"Event: AgentComplete\r\n{CALLER}{AGENT}HoldTime: 1\r\nTalkTime: 9\r\nReason: transfer\r\n"
        "Timestamp: 3010.0",
    )
    (r,) = run(*frames)
    assert r["transfer"] == {"kind": "attended", "to": "2001@agents"}
    no_exten = frames[2].replace("SecondTransfererExten: 2001", "SecondTransfererExten: ")
    (r,) = run(frames[0], frames[1], no_exten, frames[3])
    assert r["transfer"] == {"kind": "attended", "to": "2001@agents"}  # from the target channel's name


def test_a_caller_blocked_at_a_queue_no_join_named_gets_it_from_the_dialplan() -> None:
    head = "Channel: PJSIP/trunk-00000001\r\nUniqueid: c9\r\nLinkedid: c9\r\nCallerIDNum: 555\r\n"
    frames = (
        f"Event: Newexten\r\n{head}Context: inbound\r\nExten: 6900\r\nPriority: 3\r\n"
        "Application: Queue\r\nAppData: night,t,,,60\r\nTimestamp: 4000.0",
        f"Event: VarSet\r\n{head}Context: inbound\r\nExten: 6900\r\nVariable: QUEUESTATUS\r\n"
        "Value: JOINEMPTY\r\nTimestamp: 4000.0",
    )
    (r,) = run(*frames)
    assert (r["queue"], r["outcome"], r["blocked_reason"]) == ("night", "blocked", "joinempty")
    (r,) = run(frames[1])
    assert r["queue"] == "unknown"  # nothing named it


def test_the_parser_keeps_only_the_queue_steps_of_the_dialplan() -> None:
    parser = FrameParser()
    kept = parser.feed(
        b"Event: Newexten\r\nUniqueid: c9\r\nApplication: Answer\r\nAppData: \r\n\r\n"
        b"Event: Newexten\r\nUniqueid: c9\r\nApplication: Queue\r\nAppData: night\r\n\r\n"
        b"Event: Newexten\r\nUniqueid: c9\r\nApplication: QueueLog\r\nAppData: x\r\n\r\n"
    )
    assert [m.headers["Application"] for m in kept] == ["Queue"]


# -- a PBX without timestampevents, captured without receive times (core/timeless.py) -----------
def untimed(*frames: str, wrapup_s: dict[str, float] | None = None) -> tuple[list[Record], list[str]]:
    out: list[Record] = []
    said: list[str] = []
    pipeline = Pipeline(wrapup_s=wrapup_s or {"water": 0.0}, on_visit=out.append, on_problem=said.append)
    pipeline.feed_bytes("".join(f + "\r\n\r\n" for f in frames).encode())
    pipeline.finish()
    return out, said


def test_a_capture_without_timestamps_begun_mid_call_lays_the_call_out_back_from_the_clock() -> None:
    out, said = untimed(
        f"Event: AgentComplete\r\n{CALLER}{AGENT}HoldTime: 7\r\nTalkTime: 30\r\nReason: agent",
        "Event: QueueCallerJoin\r\nUniqueid: c2\r\nQueue: water\r\nPosition: 1\r\nCount: 1",
        "Event: QueueCallerAbandon\r\nUniqueid: c2\r\nQueue: water\r\nHoldTime: 12",
        "Event: Hangup\r\nUniqueid: c2\r\nCause: 16",
    )
    mid_call, abandoned = sorted(out, key=lambda r: r["uniqueid"])
    assert (mid_call["enter_ts"], mid_call["answer_ts"], mid_call["end_ts"]) == (-37.0, -30.0, 0.0)
    assert (mid_call["wait_s"], mid_call["talk_s"], mid_call["hold_s"]) == (7.0, 30.0, None)
    assert (abandoned["enter_ts"], abandoned["end_ts"], abandoned["wait_s"]) == (0.0, 12.0, 12.0)
    assert {r["time_source"] for r in out} == {"durations"}
    assert len(said) == 1 and said[0].startswith("timestamp_missing")


def test_without_timestamps_rings_come_from_ring_time_and_the_next_offer_ends_the_wrap_up() -> None:
    join = f"Event: QueueCallerJoin\r\n{CALLER}Position: 1\r\nCount: 1"
    called = f"Event: AgentCalled\r\n{CALLER}{AGENT}"
    second = CALLER.replace("c1", "c2").replace("water", "sales")
    out, _ = untimed(
        join,
        called,
        f"Event: AgentRingNoAnswer\r\n{CALLER}{AGENT}RingTime: 15000",
        called,
        f"Event: AgentConnect\r\n{CALLER}{AGENT}HoldTime: 20\r\nRingTime: 3",
        "Event: Hold\r\nUniqueid: a1",
        "Event: Unhold\r\nUniqueid: a1",
        f"Event: AgentComplete\r\n{CALLER}{AGENT}HoldTime: 20\r\nTalkTime: 40\r\nReason: caller",
        f"Event: QueueCallerJoin\r\n{second}Position: 1\r\nCount: 1",
        f"Event: AgentCalled\r\n{second}{AGENT}",  # Asterisk rings Ana again once sales' 3 s are up
        wrapup_s={"water": 10.0, "sales": 3.0},
    )
    (r,) = out  # the second caller is still waiting at the end
    assert (r["wait_s"], r["talk_s"], r["hold_s"], r["hold_count"]) == (20.0, 40.0, None, 1)
    assert [(a["start_ts"], a["end_ts"], a["result"]) for a in r["ring_attempts"]] == [
        (0.0, 15.0, "no_answer"),
        (17.0, 20.0, "answered"),
    ]
    assert (r["ring_s"], r["wrap_s"]) == (18.0, 3.0)


def test_without_timestamps_a_wrap_up_cut_short_by_a_pause_has_no_figure() -> None:
    out, _ = untimed(
        f"Event: QueueCallerJoin\r\n{CALLER}Position: 1\r\nCount: 1",
        f"Event: AgentConnect\r\n{CALLER}{AGENT}HoldTime: 2\r\nRingTime: 1",
        f"Event: AgentComplete\r\n{CALLER}{AGENT}HoldTime: 2\r\nTalkTime: 9\r\nReason: agent",
        "Event: QueueMemberPause\r\nQueue: water\r\nInterface: PJSIP/7\r\nPaused: 1\r\nPausedReason: ACW",
        wrapup_s={"water": 30.0},
    )
    (r,) = out
    assert (r["talk_s"], r["wrap_s"]) == (9.0, None)  # when, within its 30 s, is in no event


def test_without_timestamps_a_consult_leg_ends_at_the_talk_time_of_its_callerless_complete() -> None:
    # Asterisk 22's AgentComplete of an attended transfer's consult leg names no caller channel
    out, _ = untimed(
        f"Event: QueueCallerJoin\r\n{CALLER}Position: 1\r\nCount: 1",
        f"Event: AgentConnect\r\n{CALLER}{AGENT}HoldTime: 5\r\nRingTime: 1",
        f"Event: Hangup\r\n{CALLER}Cause: 16",
        f"Event: AgentComplete\r\nQueue: water\r\n{AGENT}HoldTime: 5\r\nTalkTime: 12\r\nReason: caller",
    )
    (r,) = out
    assert (r["wait_s"], r["talk_s"], r["ended_by"]) == (5.0, 12.0, "caller")
