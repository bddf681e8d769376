"""Supervised background tasks: one bug in a periodic task costs a restart, not the daemon.

Every background loop of the daemon (metrics, wallboard, MQTT, the store writer, member sync,
FastAGI...) runs inside `supervise`, in the daemon's one TaskGroup. An exception is logged with
the task's name and traceback, counted per task (`acd_task_restarts_total{task}`), and the task
starts again after a capped, jittered backoff. Without this, one OverflowError in the metrics
task ended the TaskGroup and with it the daemon. CancelledError is not an Exception: it goes
through untouched, so a stop or a TaskGroup cancel still works."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from acdbridge.adapters.reconnect import backoff_delay

log = structlog.get_logger("acdbridge.supervise")
MIN_S = 0.5
MAX_S = 30.0
AFTER_STOP = 3  # restarts still allowed once stopping (to finish draining), without waiting


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    restarts: dict[str, int],
    *,
    min_s: float = MIN_S,
    max_s: float = MAX_S,
) -> None:
    """Run `body` until it returns on its own (they all return once `stop` is set)."""
    attempt, left_after_stop = 0, AFTER_STOP
    while True:
        started = time.monotonic()
        try:
            await body()
            return
        except Exception:
            restarts[name] = restarts.get(name, 0) + 1
            log.exception("task_failed", task=name, restarts=restarts[name])
        if stop.is_set():
            left_after_stop -= 1
            if left_after_stop < 0:
                log.error("task_abandoned", task=name, reason="failing while the daemon stops")
                return
            continue
        if time.monotonic() - started > max_s:
            attempt = 0  # it ran well for a while: this is a new failure, not a failing streak
        delay = backoff_delay(attempt, min_s, max_s, random.uniform(0.5, 1.0))
        attempt += 1
        log.info("task_restart_wait", task=name, seconds=round(delay, 2))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def every(period_s: float, stop: asyncio.Event, tick: Callable[[], None]) -> None:
    """Call `tick` now and every `period_s` until `stop` (a crash in tick reaches the supervisor)."""
    while not stop.is_set():
        tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
