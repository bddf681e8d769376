"""IVR legs, dispositions and survey scores (core/legs.py) as the pipeline reads them from AMI
VarSet events, and the frame parser keeping the VarSets they need."""

from __future__ import annotations

import json

from acdbridge.core.ami import AmiMessage, FrameParser
from acdbridge.core.pipeline import Pipeline, Record

T0 = 1_795_000_000.0
CALLER = "1795000000.101"
AGENT_CHAN = "1795000000.102"
ANA = "Local/9104@lab-agents/n"


def ev(name: str, ts: float, **headers: str) -> AmiMessage:
    return AmiMessage("event", name, {"Event": name, "Timestamp": f"{ts:.6f}", **headers})


def varset(ts: float, variable: str, value: str, uid: str = CALLER) -> AmiMessage:
    return ev(
        "VarSet",
        ts,
        Channel="PJSIP/trunk-00000001",
        Uniqueid=uid,
        Linkedid=CALLER,
        CallerIDNum="13800000002",
        Variable=variable,
        Value=value,
    )


def feed(pipeline: Pipeline, *messages: AmiMessage) -> None:
    for m in messages:
        pipeline.feed(m)


def greeting(start: float, *, underscores: str = "") -> list[AmiMessage]:
    """The VarSets of a spanish VIP caller's greeting, routed to water_es (as core/ivr.py sets them)."""
    return [
        varset(start, f"{underscores}ACD_HOTLINE", "water"),
        varset(start + 0.1, "__ACD_ACCOUNT", "W-100232"),
        varset(start + 0.1, "__ACD_VIP", "1"),
        varset(start + 0.2, "ACD_IVR_STAGE", "menu1"),
        varset(start + 6.0, f"{underscores}ACD_CALLTYPE", "leak"),
        varset(start + 6.0, f"{underscores}ACD_LANG", "es"),
        varset(start + 6.0, "QUEUE_MAX_PENALTY", "1"),
        varset(start + 6.0, f"{underscores}ACD_QUEUE", "water_es"),
        varset(start + 6.5, f"{underscores}ACD_IVR", "routed"),
    ]


def answered_call(
    pipeline: Pipeline, start: float, queue: str = "water", interface: str = ANA, uid: str = CALLER
) -> None:
    """A minimal answered call: join at start, answered at +3 by `interface`, completed at +20."""
    c = {"Uniqueid": uid, "Queue": queue}
    agent = {"Interface": interface, "MemberName": "Ana Torres"}
    feed(
        pipeline,
        ev("QueueCallerJoin", start, Linkedid=uid, CallerIDNum="13800000002", CallerIDName="María", **c),
        ev("AgentCalled", start + 1, **agent, **c),
        ev("QueueCallerLeave", start + 3, **c),
        ev("AgentConnect", start + 3, DestUniqueid=AGENT_CHAN, **agent, **c),
        ev("AgentComplete", start + 20, Reason="agent", TalkTime="17", **agent, **c),
    )


# --- IVR legs ------------------------------------------------------------------------------------


def test_a_routed_greeting_is_one_leg_with_call_type_language_vip_queue_and_duration() -> None:
    p = Pipeline()
    feed(p, *greeting(T0))
    assert p.ivr_legs == [
        {
            "uniqueid": CALLER,
            "linkedid": CALLER,
            "hotline": "water",
            "caller": "13800000002",
            "outcome": "routed",
            "start_ts": T0,
            "end_ts": T0 + 6.5,
            "ivr_s": 6.5,
            "call_type": "leak",
            "language": "es",
            "vip": True,
            "queue": "water_es",
            "recording": "",
            "notice": "",
            "urgent": False,
            "oncall": "",
        }
    ]
    assert p.legs.open == {}
    assert p.tallies.ivr[("water", "routed")] == 1


def test_the_recording_choice_is_on_the_leg_and_an_unknown_one_is_not() -> None:
    p = Pipeline()
    steps = greeting(T0)
    feed(p, *steps[:-1], varset(T0 + 6.2, "ACD_RECORDING", "opted_out"), steps[-1])
    later = greeting(T0 + 100)
    feed(p, *later[:-1], varset(T0 + 106.2, "ACD_RECORDING", "maybe"), later[-1])  # not a choice
    assert [leg["recording"] for leg in p.ivr_legs] == ["opted_out", ""]


def test_variable_names_with_leading_underscores_are_read() -> None:
    p = Pipeline()
    feed(p, *greeting(T0, underscores="__"))
    (leg,) = p.ivr_legs
    assert (leg["hotline"], leg["call_type"], leg["language"], leg["queue"], leg["outcome"]) == (
        "water",
        "leak",
        "es",
        "water_es",
        "routed",
    )


