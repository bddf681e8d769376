"""Replay throughput: panoramisk's parsing against acdbridge's parser, tracker and replay path.

Prints figures; it asserts nothing about timing. Run from the repository root:

    .venv/bin/python benchmarks/replay_bench.py [--quick | --events N]

The input is synthesised in memory from the recorded traces in tests/fixtures/traces: their
event frames repeated with fresh ids and shifted timestamps, on one long AMI session."""

from __future__ import annotations

import argparse
import gc
import gzip
import io
import os
import platform
import re
import shlex
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` even without the editable install

from panoramisk.ami_protocol import AMIProtocol  # noqa: E402

from acdbridge.core.ami import FrameParser  # noqa: E402
from acdbridge.core.calls import CallTracker  # noqa: E402
from acdbridge.core.pipeline import Pipeline, Record  # noqa: E402
from acdbridge.replay import dumps  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "traces"
TRACE_NAMES = ("mixed.ami.gz", "edge.ami", "smoke.ami", "sip_hold.ami")
SEP = b"\r\n\r\n"
EVENT = b"Event: "
CHUNK = 1 << 16  # 64 KiB, as `acdbridge replay` reads
RUNS = 3
GAP_S = 60  # between one copy (or trace) and the next, so no wrap-up or grace spans two copies
ID_PREFIX = re.compile(rb"acdlab-(?=\d+\.\d+)")  # Uniqueid, Linkedid, DestUniqueid, Transferee...
TS_SECONDS = re.compile(rb"(?<=\r\nTimestamp: )\d+(?=\.)")  # whole seconds; micros stay as recorded


def shift_seconds(frames: bytes, by: int) -> bytes:
    return TS_SECONDS.sub(lambda m: b"%d" % (int(m[0]) + by), frames)


def read_trace(name: str) -> list[bytes]:
    raw = (TRACES / name).read_bytes()
    return (gzip.decompress(raw) if name.endswith(".gz") else raw).split(SEP)


def synthesise(min_events: int) -> tuple[bytes, int]:
    """Whole copies of the traces' event frames until there are min_events. The session's own
    responses (login, GetConfig, Goodbye) come once, at the start and end, as on one connection."""
    layout: list[bytes] = []  # one copy: the traces back to back on one clock
    head: list[bytes] = []
    tail: list[bytes] = []
    banner = b""
    start: int | None = None
    cursor = per_copy = 0
    for name in TRACE_NAMES:
        frames = read_trace(name)
        banner, _, frames[0] = frames[0].partition(b"\r\n")
        first = next(i for i, f in enumerate(frames) if f.startswith(EVENT))
        events = [f for f in frames if f.startswith(EVENT)]
        per_copy += len(events)
        if not head:
            head = frames[:first]
            tail = [f for f in frames[first:] if f and not f.startswith(EVENT)]
        seconds = [int(s) for s in TS_SECONDS.findall(SEP.join(events))]
        start = min(seconds) if start is None else start
        offset = max(0, cursor - min(seconds))
        layout.append(shift_seconds(SEP.join(events) + SEP, offset))
        cursor = max(seconds) + 1 + offset + GAP_S
    base, period = b"".join(layout), cursor - (start or 0)
    copies = -(-min_events // per_copy)
    body = [shift_seconds(ID_PREFIX.sub(b"c%d-" % k, base), k * period) for k in range(copies)]
    data = banner + b"\r\n" + SEP.join(head) + SEP + b"".join(body) + SEP.join(tail) + SEP
    return data, copies * per_copy


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Factory:
    """The parts of panoramisk's Manager that AMIProtocol reads; dispatch only counts."""

    save_stream = None
    forgetable_actions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.awaiting_actions: deque[object] = deque()
        self.events = 0

    def dispatch(self, message: object) -> None:
        self.events += 1

    def connection_lost(self, exc: object) -> None:
        pass


def run_panoramisk(chunks: list[bytes]) -> str:
    protocol = AMIProtocol()
    protocol.connection_made(_NullTransport())
    protocol.factory, protocol.encoding = _Factory(), "utf8"
    for chunk in chunks:
        protocol.data_received(chunk)
    return f"{protocol.factory.events:,} events dispatched"


def run_parser(chunks: list[bytes]) -> str:
    parser = FrameParser()
    kept = sum(len(parser.feed(chunk)) for chunk in chunks)
    return f"{kept:,} messages kept, {parser.stats.dropped:,} dropped unparsed"


def run_tracker(chunks: list[bytes]) -> str:
    parser, tracker = FrameParser(), CallTracker()
    for chunk in chunks:
        for msg in parser.feed(chunk):
            tracker.feed(msg)
    tracker.finish()
    return f"{len(tracker.finished):,} visits, {len(tracker.active):,} still active"


def run_pipeline(chunks: list[bytes]) -> str:
    out = io.StringIO()

    def write(record: Record) -> None:
        out.write(dumps(record) + "\n")

    pipeline = Pipeline(on_visit=write)
    for chunk in chunks:
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return f"{out.tell():,} characters of JSON lines"


def best_seconds(run: Callable[[list[bytes]], str], chunks: list[bytes]) -> tuple[float, str]:
    best, note = float("inf"), ""
    for _ in range(RUNS):
        gc.collect()  # no garbage from the last run collected inside this one
        started = time.perf_counter()
        note = run(chunks)
        best = min(best, time.perf_counter() - started)
    return best, note


def bytes_per_active_visit(join_frame: bytes, count: int) -> tuple[float, int]:
    """Callers still waiting are the tracker's only unbounded state: measure one, as parsed."""
    data = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        ID_PREFIX.sub(b"m%d-" % i, join_frame) + SEP for i in range(count)
    )
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parser, tracker = FrameParser(), CallTracker()
    for chunk in chunks:
        for msg in parser.feed(chunk):
            tracker.feed(msg)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count, len(tracker.active)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="event frames to synthesise")
    ap.add_argument("--quick", action="store_const", const=100_000, dest="events", help="100,000 events")
    args = ap.parse_args()
    print(f"Python {platform.python_version()} on {platform.platform()}, os.cpu_count() = {os.cpu_count()}")

    started = time.perf_counter()
    data, events = synthesise(args.events)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    took = time.perf_counter() - started
    size = f"{len(data) / 1e6:,.1f} MB in {len(chunks):,} chunks of 64 KiB"
    print(f"synthesised {events:,} event frames, {size}, in {took:.1f} s")
    print(f"each figure: the best of {RUNS} runs; events/s = {events:,} event frames / seconds\n")

    paths = [
        ("panoramisk 1.4 `AMIProtocol.data_received` (baseline)", run_panoramisk),
        ("acdbridge `FrameParser.feed`", run_parser),
        ("`FrameParser` + `CallTracker`", run_tracker),
        ("`Pipeline` + JSON lines (the replay path)", run_pipeline),
    ]
    rows: list[tuple[str, float, float]] = []
    for label, run in paths:
        seconds, note = best_seconds(run, chunks)
        rows.append((label, seconds, events / seconds))
        print(f"{label}: {seconds:.3f} s, {events / seconds:,.0f} events/s ({note})")
    del chunks, data

    join_frame = next(f for f in read_trace(TRACE_NAMES[0]) if f.startswith(b"Event: QueueCallerJoin\r\n"))
    per_visit, active = bytes_per_active_visit(join_frame, 10_000)
    print(f"memory per active (waiting) call: {per_visit:,.0f} bytes ({active:,} active, tracemalloc)\n")

    baseline = rows[0][2]
    print("| Path | Seconds | Events/s | vs panoramisk |\n|---|---:|---:|---:|")
    for label, seconds, rate in rows:
        print(f"| {label} | {seconds:.2f} | {rate:,.0f} | {rate / baseline:.2f}x |")
    print(f"\nMemory per active call: {per_visit:,.0f} bytes. {events:,} event frames, best of {RUNS} runs.")
    print(f"Command: `{shlex.join(sys.orig_argv)}`")


if __name__ == "__main__":
    main()
