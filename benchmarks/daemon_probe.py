"""`acdbridge run` with a loop-lateness ticker, for benchmarks/scale_load.py (never in production).

    python benchmarks/daemon_probe.py --ticks OUT.json [--scan] run --config acdbridge.toml

The ticker is one more task on the daemon's event loop: it sleeps 5 ms, again and again, and notes
how late each wake-up came (time.monotonic, the same clock as the benchmark's on Linux). Any
stretch in which the loop handles no event shows as one late tick. At exit it writes
{"t": [wake-up times], "late": [seconds late]} to OUT.json.

--scan runs the code path before incremental KPI windows: every window by a scan of every held
record (KpiEngine.over_scan, the reference), and no buckets kept (the baseline of scale_load.py).
The acdbridge imported is the one on PYTHONPATH (the tree under test)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

TICK_S = 0.005


class NoBuckets:
    """WindowIndex that keeps nothing: with --scan the daemon pays nothing for buckets."""

    def __init__(self, *_: Any) -> None:
        pass

    def add(self, *_: Any) -> None:
        pass

    def removed(self, *_: Any) -> None:
        pass


def full_scan() -> None:
    from acdbridge.core import kpi

    def over(self: kpi.KpiEngine, start: float, end: float) -> kpi.Kpis:
        if end - start > self.retention_s:
            raise ValueError(f"window longer than the {self.retention_s:g} s the engine keeps")
        return self.over_scan(start, end)

    kpi.KpiEngine.over = over  # type: ignore[method-assign]
    kpi.WindowIndex = NoBuckets  # type: ignore[attr-defined,assignment]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=Path, required=True)
    ap.add_argument("--scan", action="store_true")
    args, rest = ap.parse_known_args()
    if args.scan:
        full_scan()
    times, late = array("d"), array("d")

    async def ticker() -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(TICK_S)
            t1 = time.monotonic()
            times.append(t1)
            late.append(t1 - t0 - TICK_S)

    real_run = asyncio.run

    def run(main: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        async def with_ticker() -> Any:
            task = asyncio.create_task(ticker(), name="bench-ticker")
            try:
                return await main
            finally:
                task.cancel()

        return real_run(with_ticker(), **kw)

    asyncio.run = run
    from acdbridge.cli import main as acdbridge_main

    try:
        return acdbridge_main(rest)
    finally:
        args.ticks.write_text(json.dumps({"t": times.tolist(), "late": late.tolist()}))


if __name__ == "__main__":
    sys.exit(main())
