"""Property tests of the sans-IO core: chunking never changes the output, damaged streams
(duplicated, reordered, dropped events) never crash the tracker nor give impossible figures,
duplicates are never counted twice, and malformed bytes never stop the parser.

Two bugs these tests found are kept as explicit examples: a stale copy of a QueueCallerJoin
arriving while the caller talks (it used to end the call at the copy's older time), and an
AgentComplete whose AgentConnect was lost (it used to leave the ring attempts open)."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from acdbridge.core.ami import WANTED_EVENTS, AmiMessage, FrameParser
from acdbridge.core.calls import CallTracker
from acdbridge.core.pipeline import Pipeline
from acdbridge.replay import dumps

TRACES = Path(__file__).parent / "fixtures" / "traces"
TRACE_NAMES = ["smoke.ami", "edge.ami", "sip_hold.ami", "mixed.ami.gz"]
MIXED = "mixed.ami.gz"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# database=None: nothing is written to .hypothesis/ by these tests.
FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

Record = dict[str, Any]
Expected = tuple[str, str, dict[str, str]]


# -- helpers -------------------------------------------------------------------------------------
@cache
def trace_bytes(name: str) -> bytes:
    path = TRACES / name
    return gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()


@cache
def tricky_cuts(name: str) -> tuple[int, ...]:
    """Cut positions inside a multi-byte UTF-8 character or inside a b"\\r\\n\\r\\n" separator."""
    data = trace_bytes(name)
    inside_char = [i for i, b in enumerate(data) if 0x80 <= b <= 0xBF]  # before a continuation byte
    inside_sep: list[int] = []
    at = data.find(b"\r\n\r\n")
    while at >= 0:
        inside_sep.extend((at + 1, at + 2, at + 3))
        at = data.find(b"\r\n\r\n", at + 1)
    return tuple(sorted(set(inside_char + inside_sep)))


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def replay_lines(chunks: Sequence[bytes]) -> list[str]:
    records: list[Record] = []
    pipeline = Pipeline(on_visit=records.append)
    for chunk in chunks:
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return [dumps(r) for r in records]


@cache
def whole_lines(name: str) -> tuple[str, ...]:
    return tuple(replay_lines([trace_bytes(name)]))


@cache
def trace_messages(name: str) -> tuple[AmiMessage, ...]:
    return tuple(FrameParser().feed(trace_bytes(name)))


def track(messages: Sequence[AmiMessage]) -> CallTracker:
    tracker = CallTracker()
    for msg in messages:
        tracker.feed(msg)
    tracker.finish()
    return tracker


def lines_of(messages: Sequence[AmiMessage]) -> list[str]:
    return [dumps(r) for r in track(messages).finished]


def visit_key(record: Record) -> tuple[str, str, float]:
    return (record["uniqueid"], record["queue"], record["enter_ts"])


def as_tuples(messages: Sequence[AmiMessage]) -> list[Expected]:
    """AmiMessage equality ignores headers; compare them too."""
    return [(m.kind, m.name, m.headers) for m in messages]


# -- 1. chunking ---------------------------------------------------------------------------------
def test_every_trace_has_multibyte_text_and_visits() -> None:
    """The chunking properties below mean something only if the traces have both."""
    for name in TRACE_NAMES:
        assert any(b >= 0x80 for b in trace_bytes(name)), name
        assert whole_lines(name), name
    assert "王小明" in "".join(whole_lines(MIXED))


@pytest.mark.parametrize("name", TRACE_NAMES)
@FAST
@given(data=st.data())
def test_any_chunking_gives_identical_records(name: str, data: st.DataObject) -> None:
    raw = trace_bytes(name)
    anywhere = st.integers(min_value=0, max_value=len(raw))
    tricky = st.sampled_from(tricky_cuts(name))
    cuts = data.draw(st.lists(st.one_of(anywhere, tricky), max_size=300), label="cuts")
    assert replay_lines(split_at(raw, cuts)) == list(whole_lines(name))


def test_single_byte_chunks_give_identical_records() -> None:
    raw = trace_bytes("smoke.ami")
    assert replay_lines([raw[i : i + 1] for i in range(len(raw))]) == list(whole_lines("smoke.ami"))


def test_single_byte_chunks_keep_every_message_and_its_text() -> None:
    raw = trace_bytes(MIXED)
    parser = FrameParser()
    got: list[AmiMessage] = []
    for i in range(len(raw)):
        got.extend(parser.feed(raw[i : i + 1]))
    assert as_tuples(got) == as_tuples(trace_messages(MIXED))
    assert {"王小明", "José Núñez"} <= {m.get("CallerIDName") for m in got}


# -- 2. damaged streams --------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    drop: frozenset[int]  # indices into the clean message list
    duplicate: tuple[tuple[int, int], ...]  # (index, how many messages after it its copy goes)
    swap: tuple[int, ...]  # positions p: swap messages p and p+1 (after drop and duplicate)

    def apply(self, messages: Sequence[AmiMessage]) -> list[AmiMessage]:
        order = [i for i in range(len(messages)) if i not in self.drop]
        for index, later in self.duplicate:
            if index not in self.drop:
                pos = order.index(index) + 1 + later
                order.insert(min(pos, len(order)), index)
        for p in self.swap:
            if p + 1 < len(order):
                order[p], order[p + 1] = order[p + 1], order[p]
        return [messages[i] for i in order]


def damage(n: int) -> st.SearchStrategy[Damage]:
    index = st.integers(min_value=0, max_value=n - 1)
    later = st.one_of(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=n))
    return st.builds(
        Damage,
        drop=st.frozensets(index, max_size=40),
        duplicate=st.lists(st.tuples(index, later), max_size=40).map(tuple),
        swap=st.lists(st.integers(min_value=0, max_value=n + 40), max_size=40).map(tuple),
    )


MIXED_N = len(trace_messages(MIXED))


def _first(name: str, uid: str, queue: str, start: int) -> int:
    messages = trace_messages(MIXED)
    for i in range(start, len(messages)):
        m = messages[i]
        if m.name == name and m.get("Uniqueid") == uid and m.get("Queue") == queue:
            return i
    raise AssertionError(f"no {name} for {uid} in {queue}")


def _landmarks() -> tuple[int, int, int, int]:
    """In the mixed trace: the first answered visit's QueueCallerJoin and AgentConnect; the first
    join of a caller who was later transferred into another queue, and that second visit's connect."""
    messages = trace_messages(MIXED)
    joins: dict[str, list[tuple[int, str]]] = {}
    for i, m in enumerate(messages):
        if m.name == "QueueCallerJoin":
            joins.setdefault(m.get("Uniqueid"), []).append((i, m.get("Queue")))
    first_uid = messages[next(i for i, m in enumerate(messages) if m.name == "AgentConnect")].get("Uniqueid")
    (join, queue), *_ = joins[first_uid]
    moved = next(js for js in joins.values() if len({q for _, q in js}) > 1)
    join_a, queue_a = moved[0]
    join_b, queue_b = next(j for j in moved if j[1] != queue_a)
    uid_b = messages[join_b].get("Uniqueid")
    return (
        join,
        _first("AgentConnect", first_uid, queue, join),
        join_a,
        _first("AgentConnect", uid_b, queue_b, join_b),
    )


