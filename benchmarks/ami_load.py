"""The real daemon under a fake PBX: CPU time with and without the AMI journal, and every visit stored.

Prints figures and ratios from one run; asserts nothing about timing. From the repository root:

    nice -n 10 .venv/bin/python benchmarks/ami_load.py [--rate 3500] [--seconds 60] [--runs 3] [--quick]

A fake AMI server on loopback (benchmarks/fake_pbx.py) logs the daemon in and answers its
resync as Asterisk 22 does, then replays the event frames of the recorded lab traces
(tests/fixtures/traces) as N concurrent copies, each with its own ids (every `acdlab-<n>.<n>`
id and every Local/ and PJSIP/ channel and interface gets a per-copy prefix, so each copy has its
own calls and agents), the copies spread evenly over one period of the traces' clock and merged
in time order. The frames are sent at a fixed event rate (`--rate`, in batches every 10 ms) or,
with `--rate 0`, at the traces' own pace; each frame's Timestamp is its send time.

The daemon is the real one (`acdbridge run` as a subprocess, no [agi] section), in pairs (`--runs`,
3 by default): one with the journal on, one off, each with a fresh store and its own fake PBX,
both at once under the same load (so both see the same machine, whatever else runs on it;
`--serial`: one after the other), the lab's lock (/tmp/acdbridge-lab.lock) held for each pair.
Its CPU time (utime + stime of /proc/PID/stat, every thread; the event loop's thread apart) is
taken from the first event sent until it is idle again after the last; each pair gives a ratio,
and the figure is their median. Then
the wrap-ups still running expire on the daemon's clock, it gets a SIGTERM, and the visits in
its SQLite store are counted against those `acdbridge.replay.replay_records` finds in the very
bytes the server sent on that connection."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fake_pbx import (  # noqa: E402
    BANNER,
    LAB_LOCK,
    FakePbx,
    daemon_toml,
    free_port,
    getconfig_reply,
    lab_lock,
    longest_wrapup,
    stream,
)  # fmt: skip
from replay_bench import EVENT, GAP_S, ID_PREFIX, SEP, TRACE_NAMES, read_trace  # noqa: E402

from acdbridge.replay import replay_records  # noqa: E402

DAEMON = ROOT / ".venv" / "bin" / "acdbridge"
JOURNAL_EXTRA = {"toml": ""}  # --fsync-ms, --checkpoint-s: what the journal's parts cost
PROFILE = {"on": False}  # --profile: the daemon under cProfile (its event loop's thread)
CHANNEL_PREFIX = re.compile(rb"(?<=Local/)|(?<=PJSIP/)")  # channels and interfaces, per copy
TIMESTAMP_FIRST = re.compile(rb"\r\nTimestamp: (\d+(?:\.\d+)?)")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
IDLE_CPU_S = 0.02  # the daemon is idle again once it uses less than this in IDLE_SAMPLE_S
IDLE_SAMPLE_S = 0.5
IDLE_TIMEOUT_S = 60.0
WRAP_MARGIN_S = 6.0  # beyond the longest wrapuptime: AgentComplete grace (2 s), the tick's margin (2 s)


# -- the load ------------------------------------------------------------------------------------
def one_copy() -> tuple[list[tuple[float, bytes]], float]:
    """The traces' event frames back to back on one clock (GAP_S apart, as replay_bench lays them
    out): [(trace time, frame)], and the period of one copy."""
    out: list[tuple[float, bytes]] = []
    cursor = 0.0
    for name in TRACE_NAMES:
        events = [f for f in read_trace(name) if f.startswith(EVENT)]
        times = [float(m[1]) if (m := TIMESTAMP_FIRST.search(f)) else math.nan for f in events]
        known = [t for t in times if not math.isnan(t)]
        first, last, prev = min(known), max(known), min(known)
        for t, frame in zip(times, events, strict=True):
            prev = prev if math.isnan(t) else t  # a frame without a Timestamp goes with the last one
            out.append((cursor + prev - first, frame + SEP))
        cursor += last - first + GAP_S
    return out, cursor


def load(copies: int) -> tuple[list[bytes], list[float], int]:
    """N copies with their own ids, spread evenly over one period and merged in time order:
    ([frame], [its trace time, from the first frame], events per copy)."""
    base, period = one_copy()
    stagger = period / copies

    def copy(k: int) -> Iterator[tuple[float, int, bytes]]:
        prefix = b"c%d-" % k
        for t, frame in base:
            yield t + k * stagger, k, CHANNEL_PREFIX.sub(prefix, ID_PREFIX.sub(prefix, frame))

    merged = list(heapq.merge(*(copy(k) for k in range(copies))))
    t0 = merged[0][0]
    return [f for _, _, f in merged], [t - t0 for t, _, _ in merged], len(base)


# -- the daemon ------------------------------------------------------------------------------------
def cpu_seconds(pid: int, task: int | None = None) -> float:
    where = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main_thread_cpu(pid: int) -> float:
    """The event loop's thread alone (the rest: the journal writer, the store's and fsync's
    to_thread workers)."""
    return cpu_seconds(pid, pid)


@dataclass
class Run:
    journal: bool
    events: int = 0
    send_s: float = 0.0
    cpu_s: float = 0.0
    loop_cpu_s: float = 0.0  # of cpu_s, the event loop's thread
    idle_wait_s: float = 0.0
    stored: int = -1
    expected: int = -1
    exit_status: int | None = None
    notes: list[str] = field(default_factory=list)


async def wait_idle(pid: int) -> float:
    started = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - started < IDLE_TIMEOUT_S:
        await asyncio.sleep(IDLE_SAMPLE_S)
        now = cpu_seconds(pid)
        if now - last < IDLE_CPU_S:
            break
        last = now
    return time.monotonic() - started


def start_daemon(work: Path, ami_port: int, journal: bool) -> tuple[subprocess.Popen[bytes], IO[str]]:
    work.mkdir(parents=True)
    config = work / "acdbridge.toml"
    config.write_text(
        daemon_toml(work, ami_port, free_port())
        + f"[journal]\nenabled = {'true' if journal else 'false'}\n"
        + (f'dir = "{work / "journal"}"\n{JOURNAL_EXTRA["toml"]}' if journal else "")
    )
    log = (work / "daemon.log").open("w")
    profile = [sys.executable, "-m", "cProfile", "-o", str(work / "profile.out")] if PROFILE["on"] else []
    proc = subprocess.Popen(
        [*profile, str(DAEMON), "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    return proc, log


def collect(result: Run, work: Path, sent: list[bytes]) -> None:
    """Visits stored against visits the same bytes give through replay; what the log says."""
    text = (work / "daemon.log").read_text(errors="replace")
    if (logins := text.count("ami_connected")) != 1:
        result.notes.append(f"{logins} AMI logins (expected 1)")
    problems: dict[str, int] = {}
    for line in text.splitlines():
        if '"level": "warning"' in line or '"level": "error"' in line:
            event = m[1] if (m := re.search(r'"event": "([^"]*)"', line)) else line[:80]
            problems[event] = problems.get(event, 0) + 1
    if problems:
        result.notes.append(f"warnings and errors in the daemon's log: {problems}")
    stop = [line for line in text.splitlines() if "daemon_stop" in line]
    if stop:
        keep = ("events_dropped", "records_dropped", "records_lost", "store_write_errors", "ami_reconnects",
                "ami_messages", "journal")  # fmt: skip
        figures = {k: v for k, v in json.loads(stop[-1]).items() if k in keep}
        result.notes.append(f"daemon_stop: {figures}")
    with contextlib.closing(sqlite3.connect(work / "store.sqlite")) as db:
        result.stored = int(db.execute("SELECT COUNT(*) FROM visits").fetchone()[0])
    trace = work / "sent.ami"
    trace.write_bytes(b"".join(sent))
    result.expected = len(replay_records(trace))


async def run_daemon(frames: list[bytes], rate: float, times: list[float], journal: bool, work: Path) -> Run:
    result = Run(journal)
    pbx = FakePbx()
    await pbx.start()
    proc, log = await asyncio.to_thread(start_daemon, work, pbx.port, journal)
    try:
        try:
            session = await asyncio.wait_for(pbx.resynced(), 2 * START_TIMEOUT_S)
        except TimeoutError:
            log.flush()
            raise RuntimeError(f"the daemon did not log in and resync (log: {work / 'daemon.log'})") from None
        await asyncio.sleep(1.0)  # start-up settles (its first checkpoint)
        cpu0, loop0 = cpu_seconds(proc.pid), main_thread_cpu(proc.pid)
        result.send_s = await stream(session, frames, rate, times)
        result.events = len(frames)
        result.idle_wait_s = await wait_idle(proc.pid)
        result.cpu_s = cpu_seconds(proc.pid) - cpu0
        result.loop_cpu_s = main_thread_cpu(proc.pid) - loop0
        await asyncio.sleep(longest_wrapup() + WRAP_MARGIN_S)  # wrap-ups end on the daemon's clock
        result.notes.append(f"actions answered: {dict(sorted(session.actions.items()))}")
        proc.send_signal(signal.SIGTERM)
        result.exit_status = await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        log.close()
        await pbx.close()
    assert pbx.session is not None
    await asyncio.to_thread(collect, result, work, pbx.session.sent)
    return result


async def run_pair(frames: list[bytes], args: argparse.Namespace, times: list[float], work: Path,
                   first_on: bool) -> list[Run]:  # fmt: skip
    """One daemon with the journal, one without, under the same load: at the same time (each
    with its own fake PBX: both see the same machine, whatever else runs on it), or one after
    the other with --serial (who goes first alternates)."""
    modes = [first_on, not first_on]
    if args.serial:
        return [
            await run_daemon(frames, args.rate, times, j, work / f"{'on' if j else 'off'}") for j in modes
        ]
    tasks = (run_daemon(frames, args.rate, times, j, work / f"{'on' if j else 'off'}") for j in modes)
    return list(await asyncio.gather(*tasks))


def report(r: Run) -> None:
    label = "journal on " if r.journal else "journal off"
    print(f"  {label}: {r.events:,} events in {r.send_s:.1f} s ({r.events / r.send_s:,.0f} events/s), "
          f"daemon CPU {r.cpu_s:.2f} s (event loop {r.loop_cpu_s:.2f} s, other threads "
          f"{r.cpu_s - r.loop_cpu_s:.2f} s; {100 * r.cpu_s / r.send_s:.1f} % of one core; idle "
          f"again {r.idle_wait_s:.1f} s after the last event), visits stored {r.stored:,} of "
          f"{r.expected:,} expected, exit status {r.exit_status}")  # fmt: skip
    for note in r.notes:
        print(f"    {note}")


async def main_async(args: argparse.Namespace) -> int:
    per_copy = len(one_copy()[0])
    copies = args.copies or (max(1, math.ceil(args.rate * args.seconds / per_copy)) if args.rate else 10)
    started = time.perf_counter()
    frames, times, per_copy = load(copies)
    times = [t / args.speed for t in times]
    span = times[-1]
    pace = f"{args.rate:,.0f} events/s" if args.rate else f"the traces' own pace x {args.speed:g}"
    print(f"Python {platform.python_version()} on {platform.platform()}, os.cpu_count() = {os.cpu_count()}")
    print(f"load: {copies} concurrent copies x {per_copy:,} event frames = {len(frames):,} frames "
          f"({sum(map(len, frames)) / 1e6:.1f} MB; {span * args.speed:,.0f} s of trace time), "
          f"sent at {pace}; "
          f"built in {time.perf_counter() - started:.1f} s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="acd-amiload-"))
    one = work / "one-copy.ami"  # one copy with its recorded times: the visits each copy should give
    one.write_bytes(
        BANNER + getconfig_reply("acdbridge-getconfig-queues") + b"".join(f for _, f in one_copy()[0])
    )
    per_copy_visits = len(replay_records(one))
    runs: list[Run] = []
    ratios: list[float] = []
    try:
        for k in range(args.runs):
            with lab_lock(not args.no_lock):
                pair = await run_pair(frames, args, times, work / f"pair{k}", first_on=k % 2 == 1)
            for r in pair:
                report(r)
            cpu_off, cpu_on = (r.cpu_s for r in sorted(pair, key=lambda r: r.journal))
            ratios.append(cpu_on / cpu_off if cpu_off else math.inf)
            print(f"  pair {k + 1}: journal adds {100 * (ratios[-1] - 1):+.1f} % daemon CPU")
            runs += pair
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  (kept {work})")
    on = [r.cpu_s for r in runs if r.journal]
    off = [r.cpu_s for r in runs if not r.journal]
    ratio = statistics.median(ratios)
    every = all(r.stored == r.expected for r in runs)
    stored = ", ".join(f"{r.stored:,}/{r.expected:,}" for r in runs)
    print(f"\ndaemon CPU without the journal {', '.join(f'{c:.2f}' for c in off)} s, with "
          f"{', '.join(f'{c:.2f}' for c in on)} s")  # fmt: skip
    print(f"journal adds {100 * (ratio - 1):+.1f} % daemon CPU (median of {len(ratios)} pairs, ratio "
          f"{ratio:.3f}; goal < +10 %: "
          f"{'met' if ratio < 1.10 else 'MISSED'}); every visit stored: {'yes' if every else 'NO'} "
          f"(stored/expected per run: {stored})")  # fmt: skip
    expected = sorted({r.expected for r in runs})
    print(f"visits per copy: {', '.join(f'{e / copies:g}' for e in expected)}; "
          f"one copy at its recorded pace gives {per_copy_visits}")  # fmt: skip
    print(f"Command: `{shlex.join(sys.orig_argv)}`")
    return 0 if every else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=3500.0, help="event frames/s; 0: the traces' own pace")
    ap.add_argument("--seconds", type=float, default=60.0, help="with --rate: load length (sets --copies)")
    ap.add_argument(
        "--copies", type=int, default=0, help="concurrent copies of the traces (overrides --seconds)"
    )
    ap.add_argument("--speed", type=float, default=1.0, help="with --rate 0: the traces' pace times this")
    ap.add_argument("--runs", type=int, default=3, help="pairs of daemon runs (journal off and on)")
    ap.add_argument("--serial", action="store_true", help="a pair's two runs one after the other")
    ap.add_argument("--no-lock", action="store_true", help=f"do not hold {LAB_LOCK} during a pair")
    ap.add_argument("--fsync-ms", type=float, default=50.0, help="journal.fsync_interval_ms (an experiment)")
    ap.add_argument("--checkpoint-s", type=float, default=5.0, help="journal.checkpoint_s (an experiment)")
    ap.add_argument("--quick", action="store_true", help="--seconds 10")
    ap.add_argument(
        "--profile", action="store_true", help="cProfile the daemon (profile.out; implies --keep)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stores, logs, the bytes sent)")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 10.0
    PROFILE["on"] = args.profile
    JOURNAL_EXTRA["toml"] = f"fsync_interval_ms = {args.fsync_ms:g}\ncheckpoint_s = {args.checkpoint_s:g}\n"
    args.keep = args.keep or args.profile
    if args.rate < 0 or args.seconds <= 0 or args.copies < 0 or args.speed <= 0 or not 1 <= args.runs <= 10:
        ap.error("--rate >= 0, --seconds > 0, --copies >= 0, --speed > 0, --runs 1..10")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
