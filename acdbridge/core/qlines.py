"""Asterisk's queue_log as lines: one parsed line, and the excerpt of a gap that the journal keeps
(so a replay rebuilds the same visits). Sans-IO; core/backfill.py turns lines into visits.
The line format is Asterisk 22's apps/app_queue.c: time|callid|queue|agent|EVENT|data1|...

A bad line is skipped and counted (the core's rules, core/values.py), never raised."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from acdbridge.core.values import MAX_VALUE_CHARS, Problems, event_time

# A visit that ended in the gap may have started long before it: read queue_log from this far
# before `since` (a day: no queue call lasts longer; core/limits.py drops callers at that age).
MARGIN_S = 86_400.0
MAX_LINE_CHARS = 4096  # a real line is under 300 characters; anything longer is not queue_log
PROBLEM_KIND = "queue_log_malformed"  # with timestamp_out_of_range, not_ascii_digits, value_too_long


@dataclass(frozen=True)
class QueueLogLine:
    ts: float
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def parse_line(text: str, problems: Problems) -> QueueLogLine | None:
    """One queue_log line, or None (counted in `problems` unless it is blank)."""
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    if len(text) > MAX_LINE_CHARS:
        problems.count(PROBLEM_KIND, f"a line of {len(text)} characters")
        return None
    parts = text.split("|")
    if len(parts) < 5 or not parts[1] or not parts[4]:
        problems.count(PROBLEM_KIND, f"not a queue_log line: {text[:60]!r}")
        return None
    ts = event_time(parts[0], 0.0)
    if ts is None:
        problems.count("timestamp_out_of_range", f"queue_log time {parts[0][:40]!r}")
        return None
    for i, part in enumerate(parts):
        if len(part) > MAX_VALUE_CHARS:
            problems.count("value_too_long", f"queue_log field of {len(part)} characters")
            parts[i] = part[:MAX_VALUE_CHARS]
    return QueueLogLine(ts, parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def excerpt(lines: Iterable[str], since: float) -> list[str]:
    """What reconstruct() needs of queue_log lines read from MARGIN_S before `since`: every line
    from the second `since` falls in on, and the earlier lines of the calls that have one of those
    (their ENTERQUEUE and ring attempts), in file order. A day of a big centre's queue_log is tens
    of MB; the excerpt of a gap is what the journal keeps, so a replay rebuilds the same visits."""
    lo = float(int(since))
    before: dict[str, list[tuple[int, str]]] = {}
    after: list[tuple[int, str]] = []
    wanted: set[str] = set()
    for n, text in enumerate(lines):
        head = text.split("|", 2)
        ts = event_time(head[0], 0.0) if len(head) == 3 else None
        if ts is None:
            continue
        if ts >= lo:
            after.append((n, text))
            wanted.add(head[1])
        else:
            before.setdefault(head[1], []).append((n, text))
    earlier = [line for callid in wanted for line in before.get(callid, ())]
    return [text for _, text in sorted(earlier + after)]


def lines_of(data: bytes) -> list[str]:
    """An excerpt as the journal keeps it (UTF-8, a line each) back into lines."""
    return data.decode("utf-8", "replace").splitlines()
