"""Asterisk's queue_log, read for a gap's backfill (core/gap.py): the lines from a time on.

The file is in time order and can hold months, so the start is found by bisection on byte
offsets rather than by reading it all; from there it is read to its end (a visit that ended in
the gap may wrap up after it). Blocking file IO: the daemon calls this in a thread. The excerpt
(core/backfill.py) is what the journal keeps, capped at MAX_EXCERPT_BYTES (the oldest lines go
first, counted): a journal record is at most 16 MB."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from acdbridge.core.qlines import MARGIN_S, excerpt
from acdbridge.core.values import event_time

MAX_EXCERPT_BYTES = 8 << 20
BISECT_STOP = 1 << 16  # below this span, read on from the low end


def _time_at(f: BinaryIO, offset: int) -> float | None:
    """The time of the first whole line after `offset` (None at the end or on a bad line)."""
    f.seek(offset)
    if offset:
        f.readline()  # the rest of the line `offset` falls in
    line = f.readline()
    return event_time(line.split(b"|", 1)[0].decode("ascii", "replace"), 0.0) if line else None


def start_offset(f: BinaryIO, size: int, since: float) -> int:
    """A byte offset at or before the first line at `since` or later."""
    lo, hi = 0, size
    while hi - lo > BISECT_STOP:
        mid = (lo + hi) // 2
        ts = _time_at(f, mid)
        if ts is not None and ts < since:
            lo = mid
        else:
            hi = mid
    return lo


def read_gap(path: Path, since: float) -> tuple[list[str], int]:
    """The excerpt of queue_log for a gap from `since`, and how many old lines the cap cut."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        offset = start_offset(f, size, since - MARGIN_S)
        f.seek(offset)
        if offset:
            f.readline()
        lines = f.read().decode("utf-8", "replace").splitlines()
    kept = excerpt(lines, since)
    total, cut = sum(len(t) + 1 for t in kept), 0
    while cut < len(kept) and total > MAX_EXCERPT_BYTES:
        total -= len(kept[cut]) + 1
        cut += 1
    return kept[cut:], cut
