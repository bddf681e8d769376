"""queue_log backfill (core/backfill.py) against the live tracker on the recorded traces: the same
visits, outcomes, agents, ring-no-answer counts, transfers, and wait/talk within queue_log's
whole seconds; then gaps, known visits and bad lines."""

from __future__ import annotations

import math
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from acdbridge.core.backfill import reconstruct
from acdbridge.core.pipeline import Pipeline
from acdbridge.core.qlines import MARGIN_S
from acdbridge.core.values import Problems
from acdbridge.core.visit import Visit, record_of
from acdbridge.replay import read_chunks, replay_records

TRACES = Path(__file__).parent / "fixtures" / "traces"
NAMES = ["smoke.ami", "edge.ami", "mixed.ami.gz", "sip_hold.ami", "callflow.ami"]
Key = tuple[str, str]


def queue_log(name: str) -> list[str]:
    return (TRACES / (name.removesuffix(".gz") + ".queue_log")).read_text(encoding="utf-8").splitlines()


@cache
def live(name: str) -> dict[Key, dict[str, Any]]:
    # blocked callers write no queue_log line: they cannot be backfilled (docs/daemon.md)
    return {
        (r["uniqueid"], r["queue"]): r for r in replay_records(TRACES / name) if r["outcome"] != "blocked"
    }


@cache
def wrapups(name: str) -> dict[str, float]:
    """Each queue's wrapuptime as the tracker learnt it from the trace (its GetConfig)."""
    pipeline = Pipeline()
    for chunk in read_chunks(TRACES / name):
        if not chunk:
            pipeline.new_connection()
        pipeline.feed_bytes(chunk)
    return {**pipeline.calls.wraps.wrapup_s, **pipeline.calls.wraps.config_wrapup}


