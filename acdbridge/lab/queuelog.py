"""Asterisk's queue_log: its own record of every queue call, the ground truth the lab and the
tests check acdbridge against. Format: epoch|callid|queue|agent|event|data1|data2|..."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QueueLogEntry:
    time: float
    callid: str  # the caller channel's Uniqueid
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def parse_lines(lines: Iterable[str]) -> Iterator[QueueLogEntry]:
    """Parse queue_log lines; a line that is not a queue_log record is skipped."""
    for line in lines:
        parts = line.rstrip("\r\n").split("|")
        if len(parts) < 5:
            continue
        try:
            when = float(parts[0])
        except ValueError:
            continue
        yield QueueLogEntry(when, parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def read_lines(path: Path, since: float = 0.0) -> list[str]:
    """The raw lines written at or after `since` (epoch seconds; queue_log has whole seconds)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [
        line for line, e in zip(text.splitlines(), _times(text.splitlines()), strict=True) if e >= int(since)
    ]


def _times(lines: list[str]) -> Iterator[float]:
    for line in lines:
        head = line.split("|", 1)[0]
        yield float(head) if head.isdigit() else -1.0


def read(path: Path, since: float = 0.0) -> list[QueueLogEntry]:
    return list(parse_lines(read_lines(path, since)))


def event_counts(entries: Iterable[QueueLogEntry]) -> Counter[str]:
    return Counter(e.event for e in entries if e.callid != "NONE")
