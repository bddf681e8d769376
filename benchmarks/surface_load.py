"""The daemon's HTTP and FastAGI listeners under hostile load, black-box, with figures.

Starts a real `acdbridge run` (HTTP and FastAGI on free loopback ports, [ami] at a port where
nothing listens), measures /healthz from a probe process (every 20 ms) with no load first, the
baseline, then during each attack phase, and prints per phase: connections made, answers by
kind, the probe's p50 / p99 / max and its ratio to the baseline, and the daemon's RSS. It asserts
nothing; tests/test_surfaces.py asserts the same properties at smaller volumes with the same
drivers. Run from the repository root, nothing else heavy at the same time:

    nice -n 10 .venv/bin/python benchmarks/surface_load.py [--scale 1.0]

Phases: malformed and oversized requests (every case of the test, repeated), random and mutated
bytes, 500 concurrent idle connections plus byte-a-second clients on each port, 500 concurrent
well-formed HTTP requests (the /healthz p99 tests/test_surfaces.py once asserted), 500 FastAGI
connections at once (over agi.max_sessions), connect-and-close and connect-and-reset storms,
and well-formed calls and /metrics scrapes throughout."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` and the test's drivers without an install

from tests.test_surfaces import (  # noqa: E402
    AGI_CASES,
    AGI_HEADERS,
    HTTP_CASES,
    Daemon,
    Probe,
    agi_call,
    burst,
    exchange,
    hold_open,
    metrics_text,
    random_payloads,
    routed,
    status_of,
    storm,
    trickle,
)

Phase = Callable[[Daemon, float], Awaitable[Counter[str]]]


async def gated(limit: int, coros: Sequence[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with gate:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))


def kinds(answers: list[bytes], port_kind: str) -> Counter[str]:
    if port_kind == "agi":
        return Counter("agi closed, no command" if not a else "agi COMMAND SENT" for a in answers)
    return Counter(f"http {status_of(a) or 'closed'}" for a in answers)


async def with_real_traffic(d: Daemon, attack: Awaitable[Counter[str]]) -> Counter[str]:
    """The attack, with a well-formed call and a /metrics scrape every 0.5 s beside it."""
    done = asyncio.Event()
    counts: Counter[str] = Counter()

    async def real() -> None:
        n = 1000
        while not done.is_set():
            n += 1
            commands = await agi_call(d.agi_port, n)
            # refused: no command at all (over max_sessions: the dialplan's fallback takes the call)
            counts[
                "real calls " + ("routed" if routed(commands) else "broken" if commands else "refused")
            ] += 1
            try:
                ok = "acd_agi_events_total" in await metrics_text(d.http_port)
            except AssertionError:
                ok = False
            counts["/metrics scrapes ok" if ok else "/metrics scrapes FAILED"] += 1
            await asyncio.sleep(0.5)

    task = asyncio.ensure_future(real())
    try:
        counts += await attack
    finally:
        done.set()
        await task
    return counts


async def malformed(d: Daemon, scale: float) -> Counter[str]:
    rounds = max(1, int(20 * scale))
    http = [exchange(d.http_port, data, eof=True) for _ in range(rounds) for _, data, _ in HTTP_CASES]
    agi = [exchange(d.agi_port, data, eof=True) for _ in range(rounds) for _, data in AGI_CASES]
    return kinds(await gated(100, http), "http") + kinds(await gated(100, agi), "agi")


async def random_bytes(d: Daemon, scale: float) -> Counter[str]:
    payloads = list(random_payloads(random.Random(11), int(4000 * scale)))
    http = await gated(100, [exchange(d.http_port, p, eof=True) for p in payloads])
    agi = await gated(100, [exchange(d.agi_port, p, eof=True) for p in payloads])
    return kinds(http, "http") + kinds(agi, "agi")


async def concurrent_and_slow(d: Daemon, scale: float) -> Counter[str]:
    """500 idle connections on HTTP (250 silent, 240 with half a request line), 150 on FastAGI,
    and byte-a-second clients on both: every one is held until the 5 s deadline cuts it."""
    slow = int(10 * scale)
    slow_head = b"GET /healthz HTTP/1.1\r\nX: " + b"z" * 30
    silent, partial, agi, slow_http, slow_agi = await asyncio.gather(
        hold_open(d.http_port, 250),
        hold_open(d.http_port, 240, b"GET /"),
        hold_open(d.agi_port, 150, b"agi_network: yes\n"),
        asyncio.gather(*(trickle(d.http_port, slow_head, 1.0) for _ in range(slow))),
        asyncio.gather(*(trickle(d.agi_port, AGI_HEADERS.format(n=9).encode(), 1.0) for _ in range(slow))),
    )
    counts = kinds(silent, "http") + kinds(partial, "http") + kinds(agi, "agi")
    counts += Counter(
        f"byte-a-second http {status_of(a) or 'closed'} after {round(t)} s" for a, t in slow_http
    )
    counts += Counter(f"byte-a-second agi closed after {round(t)} s" for a, t in slow_agi if not a)
    return counts


async def concurrent_requests(d: Daemon, scale: float) -> Counter[str]:
    """500 well-formed requests at once (half /healthz, half /metrics), as in the test; the
    probe's p99 meanwhile is the figure the test no longer asserts (timing is no test)."""
    healthz = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"  # HTTP/1.1 requires Host
    metrics = b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n"
    counts: Counter[str] = Counter()
    for _ in range(max(1, int(3 * scale))):
        answers = await asyncio.gather(
            *(exchange(d.http_port, metrics if i % 2 else healthz) for i in range(500))
        )
        counts += kinds(list(answers), "http")
    return counts


