"""One reconnect loop for every outbound link (AMI, MQTT): capped exponential backoff with
jitter, reset after a connection that lasted, errors logged and counted, never raised."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger("acdbridge.reconnect")


class LinkStats(Protocol):
    reconnects: int
    last_error: str


async def keep_connected(
    name: str,
    session: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    errors: tuple[type[BaseException], ...],
    stats: LinkStats,
    min_s: float,
    max_s: float,
    **where: Any,
) -> None:
    """Run `session` until `stop` is set, reconnecting after each failure or lost link."""
    attempt = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await session()
        except errors as exc:
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(f"{name}_connection_failed", error=stats.last_error, **where)
        if stop.is_set():
            break
        if time.monotonic() - started > max_s:
            attempt = 0  # it was a good connection: start the backoff again
        delay = min(max_s, min_s * 2**attempt) * random.uniform(0.5, 1.0)
        attempt += 1
        stats.reconnects += 1
        log.info(f"{name}_reconnect_wait", seconds=round(delay, 2), attempt=attempt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