def test_a_hangup_during_the_greeting_is_an_ivr_abandon_and_no_queue_visit() -> None:
    visits: list[Record] = []
    p = Pipeline(on_visit=visits.append)
    feed(p, *greeting(T0)[:4], ev("Hangup", T0 + 2.5, Uniqueid=CALLER, Cause="16"))
    (leg,) = p.ivr_legs
    assert leg["outcome"] == "ivr_abandoned" and leg["ivr_s"] == 2.5
    assert leg["vip"] is True and leg["queue"] == "" and leg["call_type"] == ""
    p.finish()
    assert visits == [] and p.calls.active == {}
    assert p.tallies.ivr[("water", "ivr_abandoned")] == 1
    assert not any(k[1] == "abandoned" for k in p.tallies.calls)


def test_a_hang_up_during_a_notice_or_just_after_it_is_informed_later_an_ivr_abandon() -> None:
    p = Pipeline()
    cases = [(0.0, None, 3.0), (100.0, 8.0, 12.0), (200.0, 8.0, 13.5)]  # (start, notice end, hang-up)
    for start, notice_end, hangup in cases:
        uid = f"1795000000.{int(start) + 300}"
        steps = [
            varset(T0 + start, "ACD_HOTLINE", "water", uid),
            varset(T0 + start + 1, "__ACD_NOTICE", "outage", uid),
        ]
        if notice_end is not None:
            steps.append(varset(T0 + start + notice_end, "ACD_NOTICE_END", "outage", uid))
        feed(p, *steps, ev("Hangup", T0 + start + hangup, Uniqueid=uid, Cause="16"))
    feed(p, *greeting(T0 + 300))  # no notice: nothing counted for notices
    legs = p.ivr_legs
    assert [(leg["outcome"], leg["notice"]) for leg in legs] == [
        ("informed", "outage"), ("informed", "outage"), ("ivr_abandoned", "outage"), ("routed", "")
    ]  # fmt: skip
    assert p.tallies.notices == {("water", "outage", "informed"): 2, ("water", "outage", "continued"): 1}
    assert p.tallies.ivr[("water", "informed")] == 2 and p.tallies.ivr[("water", "ivr_abandoned")] == 1


def test_a_queue_join_while_the_leg_is_open_ends_it_as_a_fallback() -> None:
    p = Pipeline()
    feed(
        p,
        varset(T0, "ACD_HOTLINE", "water"),
        varset(T0 + 1, "ACD_CALLTYPE", "repair"),
        ev("QueueCallerJoin", T0 + 4, Uniqueid=CALLER, Linkedid=CALLER, Queue="water", CallerIDNum="138"),
    )
    (leg,) = p.ivr_legs
    assert leg["outcome"] == "fallback" and leg["queue"] == "water" and leg["ivr_s"] == 4.0
    assert leg["call_type"] == "repair"
    assert CALLER in p.calls.active  # and the queue visit goes on
    # a later Hangup is the visit's, not another leg's
    feed(p, ev("Hangup", T0 + 9, Uniqueid=CALLER))
    assert len(p.ivr_legs) == 1


def test_a_closed_greeting_ends_with_outcome_closed_and_no_queue() -> None:
    p = Pipeline()
    feed(
        p,
        varset(T0, "ACD_HOTLINE", "complaints"),
        varset(T0 + 4, "ACD_QUEUE", "-"),
        varset(T0 + 4, "ACD_IVR", "closed"),
    )
    (leg,) = p.ivr_legs
    assert (leg["hotline"], leg["outcome"], leg["queue"]) == ("complaints", "closed", "")


def test_varsets_of_a_channel_without_an_open_leg_are_ignored() -> None:
    p = Pipeline()
    feed(
        p,
        varset(T0, "ACD_CALLTYPE", "leak"),
        varset(T0, "ACD_IVR", "routed"),
        ev("Hangup", T0, Uniqueid=CALLER),
    )
    assert p.ivr_legs == [] and p.legs.open == {} and p.legs.problems == 0


def test_snapshot_and_restore_keep_an_open_leg() -> None:
    first = Pipeline()
    feed(first, *greeting(T0)[:5])
    saved = json.loads(json.dumps(first.snapshot()))  # through JSON, as the daemon stores it
    second = Pipeline()
    second.restore(saved)
    assert CALLER in second.legs.open
    feed(second, *greeting(T0)[5:])
    (leg,) = second.ivr_legs
    assert leg["start_ts"] == T0 and leg["call_type"] == "leak" and leg["queue"] == "water_es"
    assert leg["vip"] is True and leg["ivr_s"] == 6.5
    assert first.ivr_legs == []


# --- survey scores and dispositions --------------------------------------------------------------


def test_a_survey_score_is_a_feedback_record_with_the_visits_queue() -> None:
    p = Pipeline(wrapup_s={"water_es": 0.0})
    answered_call(p, T0, queue="water_es")
    feed(p, varset(T0 + 25, "ACD_SURVEY_SCORE", "4"))
    assert p.feedback == [
        {
            "uniqueid": CALLER,
            "kind": "survey",
            "value": "4",
            "resolved": False,
            "queue": "water_es",
            "agent": "",
            "ts": T0 + 25,
        }
    ]
    assert p.tallies.surveys[("water_es", "4")] == 1


