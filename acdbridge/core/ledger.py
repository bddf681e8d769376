"""What the call tracker remembers of visits after they end. Sans-IO, bounded.

A replayed or re-sent stream must not report a visit twice; an event of a visit already ended
(a stream seen twice) must not start a new one; a disposition or survey score comes minutes after
its call and needs the call's queue and the agent's last call; a gap's backfill must know the
visits reported just before it, also after a restart (the checkpoint keeps those)."""

from __future__ import annotations

from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")
Key = tuple[str, str, float]  # (caller uniqueid, queue, enter_ts): the store's key
KEPT = 50_000
RECENT_DONE_S = 5.0  # a checkpoint keeps the keys of visits that ended this long before its last event


def put_newest(table: dict[K, V], key: K, value: V, kept: int) -> None:
    """table[key] = value as its newest entry; the oldest forgotten beyond `kept`."""
    table.pop(key, None)
    table[key] = value
    while len(table) > kept:
        del table[next(iter(table))]


class Ledger:
    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self.reported: dict[Key, float] = {}  # visit reported -> its end_ts
        self.ended: dict[tuple[str, str], float] = {}  # (caller, queue) -> its last visit's end
        self.last_call: dict[str, str] = {}  # agent interface -> caller uniqueid (one per agent)
        self.recent_queue: dict[str, str] = {}  # caller uniqueid -> queue of its last call

    def report(self, key: Key, end_ts: float) -> bool:
        """A visit out: False when it was reported before."""
        if key in self.reported:
            return False
        put_newest(self.reported, key, end_ts, self.kept)
        put_newest(self.ended, key[:2], end_ts, self.kept)
        return True

    def talk_ended(self, uniqueid: str, queue: str, interface: str | None, ts: float) -> None:
        """An answered call ended (its record waits for the agent's wrap-up)."""
        put_newest(self.ended, (uniqueid, queue), ts, self.kept)
        put_newest(self.recent_queue, uniqueid, queue, self.kept)
        if interface:
            self.last_call[interface] = uniqueid

    def last_end(self, uniqueid: str, queue: str) -> float | None:
        return self.ended.get((uniqueid, queue))

    def snapshot(self, last_event_ts: float) -> dict[str, Any]:
        """The agents' last calls, and the visits reported that ended just before the last event:
        after a restart a gap's backfill starts at that event's second (queue_log's floor)."""
        horizon = last_event_ts - RECENT_DONE_S
        recent = [[*k, end] for k, end in self.reported.items() if end >= horizon]
        return {"last_call": self.last_call, "done_recent": recent}

    def restore(self, snap: dict[str, Any]) -> None:
        self.last_call.update(snap.get("last_call", {}))
        for uid, queue, enter, end in snap.get("done_recent", []):
            self.report((str(uid), str(queue), float(enter)), float(end))