JOIN, CONNECT, FIRST_QUEUE_JOIN, SECOND_QUEUE_CONNECT = _landmarks()


def check_record(r: Record) -> None:
    for key in ("wait_s", "ring_s", "talk_s", "hold_s"):
        assert r[key] >= 0, (key, r)
    assert r["wrap_s"] is None or r["wrap_s"] >= 0, r
    assert r["answer_ts"] is None or r["answer_ts"] >= r["enter_ts"], r
    assert r["outcome"] is not None, r
    if r["outcome"] == "answered":
        assert r["answer_ts"] is not None and r["agent_interface"] is not None, r
    else:
        assert r["answer_ts"] is None and r["talk_s"] == 0 and r["hold_count"] == 0, r
    for attempt in r["ring_attempts"]:
        assert attempt["start_ts"] >= r["enter_ts"], r
        assert attempt["end_ts"] is None or attempt["end_ts"] >= attempt["start_ts"], r


def check_end_not_before_start(r: Record) -> None:
    assert r["end_ts"] >= r["enter_ts"], r
    if r["answer_ts"] is not None:
        assert r["end_ts"] >= r["answer_ts"], r


def check_rings_closed(r: Record) -> None:
    """A finished visit has no phone still ringing, and an answered one was answered by one ring."""
    assert all(a["end_ts"] is not None and a["result"] is not None for a in r["ring_attempts"]), r
    if r["outcome"] == "answered":
        answered = [a for a in r["ring_attempts"] if a["result"] == "answered"]
        assert [a["interface"] for a in answered] == [r["agent_interface"]], r