def test_a_survey_score_that_is_not_a_number_is_a_problem() -> None:
    p = Pipeline()
    feed(p, varset(T0, "ACD_SURVEY_SCORE", "x"))
    assert p.feedback == [] and p.legs.problems == 1


def test_a_disposition_is_attached_to_the_agents_call_and_ends_his_wrap_up() -> None:
    visits: list[Record] = []
    feedback: list[Record] = []
    p = Pipeline(wrapup_s={"water": 30.0}, on_visit=visits.append, on_feedback=feedback.append)
    answered_call(p, T0)  # the talk ends at T0 + 20; wrap-up would last until T0 + 50
    assert visits == [] and p.calls.call_of_agent(ANA) == CALLER  # in wrap-up
    feed(p, varset(T0 + 26, "ACD_DISPOSITION", f"{ANA}|resolved|1", uid=AGENT_CHAN))
    assert feedback == [
        {
            "uniqueid": CALLER,
            "kind": "disposition",
            "value": "resolved",
            "resolved": True,
            "queue": "water",
            "agent": ANA,
            "ts": T0 + 26,
        }
    ]
    (visit,) = visits  # the wrap-up ended with the disposition, not 30 s after the call
    assert visit["uniqueid"] == CALLER and visit["wrap_s"] == 6.0
    assert p.tallies.dispositions[("water", "resolved", "true")] == 1
    assert p.legs.problems == 0


def test_without_a_disposition_the_wrap_up_runs_its_full_length() -> None:
    visits: list[Record] = []
    p = Pipeline(wrapup_s={"water": 30.0}, on_visit=visits.append)
    answered_call(p, T0)
    p.finish()
    (visit,) = visits
    assert visit["wrap_s"] == 30.0


def test_a_disposition_after_the_wrap_up_names_the_agents_last_call() -> None:
    p = Pipeline(wrapup_s={"water": 5.0})
    answered_call(p, T0)
    feed(p, varset(T0 + 60, "ACD_DISPOSITION", f"{ANA}|needs_callback|0", uid=AGENT_CHAN))
    (fb,) = p.feedback
    assert (fb["uniqueid"], fb["value"], fb["resolved"], fb["queue"]) == (
        CALLER,
        "needs_callback",
        False,
        "water",
    )


def test_a_disposition_for_an_unknown_agent_is_a_problem() -> None:
    p = Pipeline(wrapup_s={"water": 30.0})
    answered_call(p, T0)
    feed(p, varset(T0 + 25, "ACD_DISPOSITION", "PJSIP/1009|resolved|1", uid="x"))
    assert p.feedback == [] and p.legs.problems == 1
    assert p.calls.call_of_agent(ANA) == CALLER  # Ana's wrap-up goes on
    feed(p, varset(T0 + 26, "ACD_DISPOSITION", f"{ANA}||1", uid="x"))  # and no code is one too
    assert p.feedback == [] and p.legs.problems == 2


# --- the frame parser keeps the VarSets the legs need --------------------------------------------


def frame(variable: str, value: str = "v") -> bytes:
    return (
        "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/trunk-00000001\r\n"
        f"Uniqueid: {CALLER}\r\nVariable: {variable}\r\nValue: {value}\r\n\r\n"
    ).encode()


def test_the_frame_parser_keeps_acd_varsets_and_drops_other_varsets() -> None:
    parser = FrameParser()
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        frame(v)
        for v in (
            "X",
            "ACD_HOTLINE",
            "__ACD_ACCOUNT",
            "CHANNEL(language)",
            "QUEUESTATUS",
            "MY_ACD_X",
            "ACD_IVR",
        )
    )
    messages = parser.feed(data)
    assert messages[0].kind == "banner" and messages[0].name == "Asterisk Call Manager/11.0.0"
    kept = [(m.name, m.headers["Variable"]) for m in messages[1:]]
    assert kept == [
        ("VarSet", "ACD_HOTLINE"),
        ("VarSet", "__ACD_ACCOUNT"),
        ("VarSet", "QUEUESTATUS"),
        ("VarSet", "ACD_IVR"),
    ]
    assert parser.stats.dropped == 3 and parser.stats.malformed == 0


def test_a_greeting_fed_as_bytes_gives_its_leg() -> None:
    p = Pipeline()
    raw = b"Asterisk Call Manager/11.0.0\r\n"
    for i, (var, value) in enumerate(
        [("ACD_HOTLINE", "water"), ("ACD_QUEUE", "water"), ("ACD_IVR", "routed")]
    ):
        raw += frame(var, value).replace(b"\r\n\r\n", f"\r\nTimestamp: {T0 + i:.6f}\r\n\r\n".encode())
    p.feed_bytes(raw)
    (leg,) = p.ivr_legs
    assert (leg["hotline"], leg["queue"], leg["outcome"], leg["ivr_s"]) == ("water", "water", "routed", 2.0)