def by_key(records: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    out = {(r["uniqueid"], r["queue"]): r for r in records}
    assert len(out) == len(records), "a visit twice"
    return out


def rna(r: dict[str, Any]) -> int:
    return sum(a["result"] == "no_answer" for a in r["ring_attempts"])


def kind(r: dict[str, Any]) -> str | None:
    return r["transfer"]["kind"] if r["transfer"] else None


@pytest.mark.parametrize("name", NAMES)
def test_backfill_matches_the_live_tracker(name: str) -> None:
    problems = Problems()
    back = by_key(reconstruct(queue_log(name), 0.0, 1e10, problems=problems))
    assert problems.counts == {}
    assert back.keys() == live(name).keys()
    keys = list(record_of(Visit("u", "l", "q", "c", "n", 0.0, "event")))
    for k, b in back.items():
        r = live(name)[k]
        assert list(b) == keys, "the replay contract's keys, in its order"
        assert (b["outcome"], b["agent"], b["ended_by"]) == (r["outcome"], r["agent"], r["ended_by"]), k
        assert (rna(b), kind(b)) == (rna(r), kind(r)), k
        assert [a["result"] for a in b["ring_attempts"]] == [a["result"] for a in r["ring_attempts"]], k
        assert abs(b["wait_s"] - r["wait_s"]) <= 1.0, k
        assert abs(b["talk_s"] - (r["talk_s"] + r["hold_s"])) <= 1.0, k  # talk includes hold
        assert abs(b["enter_ts"] - r["enter_ts"]) <= 1.0 and abs(b["end_ts"] - r["end_ts"]) <= 1.0, k
        assert b["ring_s"] is not None and abs(b["ring_s"] - r["ring_s"]) <= 1.0, k
        assert b["caller"] == r["caller"], k
        assert b["hold_s"] is None and b["hold_count"] is None and b["wrap_s"] is None
        assert b["linkedid"] is None and b["agent_interface"] is None
        assert b["time_source"] == "queue_log"


@pytest.mark.parametrize("name", NAMES)
def test_wrap_up_from_wrapuptime_and_what_queue_log_shows_ending_it(name: str) -> None:
    back = reconstruct(queue_log(name), 0.0, 1e10, wrapup_s=wrapups(name))
    checked = 0
    for b in back:
        if b["wrap_s"] is not None:
            r = live(name)[(b["uniqueid"], b["queue"])]
            assert r["wrap_s"] is not None and abs(b["wrap_s"] - r["wrap_s"]) <= 1.0, (
                b["uniqueid"],
                b["queue"],
            )
            checked += 1
    # every answered visit but callflow's, whose wrap-up a disposition ended (the next test)
    assert checked == sum(b["outcome"] == "answered" for b in back) - (name == "callflow.ami")


def test_a_wrap_up_ended_by_a_disposition_is_not_guessed() -> None:
    # callflow: the agent entered a disposition 0.5 s after the call (FastAGI; no queue_log line),
    # and the file ends before the 15 s wrapuptime ran out: unknown, not 15 s
    (b,) = reconstruct(queue_log("callflow.ami"), 0.0, 1e10, wrapup_s=wrapups("callflow.ami"))
    assert b["wrap_s"] is None
    later = [*queue_log("callflow.ami"), "1795404100|NONE|NONE|NONE|QUEUESTART|"]
    (b,) = reconstruct(later, 0.0, 1e10, wrapup_s=wrapups("callflow.ami"))
    assert b["wrap_s"] == 15.0  # the file went on past the due time: as far as queue_log tells


def test_transfers_as_the_tracker_names_them() -> None:
    back = by_key(reconstruct(queue_log("mixed.ami.gz"), 0.0, 1e10))
    blind = back[("acdlab-1795395517.56", "water")]
    assert blind["transfer"] == live("mixed.ami.gz")[("acdlab-1795395517.56", "water")]["transfer"]
    assert blind["transfer"] == {"kind": "blind", "to": "6100@inbound"}
    # queue_log names the bridge an attended transfer went to, not the target's exten@context
    assert back[("acdlab-1795395517.60", "water")]["transfer"] == {"kind": "attended", "to": None}
    # the blind-transferred caller's next visit, in the next queue
    assert back[("acdlab-1795395517.56", "broadband")]["outcome"] == "answered"


@pytest.mark.parametrize(("since", "until"), [(1795395530.4, 1795395560.0), (1795395590.0, 1795395600.0)])
def test_a_gap_gives_exactly_the_visits_that_ended_inside_it(since: float, until: float) -> None:
    lines = [x for x in queue_log("mixed.ami.gz") if int(x.split("|")[0]) >= since - MARGIN_S]
    got = by_key(reconstruct(lines, since, until))
    # queue_log floors times: the gap starts with the second `since` falls in
    expected = {k for k, r in live("mixed.ami.gz").items() if int(since) <= math.floor(r["end_ts"]) < until}
    assert got.keys() == expected and expected
    assert all(int(since) <= r["end_ts"] < until for r in got.values())


def test_a_visit_begun_before_the_gap_is_rebuilt_from_its_own_lines() -> None:
    # 1795395521.74 waited 71 s through six ring-no-answers, answered at ...592, ended at ...598
    key = ("acdlab-1795395521.74", "water")
    got = by_key(reconstruct(queue_log("mixed.ami.gz"), 1795395590.0, 1795395600.0))[key]
    assert (got["caller"], rna(got), got["wait_s"], got["talk_s"]) == ("555000005", 6, 71.0, 6.0)
    assert got["enter_ts"] == 1795395521.0 and abs(got["ring_s"] - live("mixed.ami.gz")[key]["ring_s"]) <= 1.0


def test_without_its_enterqueue_a_visit_keeps_what_its_end_line_says() -> None:
    # the lines start after the caller joined (a margin too short): caller and ring time unknown
    key = ("acdlab-1795395521.74", "water")
    lines = [x for x in queue_log("mixed.ami.gz") if int(x.split("|")[0]) >= 1795395580]
    got = by_key(reconstruct(lines, 1795395590.0, 1795395600.0))[key]
    assert got["caller"] is None and got["ring_s"] is None
    assert (got["wait_s"], got["talk_s"], got["agent"], got["outcome"]) == (
        71.0,
        6.0,
        "Ana Torres",
        "answered",
    )
    assert got["enter_ts"] == 1795395521.0  # answer - wait, from COMPLETEAGENT's own figures
    assert rna(got) == 1  # only the ring-no-answer in the lines read (...590, not ...579)


def test_known_visits_are_never_produced_twice() -> None:
    lines = queue_log("mixed.ami.gz")
    every = by_key(reconstruct(lines, 0.0, 1e10))
    journal = list(every)[::2]
    rest = by_key(reconstruct(lines, 0.0, 1e10, known_ids=journal))
    assert rest.keys() == every.keys() - set(journal)
    # the store's key (uniqueid, queue, enter_ts) with the live, sub-second enter_ts matches too
    triples = [(u, q, live("mixed.ami.gz")[(u, q)]["enter_ts"]) for u, q in journal]
    assert by_key(reconstruct(lines, 0.0, 1e10, known_ids=triples)).keys() == rest.keys()
    # the same caller in the same queue at another time is another visit
    far = [(u, q, e + 3600.0) for u, q, e in triples]
    assert by_key(reconstruct(lines, 0.0, 1e10, known_ids=far)).keys() == every.keys()


BAD = [
    "",
    "garbage",
    "1795395600|acd-1|water|NONE",  # too few fields
    "nan|acd-1|water|NONE|ABANDON|1|1|3",
    "inf|acd-1|water|NONE|ABANDON|1|1|3",
    "١٧٩٥٣٩٥٦٠٠|acd-1|water|NONE|ABANDON|1|1|3",  # Arabic-Indic digits
    "99999999999999|acd-1|water|NONE|ABANDON|1|1|3",  # beyond year 2200
    "1795395600|acd-2|water|NONE|ABANDON|1|1",  # a field short
    "1795395600|acd-3|water|NONE|ABANDON|1|1|1e3",
    "1795395600|acd-4|water|NONE|ABANDON|1|1|-3",
    "1795395600|acd-5|water|NONE|ABANDON|1|1|²",
    "1795395600|acd-6|water|Ana|COMPLETEAGENT|x|4|1",
    "1795395600|acd-7|water|Ana|RINGNOANSWER|",
    "1795395600|" + "x" * 5000 + "|water|NONE|ABANDON|1|1|3",
]


def test_bad_lines_are_skipped_and_counted_never_raised() -> None:
    problems = Problems()
    good = "1795395600|acd-9|water|NONE|ABANDON|1|1|3"
    long_name = "1795395601|acd-10|" + "q" * 300 + "|NONE|EXITWITHTIMEOUT|1|1|9"
    got = reconstruct([*BAD, good, long_name], 0.0, 1e10, problems=problems)
    assert [r["uniqueid"] for r in got] == ["acd-9", "acd-10"]
    assert len(got[1]["queue"]) == 256 and got[1]["outcome"] == "timeout"
    assert got[0]["enter_ts"] == 1795395597.0 and got[0]["caller"] is None
    assert (
        sum(problems.counts.values()) == len(BAD) - 1 + 1
    )  # each bad line once ("" is not one), the long name
    assert set(problems.counts) <= {
        "queue_log_malformed",
        "timestamp_out_of_range",
        "not_ascii_digits",
        "value_too_long",
    }


def test_member_and_queue_lines_are_not_visits() -> None:
    problems = Problems()
    lines = [x for x in queue_log("edge.ami") if "|MANAGER|" in x or "|NONE|NONE|" in x or "PAUSE" in x]
    assert reconstruct(lines, 0.0, 1e10, problems=problems) == [] and problems.counts == {}


def test_mangled_queue_logs_never_raise() -> None:
    rng = random.Random(12)
    source = queue_log("mixed.ami.gz") + queue_log("edge.ami")
    for _ in range(300):
        lines = []
        for line in rng.sample(source, 40):
            chars = list(line)
            for _ in range(rng.randint(0, 4)):
                chars[rng.randrange(len(chars))] = rng.choice("|0123456789x.-\x00é ")
            lines.append("".join(chars))
        for r in reconstruct(lines, 0.0, 1e10):
            assert all(math.isfinite(r[k]) for k in ("enter_ts", "end_ts", "wait_s", "talk_s"))
            assert r["wait_s"] >= 0 and r["talk_s"] >= 0