@FAST
@given(dmg=damage(MIXED_N))
def test_damaged_stream_never_crashes_nor_goes_negative(dmg: Damage) -> None:
    tracker = track(dmg.apply(trace_messages(MIXED)))
    for r in tracker.finished:
        check_record(r)
    keys = [visit_key(r) for r in tracker.finished]
    assert len(keys) == len(set(keys))


# no shrinking (the minimal cases are the examples) and one error, not a group, when both fail
@settings(FAST, phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False)
@example(dmg=Damage(frozenset(), ((JOIN, CONNECT - JOIN),), ()))
@example(dmg=Damage(frozenset(), ((FIRST_QUEUE_JOIN, SECOND_QUEUE_CONNECT - FIRST_QUEUE_JOIN),), ()))
@given(dmg=damage(MIXED_N))
def test_damaged_stream_never_ends_a_visit_before_it_starts(dmg: Damage) -> None:
    for r in track(dmg.apply(trace_messages(MIXED))).finished:
        check_end_not_before_start(r)


@pytest.mark.parametrize(
    ("join", "connect"),
    [(JOIN, CONNECT), (FIRST_QUEUE_JOIN, SECOND_QUEUE_CONNECT)],
    ids=["same", "transferred"],
)
def test_a_stale_copy_of_a_join_changes_nothing(join: int, connect: int) -> None:
    """The minimal failing streams: the clean trace with one join's copy right after a connect."""
    clean = trace_messages(MIXED)
    damaged = [*clean[: connect + 1], clean[join], *clean[connect + 1 :]]
    assert lines_of(damaged) == lines_of(clean)


@settings(FAST, phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False)
@example(dmg=Damage(frozenset({CONNECT}), (), ()))
@given(dmg=damage(MIXED_N))
def test_damaged_stream_leaves_no_phone_ringing(dmg: Damage) -> None:
    for r in track(dmg.apply(trace_messages(MIXED))).finished:
        check_rings_closed(r)


def test_a_lost_agent_connect_still_closes_the_ring() -> None:
    clean = trace_messages(MIXED)
    uid = clean[CONNECT].get("Uniqueid")
    damaged = [m for i, m in enumerate(clean) if i != CONNECT]
    (want,) = [
        r for r in track(clean).finished if r["uniqueid"] == uid and r["queue"] == clean[JOIN].get("Queue")
    ]
    (got,) = [r for r in track(damaged).finished if visit_key(r) == visit_key(want)]
    assert got["outcome"] == "answered" and got["agent"] == want["agent"]
    assert abs(got["answer_ts"] - want["answer_ts"]) < 1.0  # rebuilt from AgentComplete's TalkTime
    check_rings_closed(got)
    assert abs(got["ring_s"] - want["ring_s"]) < 1.0


