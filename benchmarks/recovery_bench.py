"""The daemon's start after a SIGKILL: a 1 GB store, 1,000 calls in progress, a journal tail.

Prints figures and ratios from one run; asserts nothing about timing. From the repository root:

    nice -n 10 .venv/bin/python benchmarks/recovery_bench.py [--store-gb 1] [--calls 1000] [--tail-s 5]

1. The store (benchmarks/recovery_store.py): the visits and agent states of one copy of the
   recorded lab traces (replayed through the Pipeline: real records), cloned with their own ids
   at 4,000 visits a day back from now, written through SqliteStore.write (the daemon's own
   write path and schema) until the file holds --store-gb. Built once into build/recovery-bench/
   (a minute or two) and copied for each run; a copy is topped up to now, so the KPI windows'
   recent rows are there as live.
2. The crash: the real daemon (`acdbridge run`, a subprocess) on a copy of that store, its journal
   on, against benchmarks/fake_pbx.py's fake PBX (wrap-up set to 120 s, a usual after-call time).
   It is sent copies of tests/fixtures/traces/sip_hold.ami, each with its own ids, each cut at a
   point where its calls wait, talk, hold or are in wrap-up, until --calls are in progress; once
   the daemon has written a checkpoint after them (checkpoint_s = 15 here), --tail-s seconds of
   whole calls at --rate (the journal tail a crash leaves: up to checkpoint_s of traffic), then
   SIGKILL.
3. The measure: the same daemon started again against a fresh fake PBX, timed from the process
   start to READY=1 (sd_notify, a socket of ours), to the first /metrics answered, and to AMI
   logged in with its resync done: "live" is the last of them; --repeats times from the same
   crash (the journal as the SIGKILL left it; the store keeps what a start wrote, as after a
   real second crash). The baseline, in the same run: the same start with an empty store and no
   journal yet.

The lab's lock (/tmp/acdbridge-lab.lock) is held while the daemons run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ami_load import CHANNEL_PREFIX, DAEMON  # noqa: E402
from fake_pbx import BANNER, FakePbx, Session, free_port, getconfig_reply, lab_lock, stream  # noqa: E402
from recovery_store import cached_store, store_copy  # noqa: E402
from replay_bench import EVENT, ID_PREFIX, SEP, read_trace  # noqa: E402

from acdbridge.adapters.journal import SEGMENT_HEADER, Mark, Position  # noqa: E402
from acdbridge.core.pipeline import Pipeline  # noqa: E402
from acdbridge.runtime import checkpoint  # noqa: E402

WRAPUP_S = 120
CALL_TRACE = "sip_hold.ami"  # two calls, each waiting, talking, on hold and in wrap-up in turn
START_TIMEOUT_S = 60.0
CHECKPOINT_S = 15  # the tail is sent just after one: the crash comes before the next
CHECKPOINT_TIMEOUT_S = 2.0 * CHECKPOINT_S


# -- the calls in progress -----------------------------------------------------------------------------
def state_of(p: Pipeline) -> tuple[str, ...]:
    calls = [("hold" if v.holds and len(v.holds[-1]) == 1 else v.state) for v in p.calls.active.values()]
    return tuple(sorted(calls)) + ("wrap-up",) * len(p.calls.wraps.wrapping)


def cuts() -> tuple[list[bytes], list[tuple[int, tuple[str, ...]]]]:
    """The call trace's event frames, and the points where its calls stand in each mix of states
    (waiting, talking, hold, wrap-up): (frames to send, the states then)."""
    frames = [f + SEP for f in read_trace(CALL_TRACE) if f.startswith(EVENT)]
    p = Pipeline()
    p.feed_bytes(BANNER + with_wrapup(getconfig_reply("acdbridge-getconfig-queues")))
    seen: dict[tuple[str, ...], int] = {}
    for i, frame in enumerate(frames, 1):
        p.feed_bytes(frame)
        if (st := state_of(p)) and "leaving" not in st:
            seen.setdefault(st, i)
    return frames, sorted((i, st) for st, i in seen.items())


def with_wrapup(reply: bytes) -> bytes:
    return re.sub(rb"wrapuptime=\d+", b"wrapuptime=%d" % WRAPUP_S, reply)


def per_copy(frame: bytes, prefix: bytes) -> bytes:
    return CHANNEL_PREFIX.sub(prefix, ID_PREFIX.sub(prefix, frame))


def in_progress(n: int) -> tuple[list[bytes], dict[str, int]]:
    """Frames that leave n calls in progress, and the mix of their states."""
    frames, points = cuts()
    out: list[bytes] = []
    mix: dict[str, int] = {}
    k = 0
    points = [(cut, states) for cut, states in points if set(states) != {"waiting"}]  # a busy centre
    while sum(mix.values()) < n:
        cut, states = points[k % len(points)]
        out += (per_copy(f, b"r%d-" % k) for f in frames[:cut])
        for s in states:
            mix[s] = mix.get(s, 0) + 1
        k += 1
    return out, mix


def whole_calls(events: int) -> list[bytes]:
    frames = cuts()[0]
    return [per_copy(f, b"t%d-" % k) for k in range(max(1, events // len(frames))) for f in frames]


# -- the daemon ------------------------------------------------------------------------------------------
class Pbx(FakePbx):
    """ami_load's fake PBX, with an after-call work time of WRAPUP_S in every queue."""

    def _answer(self, s: Session, frame: bytes) -> None:
        if b"getconfig" in frame.lower():
            aid = m[1].decode() if (m := re.search(rb"ActionID: *([^\r]*)", frame, re.I)) else ""
            s.write(with_wrapup(getconfig_reply(aid)))
            return
        super()._answer(s, frame)


