"""A checkpoint carries the whole state a restart needs: after a crash recovery the queues of
recent calls (for a disposition or survey score that comes after the talk) and the member book
(penalties, pauses, whether it is synced) are what they were, not empty until the next resync."""

from __future__ import annotations

import json
from pathlib import Path

from acdbridge.adapters.journal import Mark, Position, iter_chunks
from acdbridge.core.pipeline import RECENT_QUEUES_KEPT, Pipeline
from acdbridge.runtime import checkpoint
from acdbridge.runtime.recovery import restore

TRACES = Path(__file__).parent / "fixtures" / "traces"


def frame(**headers: str) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


# a QueueStatus listing as Asterisk 22 sends it, then a pause: the book the resync builds
MEMBER = {"Queue": "support", "Membership": "dynamic"}
LISTING = b"".join(
    [
        frame(Event="QueueParams", Queue="support", Max="0", Strategy="rrmemory", Calls="0"),
        frame(Event="QueueMember", Name="Alice", Location="PJSIP/7001", Penalty="0", Paused="0", **MEMBER),
        frame(Event="QueueMember", Name="Bob", Location="PJSIP/7002", Penalty="3", Paused="1", **MEMBER),
        frame(Event="QueueStatusComplete", EventList="Complete", ListItems="2"),
        frame(Event="QueueMemberPause", Queue="support", Interface="PJSIP/7001", Paused="1"),
    ]
)


def fed() -> Pipeline:
    pipeline = Pipeline()
    for chunk, _ in iter_chunks(TRACES / "mixed.ami.gz"):
        pipeline.feed_bytes(chunk)
    pipeline.feed_bytes(LISTING)
    return pipeline


def through_a_checkpoint(pipeline: Pipeline, tmp_path: Path) -> Pipeline:
    """Save a checkpoint of `pipeline`, load it, restore it into a fresh pipeline (recovery's path)."""
    path = tmp_path / "checkpoint.json"
    checkpoint.save(path, checkpoint.take(pipeline, Mark(Position(1, 20), Position(1, 20), 0), 1.7e9))
    cp = checkpoint.load(path)
    assert cp is not None
    fresh = Pipeline()
    restore(fresh, cp)
    return fresh


def test_recent_queues_and_the_member_book_survive_a_checkpoint(tmp_path: Path) -> None:
    before = fed()
    assert before.calls.recent_queue and before.members.synced
    assert before.members.penalty[("support", "PJSIP/7002")] == 3
    assert before.members.paused[("support", "PJSIP/7001")] is True

    after = through_a_checkpoint(before, tmp_path)

    assert len(before.calls.recent_queue) < RECENT_QUEUES_KEPT
    assert list(after.calls.recent_queue.items()) == list(before.calls.recent_queue.items())  # order kept
    uid, queue = next(reversed(before.calls.recent_queue.items()))
    assert uid not in after.calls.active and after.calls.queue_of(uid) == queue  # a late score's queue
    book, was = after.members, before.members
    assert (book.penalty, book.paused, book.synced, book.changes) == (
        was.penalty, was.paused, True, was.changes
    )  # fmt: skip
    assert book.on_duty() == was.on_duty() and "support" not in book.on_duty()  # both paused
    # and the whole snapshot is the same again (what a second crash would checkpoint)
    assert json.loads(json.dumps(after.snapshot())) == json.loads(json.dumps(before.snapshot()))


def test_the_restored_book_goes_on_with_the_live_events(tmp_path: Path) -> None:
    after = through_a_checkpoint(fed(), tmp_path)
    after.feed_bytes(
        frame(Event="QueueMemberRemoved", Queue="support", Interface="PJSIP/7002", MemberName="Bob")
        + frame(Event="QueueMemberPause", Queue="support", Interface="PJSIP/7001", Paused="0")
    )
    assert ("support", "PJSIP/7002") not in after.members.penalty
    assert after.members.on_duty()["support"] == [0]


def test_a_checkpoint_of_an_older_daemon_without_them_still_restores(tmp_path: Path) -> None:
    before = fed()
    snap = json.loads(json.dumps(before.snapshot()))
    del snap["recent_queue"], snap["members"]  # as the daemon wrote them before
    fresh = Pipeline()
    fresh.restore(snap)
    assert len(fresh.calls.active) == len(before.calls.active)
    assert not fresh.calls.recent_queue and not fresh.members.penalty and not fresh.members.synced


def test_a_checkpoint_keeps_the_newest_recent_queues_in_order(tmp_path: Path) -> None:
    before = fed()
    n = RECENT_QUEUES_KEPT + 700
    before.calls.recent_queue.clear()
    before.calls.recent_queue.update({f"u{i}": f"q{i % 3}" for i in range(n)})
    after = through_a_checkpoint(before, tmp_path)
    kept = list(after.calls.recent_queue)
    assert kept == [f"u{i}" for i in range(700, n)]  # the oldest 700 forgotten, the order kept
    assert after.calls.queue_of(f"u{n - 1}") == f"q{(n - 1) % 3}" and after.calls.queue_of("u0") == ""