def test_the_clean_trace_satisfies_every_invariant() -> None:
    for name in TRACE_NAMES:
        tracker = track(trace_messages(name))
        assert len(tracker.finished) == len(whole_lines(name))
        for r in tracker.finished:
            check_record(r)
            check_end_not_before_start(r)
            check_rings_closed(r)


def test_the_damage_is_applied_as_described() -> None:
    clean = trace_messages(MIXED)
    dmg = Damage(frozenset({0}), ((2, 0), (3, 5)), (0,))
    # drop 0 -> [1 2 3 4 ...]; 2's copy right after it; 3's copy 5 later; swap the first two
    want = [2, 1, 2, 3, 4, 5, 6, 7, 8, 3, 9]
    position = {id(m): i for i, m in enumerate(clean)}  # AmiMessage equality ignores headers
    assert [position[id(m)] for m in dmg.apply(clean)[: len(want)]] == want
    assert len(dmg.apply(clean)) == len(clean) + 1


# -- 3. duplicates in a row ----------------------------------------------------------------------
def visits_of(tracker: CallTracker) -> Counter[tuple[str, str, str]]:
    return Counter((r["uniqueid"], r["queue"], r["outcome"]) for r in tracker.finished)


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_every_message_twice_in_a_row_counts_each_visit_once(name: str) -> None:
    clean = trace_messages(name)
    doubled = [m for msg in clean for m in (msg, msg)]
    once, twice = track(clean), track(doubled)
    want, got = visits_of(once), visits_of(twice)
    assert set(got) == set(want)
    assert all(count == 1 for count in got.values()), got
    keys = [visit_key(r) for r in twice.finished]
    assert len(keys) == len(set(keys))
    # not just the same visits: the very same figures
    assert lines_of(doubled) == lines_of(clean)


@FAST
@given(doubled=st.sets(st.integers(min_value=0, max_value=MIXED_N - 1)))
def test_any_messages_twice_in_a_row_change_nothing(doubled: set[int]) -> None:
    clean = trace_messages(MIXED)
    stream = [m for i, msg in enumerate(clean) for m in ((msg, msg) if i in doubled else (msg,))]
    assert lines_of(stream) == lines_of(clean)


# -- 4. malformed input --------------------------------------------------------------------------
@FAST
@given(junk=st.binary(max_size=2000), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_arbitrary_bytes_never_raise(junk: bytes, cuts: list[int]) -> None:
    errors: list[str] = []
    whole = FrameParser(on_error=errors.append)
    out = whole.feed(junk)
    stats = whole.stats
    banners = sum(m.kind == "banner" for m in out)
    # every complete frame is a message, dropped as unwanted, or counted malformed and reported
    assert stats.frames == stats.dropped + stats.malformed + stats.messages - banners
    assert len(errors) == stats.malformed
    # and the same bytes cut anywhere give the same messages
    chunked = FrameParser()
    got: list[AmiMessage] = []
    for chunk in split_at(junk, [c for c in cuts if c <= len(junk)]):
        got.extend(chunked.feed(chunk))
    assert as_tuples(got) == as_tuples(out)
    assert chunked.stats == whole.stats


@FAST
@given(junk=st.binary(max_size=500))
def test_arbitrary_bytes_after_the_banner_never_raise(junk: bytes) -> None:
    out = FrameParser().feed(BANNER + junk)
    assert (out[0].kind, out[0].name) == ("banner", "Asterisk Call Manager/11.0.0")


_header_key = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), min_size=1
)
_header_value = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
# no colon at all: never "Header: value" nor "Header:"
_garbage_line = st.text(st.characters(codec="utf-8", exclude_characters="\r\n:"), min_size=1, max_size=40)


@st.composite
def valid_frame(draw: st.DrawFn) -> tuple[bytes, Expected]:
    name = draw(st.sampled_from(sorted(WANTED_EVENTS)))
    headers = {"Event": name}
    for key, value in draw(st.lists(st.tuples(_header_key, _header_value), max_size=6)):
        headers.setdefault(key, value)
    text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return text.encode() + b"\r\n", ("event", name, headers)