async def agi_over_cap(d: Daemon, scale: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(max(1, int(3 * scale))):
        closed, held = await burst(d.agi_port, 500, b"agi_network: yes\n", 1.0)
        counts += Counter({"agi refused at once": closed, "agi held (within max_sessions)": held})
    return counts


async def _storms(d: Daemon, n: int, rate: float) -> Counter[str]:
    ports = (d.http_port, d.agi_port)
    made = await asyncio.gather(
        *(storm(port, n, reset=reset, rate=rate) for reset in (False, True) for port in ports)
    )
    return Counter({"http connect+close": made[0], "agi connect+close": made[1],
                    "http connect+reset": made[2], "agi connect+reset": made[3]})  # fmt: skip


async def paced_storms(d: Daemon, scale: float) -> Counter[str]:
    """4 storms of 1,000 connections a second each, for 10 s (at scale 1)."""
    return await _storms(d, int(10_000 * scale), 1000.0)


async def flat_out_storms(d: Daemon, scale: float) -> Counter[str]:
    """4 storms as fast as this client can go: the daemon saturated (about 70 us of CPU each)."""
    return await _storms(d, int(5_000 * scale), 0.0)


PHASES: list[tuple[str, Phase]] = [
    ("malformed and oversized", malformed),
    ("random and mutated bytes", random_bytes),
    ("500 concurrent + byte-a-second", concurrent_and_slow),
    ("500 concurrent HTTP requests", concurrent_requests),
    ("500 FastAGI at once (cap 200)", agi_over_cap),
    ("connect-and-close storms, 4,000/s", paced_storms),
    ("connect-and-close storms, flat out", flat_out_storms),
    ("connect-and-close storms, flat out, again (is memory flat?)", flat_out_storms),
]


def report(probe: Probe, base_p99: float | None, rss: tuple[int, ...], seconds: float) -> None:
    f = probe.figures()
    ratio = f" ({f['p99'] / base_p99:.1f}x baseline)" if base_p99 else ""
    rss_mib = " / ".join(f"{r / 1024:.1f}" for r in rss)
    print(f"  /healthz: {f['n']} probes, {f['unanswered']} unanswered, p50 {f['p50']:.1f} ms, "
          f"p99 {f['p99']:.1f} ms{ratio}, max {f['max']:.1f} ms; RSS before/peak/after {rss_mib} MiB; "
          f"{seconds:.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every phase's volume")
    parser.add_argument("--only", default="", help="run only the phases whose name contains this")
    args = parser.parse_args()
    print(f"surface_load: Python {platform.python_version()}, {os.cpu_count()} CPUs, scale {args.scale}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(Path(tmp))
        d.start()
        try:
            run_phases(d, args.scale, [p for p in PHASES if args.only in p[0]])
        finally:
            code = d.stop()
            log = d.log_path.read_text(errors="replace")
            print(f"daemon exit status {code}; tracebacks in its log: {log.count('Traceback')}; "
                  f"log lines: {log.count(chr(10))}")  # fmt: skip


def run_phases(d: Daemon, scale: float, phases: list[tuple[str, Phase]]) -> None:
    time.sleep(1.0)
    print("baseline (no load, 3 s):")
    with Probe(d.http_port) as base:
        time.sleep(3.0)
    base_p99 = base.figures()["p99"]
    report(base, None, (d.rss_kib(),) * 3, 3.0)
    first_rss = d.rss_kib()
    for name, phase in phases:
        print(f"{name}:")
        before, peak = d.rss_kib(), 0
        started = time.monotonic()
        with Probe(d.http_port) as probe:

            async def watched(p: Phase = phase) -> Counter[str]:
                nonlocal peak
                task = asyncio.ensure_future(with_real_traffic(d, p(d, scale)))
                while not task.done():
                    peak = max(peak, d.rss_kib())
                    await asyncio.wait([task], timeout=0.1)
                return task.result()

            counts = asyncio.run(watched())
        seconds = time.monotonic() - started
        time.sleep(1.0)
        for kind, n in sorted(counts.items()):
            print(f"  {n:>7,}  {kind}")
        report(probe, base_p99, (before, peak, d.rss_kib()), seconds)
    print(f"RSS: {first_rss / 1024:.1f} MiB after the baseline, {d.rss_kib() / 1024:.1f} MiB at the end")


if __name__ == "__main__":
    main()
