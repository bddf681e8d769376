"""An urgent call's IVR leg while the dialplan rings the on-call engineer (core/legs.py) and the
acd_oncall_calls counter it feeds (core/tallies.py, adapters/metrics.py): answered by which number,
unanswered after every number, or abandoned by the caller while it rang."""

from __future__ import annotations

from prometheus_client.core import Metric

from acdbridge.adapters.metrics import build_families
from acdbridge.core.ami import AmiMessage
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.tallies import live_gauges

from .test_legs import CALLER, T0, ev, feed, varset

ONCALL_CHAN = "1795000000.201"  # the channel that rings the on-call number


def urgent_greeting(start: float) -> list[AmiMessage]:
    """The VarSets of a leak report outside hours (core/ivr.py) and the dialplan's first try."""
    return [
        varset(start, "ACD_HOTLINE", "water"),
        varset(start + 5.0, "ACD_CALLTYPE", "leak"),
        varset(start + 5.0, "ACD_URGENT", "1"),
        varset(start + 5.0, "ACD_ONCALL", "Local/9301@lab-oncall/n^Local/9302@lab-oncall/n"),
        varset(start + 5.0, "ACD_IVR", "oncall"),
        varset(start + 5.1, "ACD_ONCALL_AT", "Local/9301@lab-oncall/n"),
    ]


def oncall_samples(
    p: Pipeline, hotlines: tuple[str, ...] = ("water", "telecom")
) -> dict[tuple[str, str], float]:
    live = live_gauges(p.calls, p.agents, T0)
    (family,) = [
        f
        for f in build_families(p.tallies, live, None, oncall_hotlines=hotlines)
        if f.name == "acd_oncall_calls"
    ]
    assert isinstance(family, Metric) and family.type == "counter"
    return {
        (s.labels["hotline"], s.labels["outcome"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_the_leg_stays_open_while_the_oncall_numbers_ring_and_ends_answered_by_the_second() -> None:
    p = Pipeline()
    feed(p, *urgent_greeting(T0))
    assert p.ivr_legs == [] and CALLER in p.legs.open  # ACD_IVR=oncall does not end it
    feed(p, varset(T0 + 20.1, "ACD_ONCALL_AT", "Local/9302@lab-oncall/n"))
    feed(p, varset(T0 + 23.0, "ACD_ONCALL_ANSWERED", CALLER, uid=ONCALL_CHAN))  # on the answering channel
    (leg,) = p.ivr_legs
    assert (leg["outcome"], leg["oncall"], leg["urgent"], leg["call_type"]) == (
        "oncall_answered", "Local/9302@lab-oncall/n", True, "leak",
    )  # fmt: skip
    assert (leg["end_ts"], leg["queue"]) == (T0 + 23.0, "")
    feed(p, ev("Hangup", T0 + 90, Uniqueid=CALLER))  # the conversation's end: no second leg
    assert len(p.ivr_legs) == 1
    assert oncall_samples(p)[("water", "answered")] == 1


def test_every_number_unanswered_ends_the_leg_unanswered_with_the_last_number() -> None:
    p = Pipeline()
    feed(p, *urgent_greeting(T0), varset(T0 + 20.1, "ACD_ONCALL_AT", "Local/9302@lab-oncall/n"))
    feed(p, varset(T0 + 40.2, "ACD_ONCALL_RESULT", "unanswered"))
    (leg,) = p.ivr_legs
    assert (leg["outcome"], leg["oncall"]) == ("oncall_unanswered", "Local/9302@lab-oncall/n")
    assert p.tallies.ivr[("water", "oncall_unanswered")] == 1


def test_a_caller_hanging_up_while_it_rings_is_an_oncall_abandon_not_an_ivr_abandon() -> None:
    p = Pipeline()
    feed(p, *urgent_greeting(T0), ev("Hangup", T0 + 9, Uniqueid=CALLER))
    (leg,) = p.ivr_legs
    assert (leg["outcome"], leg["oncall"]) == ("oncall_abandoned", "Local/9301@lab-oncall/n")


def test_oncall_variables_before_acd_ivr_oncall_or_for_another_call_end_nothing() -> None:
    p = Pipeline()
    feed(p, varset(T0, "ACD_HOTLINE", "water"), varset(T0 + 1, "ACD_ONCALL_RESULT", "unanswered"))
    feed(p, varset(T0 + 2, "ACD_ONCALL_ANSWERED", CALLER, uid=ONCALL_CHAN))  # not dialling yet
    feed(p, varset(T0 + 3, "ACD_ONCALL_ANSWERED", "no-such-call", uid=ONCALL_CHAN))
    assert p.ivr_legs == [] and CALLER in p.legs.open
    feed(p, ev("Hangup", T0 + 4, Uniqueid=CALLER))
    assert p.ivr_legs[0]["outcome"] == "ivr_abandoned"


def test_the_counter_has_every_outcome_at_0_for_each_hotline_with_a_rota() -> None:
    p = Pipeline()
    assert oncall_samples(p) == {
        (h, o): 0 for h in ("water", "telecom") for o in ("answered", "unanswered", "abandoned")
    }
    feed(p, *urgent_greeting(T0), ev("Hangup", T0 + 9, Uniqueid=CALLER))
    counts = oncall_samples(p, ())
    assert counts == {("water", "abandoned"): 1}  # no rota configured: only what happened
    routed = [
        varset(T0 + 100, "ACD_HOTLINE", "water", uid="x"),
        varset(T0 + 106, "ACD_IVR", "routed", uid="x"),
    ]
    feed(p, *routed)
    assert oncall_samples(p, ("water",))[("water", "abandoned")] == 1 and sum(oncall_samples(p).values()) == 1