@FAST
@given(
    frames=st.lists(st.one_of(valid_frame(), _garbage_line), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=40),
)
def test_malformed_frames_are_counted_reported_and_skipped(
    frames: list[tuple[bytes, Expected] | str], cuts: list[int]
) -> None:
    stream = BANNER
    want: list[Expected] = [("banner", "Asterisk Call Manager/11.0.0", {})]
    garbage = 0
    for frame in frames:
        if isinstance(frame, str):
            stream += frame.encode() + b"\r\n\r\n"
            garbage += 1
        else:
            stream += frame[0]
            want.append(frame[1])
    errors: list[str] = []
    parser = FrameParser(on_error=errors.append)
    got: list[AmiMessage] = []
    for chunk in split_at(stream, [c for c in cuts if c <= len(stream)]):
        got.extend(parser.feed(chunk))
    assert as_tuples(got) == want
    assert parser.stats.malformed == garbage
    assert len(errors) == garbage and all("malformed AMI frame skipped" in e for e in errors)


def test_garbage_frame_is_counted_reported_and_parsing_goes_on() -> None:
    errors: list[str] = []
    parser = FrameParser(on_error=errors.append)
    stream = (
        BANNER
        + b"garbage line without colon\r\n\r\n"
        + b"Event: Hangup\r\nUniqueid: 1.1\r\nCallerIDName: Jos\xc3\xa9 N\xc3\xba\xc3\xb1ez\r\n\r\n"
        + b"Bad Key: value\r\n\r\n"
        + b"Header: without event or response\r\n\r\n"
        + b"Response: Success\r\nActionID: x\r\n\r\n"
    )
    got = parser.feed(stream)
    assert [(m.kind, m.name) for m in got] == [
        ("banner", "Asterisk Call Manager/11.0.0"),
        ("event", "Hangup"),
        ("response", "Success"),
    ]
    assert got[1].headers == {"Event": "Hangup", "Uniqueid": "1.1", "CallerIDName": "José Núñez"}
    assert parser.stats.malformed == 3 and len(errors) == 3
    assert "garbage line without colon" in errors[0]


def test_garbage_inside_a_real_trace_loses_nothing_else() -> None:
    raw = trace_bytes(MIXED)
    garbage = b"garbage line without colon\r\n\r\n"
    frame_ends = [i + 4 for i in range(len(raw)) if raw.startswith(b"\r\n\r\n", i)][::50]
    spliced = garbage.join(split_at(raw, frame_ends))
    errors: list[str] = []
    records: list[Record] = []
    pipeline = Pipeline(on_visit=records.append, on_problem=errors.append)
    pipeline.feed_bytes(spliced)
    pipeline.finish()
    assert pipeline.parser.stats.malformed == len(frame_ends) == pipeline.problem_counts["malformed_frame"]
    assert len(errors) == 1 and "malformed AMI frame skipped" in errors[0]  # once per kind, then counted
    assert [dumps(r) for r in records] == list(whole_lines(MIXED))


# -- 5. a re-sent stream -------------------------------------------------------------------------
@pytest.mark.parametrize("name", TRACE_NAMES)
def test_replaying_a_trace_twice_reports_each_visit_once(name: str) -> None:
    clean = trace_messages(name)
    once = track(clean).finished
    twice = track([*clean, *clean]).finished
    keys = [visit_key(r) for r in twice]
    assert len(keys) == len(set(keys))
    assert twice == once


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_a_stream_resent_on_a_new_connection_reports_each_visit_once(name: str) -> None:
    records: list[Record] = []
    pipeline = Pipeline(on_visit=records.append)
    pipeline.feed_bytes(trace_bytes(name))
    pipeline.new_connection()  # banner and all again, as after a reconnect that re-sends
    pipeline.feed_bytes(trace_bytes(name))
    pipeline.finish()
    assert [dumps(r) for r in records] == list(whole_lines(name))
