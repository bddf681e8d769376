"""One reconnect loop for every outbound link (AMI, MQTT): capped exponential backoff with
jitter, reset after a connection that lasted, errors logged and counted, never raised."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger("acdbridge.reconnect")
# a session this long (and max_s) was a real connection, if it connected at all: a PBX that
# takes a second to refuse a login must not reset the backoff or make the error news again
GOOD_SESSION_S = 1.0


class LinkStats(Protocol):
    reconnects: int
    last_error: str


def backoff_delay(attempt: int, min_s: float, max_s: float, jitter: float = 1.0) -> float:
    """min_s * 2**attempt, capped at max_s, times jitter (0.5-1.0 from the caller).

    The exponent is capped before the power is taken: 2.0**1024 overflows a float, which after
    1,024 failures in a row (hours of PBX outage) used to kill the daemon."""
    if min_s <= 0 or max_s <= min_s:
        return max(0.0, max_s) * jitter
    ceiling = math.ceil(math.log2(max_s / min_s))  # the first exponent that reaches max_s
    return min(max_s, min_s * 2.0 ** min(max(attempt, 0), ceiling)) * jitter


async def keep_connected(
    name: str,
    session: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    errors: tuple[type[BaseException], ...],
    stats: LinkStats,
    min_s: float,
    max_s: float,
    *,
    level: str = "warning",
    **where: Any,
) -> None:
    """Run `session` until `stop` is set, reconnecting after each failure or lost link.

    A failure is logged at `level` when its text changes (a refused login, then a refused
    connection...), quietly otherwise: an outage of hours is a few lines, not one per attempt."""
    attempt = 0
    reported = ""
    while not stop.is_set():
        started = time.monotonic()
        connections = getattr(stats, "connections", None)  # counted by links that know (AMI)
        try:
            await session()
            reported = ""  # a clean end (or a lost link after a good session): the next error is news
        except errors as exc:
            stats.last_error = f"{type(exc).__name__}: {exc}"
            if stats.last_error != reported:
                reported = stats.last_error
                getattr(log, level)(f"{name}_connection_failed", error=stats.last_error, **where)
            else:
                log.debug(f"{name}_connection_failed", error=stats.last_error, **where)
        if stop.is_set():
            break
        connected = connections is None or getattr(stats, "connections", None) != connections
        if connected and time.monotonic() - started > max(max_s, GOOD_SESSION_S):
            attempt = 0  # it was a good connection: start the backoff again
            reported = ""
        delay = backoff_delay(attempt, min_s, max_s, random.uniform(0.5, 1.0))
        attempt += 1
        stats.reconnects += 1
        log.debug(f"{name}_reconnect_wait", seconds=round(delay, 2), attempt=attempt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