@dataclass
class Start:
    label: str
    ready_s: float = -1.0
    metrics_s: float = -1.0
    resynced_s: float = -1.0
    recovered: dict[str, Any] = field(default_factory=dict)

    @property
    def live_s(self) -> float:
        return max(self.ready_s, self.metrics_s, self.resynced_s)


@dataclass
class Daemon:
    work: Path
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[str] | None = None

    def config(self, ami_port: int) -> Path:
        path = self.work / "acdbridge.toml"
        path.write_text(
            f'[ami]\nhost = "127.0.0.1"\nport = {ami_port}\nusername = "acdbridge"\nsecret = "x"\n'
            f"ping_interval_s = 2\naction_timeout_s = 5\nreconnect_min_s = 0.2\nreconnect_max_s = 2\n"
            f'[store]\npath = "{self.work / "store.sqlite"}"\n'
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n'
            f'[journal]\ndir = "{self.work / "journal"}"\ncheckpoint_s = {CHECKPOINT_S}\n'
        )
        return path

    def start(self, ami_port: int, notify: str) -> None:
        config = self.config(ami_port)
        self.log = (self.work / "daemon.log").open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": notify}
        self.proc = subprocess.Popen([str(DAEMON), "run", "--config", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.log is not None:
            self.log.close()

    def last_line(self, event: str) -> dict[str, Any]:
        lines = [x for x in (self.work / "daemon.log").read_text(errors="replace").splitlines() if event in x]
        return json.loads(lines[-1]) if lines else {}


async def metrics_ok(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 5.0)
        await asyncio.wait_for(reader.read(), 5.0)
        return status.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def timed_start(d: Daemon, label: str) -> tuple[Start, Pbx]:
    """Start the daemon and time it until READY=1, /metrics and the AMI resync."""
    result = Start(label)
    pbx = Pbx()
    await pbx.start()
    notify = d.work / "notify.sock"
    notify.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    t0 = time.perf_counter()
    d.start(pbx.port, str(notify))
    deadline = t0 + START_TIMEOUT_S
    try:
        while min(result.ready_s, result.metrics_s, result.resynced_s) < 0 and time.perf_counter() < deadline:
            with contextlib.suppress(BlockingIOError):
                while True:  # until no datagram is left
                    if b"READY=1" in sock.recv(4096).split(b"\n") and result.ready_s < 0:
                        result.ready_s = time.perf_counter() - t0
            if result.metrics_s < 0 and await metrics_ok(d.http_port):
                result.metrics_s = time.perf_counter() - t0
            if result.resynced_s < 0 and pbx.session is not None and pbx.session.resynced.is_set():
                result.resynced_s = time.perf_counter() - t0
            await asyncio.sleep(0.005)
    finally:
        sock.close()
    if min(result.ready_s, result.metrics_s, result.resynced_s) < 0:
        raise RuntimeError(
            f"{label}: the daemon was not live in {START_TIMEOUT_S:g} s ({d.work / 'daemon.log'})"
        )
    await asyncio.sleep(0.3)  # its start-up log lines are out
    result.recovered = d.last_line('"recovered"')
    if (cp := newer(d.work / "journal" / checkpoint.NAME, 0.0)) is not None:  # the start's own
        result.recovered["mix"] = mix_of(cp)
    return result, pbx


def newer(path: Path, after: float) -> checkpoint.Checkpoint | None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mtime > after:
            return checkpoint.load(path)
    return None


async def wait_checkpoint(path: Path, after: float) -> checkpoint.Checkpoint:
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
    while time.monotonic() < deadline:
        if (cp := newer(path, after)) is not None:
            return cp
        await asyncio.sleep(0.1)
    raise RuntimeError("no checkpoint after the calls were sent")


def empty_checkpoint(journal: Path) -> None:
    """The checkpoint of a daemon that has run with its journal before: the first start reads
    the store's recent rows only, not every visit (that start is not the one measured)."""
    journal.mkdir(mode=0o700)
    at = Position(1, len(SEGMENT_HEADER))
    checkpoint.save(journal / checkpoint.NAME, checkpoint.take(Pipeline(), Mark(at, at, 0), 0.0))


def mix_of(cp: checkpoint.Checkpoint) -> dict[str, int]:
    calls = cp.state["calls"]
    mix: dict[str, int] = {}
    for v in calls["active"]:
        s = "hold" if v["holds"] and len(v["holds"][-1]) == 1 else v["state"]
        mix[s] = mix.get(s, 0) + 1
    mix["wrap-up"] = len(calls["wrapping"])
    return mix


async def crash_and_recover(args: argparse.Namespace, work: Path) -> list[Start]:
    d = Daemon(work)
    info = store_copy(args.store_gb, work / "store.sqlite")
    print(f"store: {info['bytes'] / 1e9:.2f} GB, {info['visits']:,} visits and {info['agent_states']:,} "
          f"agent states over {info['days']:.0f} days (built once in {info['built_s']:g} s)")  # fmt: skip
    empty_checkpoint(work / "journal")
    calls, mix = in_progress(args.calls)
    tail = whole_calls(int(args.tail_s * args.rate))
    _, pbx = await timed_start(d, "first start")
    try:
        assert pbx.session is not None
        await stream(pbx.session, calls, args.rate, [])
        sent = time.time()
        cp = await wait_checkpoint(work / "journal" / checkpoint.NAME, sent + 0.5)
        await stream(pbx.session, tail, args.rate, [])
        await asyncio.sleep(0.2)  # read and journaled (in the OS: what a SIGKILL leaves)
    finally:
        d.kill()
        await pbx.close()
    print(f"sent {len(calls):,} frames leaving {sum(mix.values()):,} calls in progress {mix}; the "
          f"checkpoint holds {mix_of(cp)}; then a tail of {len(tail):,} frames ({args.tail_s:g} s at "
          f"{args.rate:,.0f}/s); SIGKILL")  # fmt: skip
    crashed = work / "journal.crashed"  # each start recovers from the same crash
    shutil.copytree(work / "journal", crashed)
    starts = []
    for k in range(args.repeats):
        shutil.rmtree(work / "journal")
        shutil.copytree(crashed, work / "journal")
        start, pbx = await timed_start(d, f"after the SIGKILL (start {k + 1})")
        starts.append(start)
        d.kill()
        await pbx.close()
    return starts


async def baseline(work: Path) -> Start:
    d = Daemon(work)
    try:
        start, pbx = await timed_start(d, "empty store, no journal yet")
    finally:
        d.kill()
    await pbx.close()
    return start


def report(s: Start, base: Start | None) -> None:
    r = s.recovered
    what = (f"; recovered {r.get('mix')}, replayed {r.get('messages'):,} messages in "
            f"{r.get('seconds')} s" if "calls" in r else "")  # fmt: skip
    ratio = f" ({s.live_s / base.live_s:.2f} x the baseline)" if base is not None else ""
    print(f"  {s.label}: live in {s.live_s:.2f} s{ratio} (READY=1 {s.ready_s:.2f} s, /metrics "
          f"{s.metrics_s:.2f} s, AMI logged in and resynced {s.resynced_s:.2f} s){what}")  # fmt: skip


async def main_async(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="acd-recovery-", dir="/var/tmp"))
    try:
        cached_store(args.store_gb)  # built (once) before the lab's lock is taken
        with lab_lock(not args.no_lock):
            (root / "base").mkdir()
            base = await baseline(root / "base")
            (root / "crash").mkdir()
            starts = await crash_and_recover(args, root / "crash")
    finally:
        if args.keep:
            print(f"  (kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(base, None)
    for s in starts:
        report(s, base)
    worst = max(s.live_s for s in starts)
    median = statistics.median(s.live_s for s in starts)
    print(
        f"recovery: live {median:.2f} s after a SIGKILL (median of {len(starts)}; slowest {worst:.2f} s; "
        f"{median / base.live_s:.1f} x the empty start; goal < 5 s: {'met' if worst < 5 else 'MISSED'})"
    )
    print(f"Command: `{shlex.join(sys.orig_argv)}`")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store-gb", type=float, default=1.0, help="size of the SQLite store")
    ap.add_argument("--calls", type=int, default=1000, help="calls in progress at the crash")
    ap.add_argument("--tail-s", type=float, default=5.0, help="seconds of traffic after the checkpoint")
    ap.add_argument("--rate", type=float, default=3500.0, help="events/s sent")
    ap.add_argument("--repeats", type=int, default=3, help="starts from the same crash")
    ap.add_argument("--no-lock", action="store_true", help="do not hold the lab's lock")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stores, logs)")
    args = ap.parse_args()
    if not (args.store_gb > 0 and args.calls > 0 and 0 <= args.tail_s < CHECKPOINT_S and args.rate > 0
            and 1 <= args.repeats <= 10):  # fmt: skip
        ap.error(f"--store-gb > 0, --calls > 0, 0 <= --tail-s < {CHECKPOINT_S}, --rate > 0, --repeats 1..10")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
