"""Recorded lab traces of the caller's path (tests/integration/test_callflow.py made them) replay
through the same core as the daemon: greeting legs, survey, disposition, and their KPIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from acdbridge.config import Config
from acdbridge.replay import replay_kpis, replay_legs, replay_records

TRACES = Path(__file__).parent / "fixtures" / "traces"


def test_a_routed_call_with_survey_and_disposition() -> None:
    legs = replay_legs(TRACES / "callflow.ami")
    (leg,) = [r for r in legs if r["record"] == "ivr_leg"]
    assert (leg["hotline"], leg["outcome"], leg["call_type"], leg["queue"]) == (
        "water",
        "routed",
        "complaint",
        "complaints",
    )
    (visit,) = replay_records(TRACES / "callflow.ami", {"complaints": 15.0})
    assert visit["uniqueid"] == leg["uniqueid"] and visit["queue"] == "complaints"
    assert visit["enter_ts"] >= leg["end_ts"]  # the queue starts where the greeting ended
    feedback = {r["kind"]: r for r in legs if r["record"] == "feedback"}
    assert feedback["survey"]["value"] == "5" and feedback["survey"]["uniqueid"] == visit["uniqueid"]
    disposition = feedback["disposition"]
    assert (disposition["value"], disposition["resolved"], disposition["agent"]) == (
        "resolved", True, "Local/9104@lab-agents/n",
    )  # fmt: skip
    # the disposition ended after-call work then, well before the queue's 15 s wrapuptime
    assert visit["wrap_s"] == pytest.approx(disposition["ts"] - visit["end_ts"], abs=1e-6)
    assert visit["wrap_s"] < 15.0
    q = replay_kpis(TRACES / "callflow.ami", Config())["queues"]["complaints"]
    assert (q["surveys"], q["satisfaction"], q["dispositions"], q["fcr"]) == (1, 1.0, 1, 1.0)


def test_a_caller_who_hangs_up_in_the_greeting_is_no_queue_visit() -> None:
    legs = replay_legs(TRACES / "no_queue" / "ivr_abandon.ami")
    assert [(r["record"], r["outcome"], r["caller"]) for r in legs] == [
        ("ivr_leg", "ivr_abandoned", "13900000071")
    ]
    assert 0.5 < legs[0]["ivr_s"] < 5.0
    assert replay_records(TRACES / "no_queue" / "ivr_abandon.ami") == []
