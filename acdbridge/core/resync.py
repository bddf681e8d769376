"""The resync after every AMI (re)connect: QueueStatus lists the callers waiting, CoreShowChannels
every channel alive. Sans-IO; the handlers of core/calls.py's CallTracker for those lists.

A caller tracked before the gap may have vanished (hung up while nobody listened), or be alive
but elsewhere: a caller listed waiting in another queue than the one tracked was moved on in the
gap (a blind transfer), so the tracked visit ended then. Both kinds go to the gap's backfill
(core/gap.py), which reports them as queue_log has them; without a gap open they end now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acdbridge.core.ami import AmiMessage
from acdbridge.core.values import duration
from acdbridge.core.visit import Visit

if TYPE_CHECKING:
    from acdbridge.core.calls import CallTracker

VANISHING = ("waiting", "leaving", "talking")  # the states a resync can find a caller gone in


def on_queue_entry(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    """A caller already waiting when we (re)connected: track it unless we already do."""
    h = msg.headers
    uid, queue = h.get("Uniqueid", ""), h.get("Queue", "")
    current = t.active.get(uid)
    if not uid or (current is not None and (current.queue == queue or current.state not in VANISHING)):
        return
    if current is not None:  # waiting in another queue now: moved on while nobody listened
        t.moved.append(current)
        t.forget(current)
    waited = duration(h.get("Wait", "0"))
    t.known_queues.add(queue)
    t.active[uid] = Visit(uid, h.get("Linkedid", uid), queue, h.get("CallerIDNum", ""),
                          h.get("CallerIDName", ""), ts - waited, "resync")  # fmt: skip


def on_channel_listed(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    if t.alive_listed is None:
        t.alive_listed = set()
    t.alive_listed.add(msg.headers.get("Uniqueid", ""))


def on_channels_complete(t: CallTracker, msg: AmiMessage, ts: float, _source: str) -> None:
    """Callers that vanished or moved on while we were away: `on_vanished` (the gap's backfill)
    takes them, else they are finished now, at the resync's time, rather than never."""
    alive, t.alive_listed = t.alive_listed or set(), None
    gone: list[Visit] = [v for uid, v in t.active.items() if uid not in alive and v.state in VANISHING]
    gone, t.moved = [*t.moved, *gone], []
    t.ignored["vanished-during-outage"] += len(gone)
    if t.on_vanished is not None and t.on_vanished(gone, ts, alive):
        for v in gone:
            t.forget(v)
        return
    for v in gone:
        t.finish_vanished(v, ts)
