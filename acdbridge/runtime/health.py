"""The daemon's own health: event-loop lag, and one snapshot of every internal counter for
/metrics (rendered by adapters/metrics.daemon_families) and for systemd's STATUS= line.

The loop-lag task sleeps a fixed period and records how late it woke: a callback that blocks
the loop (a slow gauge pass, a big frame) shows as lag, the way a watchdog would see it."""

from __future__ import annotations

import asyncio
import contextlib

from acdbridge.core.tallies import Histogram

LAG_PERIOD_S = 0.25
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag:
    def __init__(self, period_s: float = LAG_PERIOD_S) -> None:
        self.period_s = period_s
        self.histogram = Histogram(LAG_BUCKETS)
        self.last_s = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period_s)
            if stop.is_set():
                return
            self.last_s = max(0.0, loop.time() - started - self.period_s)
            self.histogram.observe(self.last_s)


def status_line(ami_connected: bool, last_error: str, calls: int, waiting: int) -> str:
    """systemd's STATUS=: what `systemctl status` shows an operator at a glance."""
    link = "AMI connected" if ami_connected else f"AMI down ({last_error or 'connecting'})"
    return f"{link}; {calls} calls in progress, {waiting} waiting"
