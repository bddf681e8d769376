"""The journal's cost on the live feed path, and the time to recover from a checkpoint + tail.

Prints figures and ratios from one run; asserts nothing about timing. From the repository root:

    .venv/bin/python benchmarks/journal_bench.py [--events N] [--quick]

1. Feed path: a recorded trace (benchmarks/replay_bench.py's synthesis, fresh ids per copy) cut
   into reads of a given size, each read parsed and fed to the Pipeline with its receive time,
   as the live AMI adapter does; then the same with the journal: each read appended (framed,
   CRC'd) before parsing, a checkpoint's mark every 5,000 reads (the daemon asks for one every
   5 s, so this is many more than live), and the writer thread writing and fsyncing
   every 50 ms to a real disk. CPU time is the process's (every thread, the writer's included).
2. Recovery: the daemon's start after a SIGKILL: load the checkpoint, replay a journal tail of N
   events through the live path, the re-produced visits written to a real SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from replay_bench import synthesise  # noqa: E402

from acdbridge.adapters.journal import CONNECT, Journal, mark_in, read_records  # noqa: E402
from acdbridge.adapters.store import SqliteStore  # noqa: E402
from acdbridge.core.ami import FrameParser  # noqa: E402
from acdbridge.core.kpi import KpiConfig  # noqa: E402
from acdbridge.core.pipeline import Pipeline  # noqa: E402
from acdbridge.runtime import checkpoint  # noqa: E402
from acdbridge.runtime.engine import Engine  # noqa: E402
from acdbridge.runtime.recovery import replay_tail, restore  # noqa: E402
from acdbridge.runtime.track import Event, to_store, track  # noqa: E402
from acdbridge.runtime.writer import StoreWriter  # noqa: E402

T0 = 1.7e9


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def feed(chunks: list[bytes], journal: Journal | None, daemon: bool) -> tuple[float, float, int]:
    """The live path over `chunks`: (CPU s, wall s, visits). `daemon`: through the events queue
    and the tracker task (track.feed_one, call ids bound per event) as in the daemon; else the
    parser and Pipeline.feed alone."""
    engine = Engine(KpiConfig())
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_feed(chunks, journal, engine, daemon))
    return time.process_time() - cpu, time.perf_counter() - wall, len(engine.records("visit"))


async def _feed(chunks: list[bytes], journal: Journal | None, engine: Engine, daemon: bool) -> None:
    parser, wanted = FrameParser(), False
    events: asyncio.Queue[Event] = asyncio.Queue()
    tracker = asyncio.create_task(track(events, engine, _nothing, lambda m, t: None)) if daemon else None
    if journal is not None:
        journal.open()
        journal.append(b"", T0, CONNECT)
    for i, chunk in enumerate(chunks):
        ts = T0 + i * 1e-3
        at = journal.append(chunk, ts) if journal is not None else None
        for msg in parser.feed(chunk):
            if tracker is not None:
                events.put_nowait((msg, ts))
            else:
                engine.pipeline.feed(msg, ts)
        wanted = wanted or i % 5000 == 0
        if (
            wanted
            and journal is not None
            and at is not None
            and (mark := mark_in(chunk, at, journal.position))
        ):
            wanted = False
            if tracker is not None:
                events.put_nowait(mark)
        if tracker is not None and i % 64 == 0:
            await asyncio.sleep(0)  # the reads come from the loop: let the tracker run between them
    if tracker is not None:
        events.put_nowait(None)
        await tracker
    if journal is not None:
        journal.close()  # the last write and fsync are part of the cost


def _nothing(_event: str) -> None:
    pass


def bench_feed(data: bytes, events: int, size: int, workdir: Path, daemon: bool) -> Path:
    chunks = split(data, size)
    base = min((feed(chunks, None, daemon) for _ in range(3)), key=lambda r: r[0])
    runs = []
    for k in range(3):
        directory = workdir / f"journal-{size}-{daemon}-{k}"
        # replayed flat out (50x a surge's rate) the loop starves the writer thread of the GIL:
        # a buffer large enough that nothing is dropped, so both runs do the same work
        j = Journal(directory, fsync_interval_s=0.05, max_buffer_bytes=1 << 31)
        runs.append((feed(chunks, j, daemon), j, directory))
    (cpu, wall, visits), j, best_dir = min(runs, key=lambda r: r[0][0])
    assert visits == base[2] and j.stats.dropped_records == 0
    path = "the daemon's path (events queue + tracker task)" if daemon else "parser + Pipeline.feed only"
    print(f"{path}, reads of {size} B ({len(chunks):,} reads, {events:,} events, {visits:,} visits):")
    print(f"  without journal  CPU {base[0]:6.2f} s   {events / base[0]:>9,.0f} events/CPU-s")
    print(f"  with journal     CPU {cpu:6.2f} s   {events / cpu:>9,.0f} events/CPU-s   "
          f"wall {wall:.2f} s, {j.stats.fsyncs} fsyncs, {j.stats.bytes / 1e6:.0f} MB")  # fmt: skip
    print(f"  journal adds {100 * (cpu / base[0] - 1):+.1f} % CPU  (ratio {cpu / base[0]:.3f}); "
          f"at 3,500 events/s that is {3500 * (cpu - base[0]) / events * 100:.2f} % of one core")  # fmt: skip
    return best_dir


def bench_recovery(directory: Path, events: int, workdir: Path) -> None:
    """Recovery from a checkpoint at the journal's start: the whole journal is the tail."""
    start = next(read_records(directory)).at
    first = checkpoint.encode(checkpoint.Checkpoint(0.0, start, start, 0, T0, Pipeline().snapshot(), {}, {}))
    path = workdir / "checkpoint.json"
    checkpoint.save(path, first)
    store = SqliteStore(workdir / "recovery.sqlite")

    async def recover() -> tuple[float, int, int]:
        started = time.perf_counter()
        cp = checkpoint.load(path)
        assert cp is not None
        writer = StoreWriter(store, 50_000)
        engine = Engine(KpiConfig(), out=to_store(writer))
        restore(engine.pipeline, cp)
        done = await replay_tail(engine, directory, cp, writer)
        return time.perf_counter() - started, done.messages, writer.stats.visits_stored

    seconds, messages, stored = asyncio.run(recover())
    again, _, stored_again = asyncio.run(recover())  # a second crash: the store has them all
    store.close()
    print(f"recovery, checkpoint + a journal tail of {events:,} events ({messages:,} kept messages):")
    print(f"  {seconds:.2f} s with {stored:,} visits written ({events / seconds:,.0f} events/s); "
          f"{again:.2f} s again with every visit already stored ({stored_again:,} new)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--quick", action="store_true", help="50,000 events")
    args = ap.parse_args()
    events = 50_000 if args.quick else args.events
    data, events = synthesise(events)
    workdir = Path(tempfile.mkdtemp(prefix="journal-bench-", dir="/var/tmp"))
    try:
        print(f"{events:,} AMI events, {len(data) / 1e6:.0f} MB; journal on {workdir} (a real disk)")
        for daemon in (False, True):
            for size in (512, 4096):
                best = bench_feed(data, events, size, workdir, daemon)
        bench_recovery(best, events, workdir)
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
