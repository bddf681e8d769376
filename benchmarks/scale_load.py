"""The scale goals of issue 13, measured: the real daemon at ~1,000 calls in progress, 50 queues,
hundreds of agents, under the outage-surge rate of 3,500 AMI events/s, beside the same run of the
baseline code path: the same tree with every KPI window computed by a full scan of the held
records (the code before incremental windows; benchmarks/daemon_probe.py --scan).

    nice -n 10 .venv/bin/python benchmarks/scale_load.py [--calls 1000] [--rate 3500] [--quick]
        [--only scan|now] [--baseline TREE]   # TREE: also run another checkout (a git worktree)
        [--history-visits 20000]   # each daemon resumes a day of that many visits from its store

The load is ami_load.py's (the recorded lab traces as N copies with per-copy ids, Timestamp = send
time, sent by benchmarks/fake_pbx.py at a fixed rate), with two changes: the copies start 0.05 s
of trace time apart (not spread over the whole period), so their calls overlap and the peak of
calls in progress (QueueCallerJoin minus the caller's Hangup, counted in the stream sent) reaches
--calls (the copies needed set the load's length: ~75 s for 1,000 calls at 3,500/s); and each
copy's queues are renamed `<queue>-<k % 17>` (water, broadband, complaints: 51 queue names, each
in the GetConfig reply the fake PBX gives). Every 0.5 s the fake PBX also sends a probe: a
QueueCallerJoin into `probe-<n % 4>` (abandoned 0.4 s later). An SSE client on /events and an
MQTT subscriber (its own mosquitto on loopback) note when that queue's calls_waiting goes from 0
to 1 or more: latency = seen - sent, on this process's monotonic clock.

Figures per daemon (one after the other, each holding /tmp/acdbridge-lab.lock):
  - loop lateness: every daemon runs under benchmarks/daemon_probe.py, a task on its event loop
    that sleeps 5 ms over and over and notes how late each wake-up is; p99, max and the wake-ups
    more than 50 ms late (stalls) among those during the load;
  - loop lag: the daemon's acd_event_loop_lag_seconds histogram, its increase over the load
    (p99 as the bucket bound; observations above 0.05 s);
  - /metrics scrape: wall time and bytes of a GET every 3 s during the load;
  - memory per call: VmRSS when the stream passes its peak of calls in progress, minus VmRSS
    before the load, divided by the calls in progress at that peak;
  - CPU: utime + stime (every thread) from the first frame sent to the last, over that wall time;
  - visits: the SQLite store after the stop against acdbridge.replay.replay_records (today's
    code) of the very bytes sent."""

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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiomqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fake_pbx  # noqa: E402
import recovery_store  # noqa: E402
from ami_load import CHANNEL_PREFIX, WRAP_MARGIN_S, Run, collect, cpu_seconds, one_copy  # noqa: E402
from fake_pbx import FakePbx, daemon_toml, free_port, lab_lock, longest_wrapup, stream  # noqa: E402
from replay_bench import ID_PREFIX  # noqa: E402

from acdbridge.adapters.store import SqliteStore  # noqa: E402

PYTHON = ROOT / ".venv" / "bin" / "python"
GROUPS = 17  # x 3 queues of the traces = 51 queue names
QUEUE_HEADER = re.compile(rb"(?<=\r\nQueue: )(water|broadband|complaints)(?=\r\n)")
QUEUE_DEVICE = re.compile(rb"(?<=Queue:)(water|broadband|complaints)(?=_)")
UID = re.compile(rb"\r\nUniqueid: ([^\r]*)")
AGENT = re.compile(rb"\r\nInterface: ([^\r]*)")
STAGGER_S = 0.05  # trace seconds between one copy and the next: their calls overlap
PROBE_EVERY_S = 0.5
PROBE_END_S = 0.4
PROBE_QUEUES = 4  # probe-0..3 in turn: a probe queue is reused every 2 s (fresh ones would add queues)
SCRAPE_EVERY_S = 3.0
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 60.0
LAG_BOUND_S = 0.05


# -- the load --------------------------------------------------------------------------------------
def build(copies: int) -> list[bytes]:
    base, _ = one_copy()

    def copy(k: int) -> list[tuple[float, int, bytes]]:
        prefix, group = b"c%d-" % k, b"-%d" % (k % GROUPS)
        out = []
        for t, frame in base:
            frame = CHANNEL_PREFIX.sub(prefix, ID_PREFIX.sub(prefix, frame))
            frame = QUEUE_DEVICE.sub(lambda m: m[1] + group, QUEUE_HEADER.sub(lambda m: m[1] + group, frame))
            out.append((t + k * STAGGER_S, k, frame))
        return out

    return [f for _, _, f in heapq.merge(*(copy(k) for k in range(copies)))]


def in_progress(frames: list[bytes]) -> tuple[int, int]:
    """(peak of calls in progress, the frame index of that peak): joins minus the caller's Hangup."""
    live: set[bytes] = set()
    peak, at = 0, 0
    for i, f in enumerate(frames):
        if f.startswith(b"Event: QueueCallerJoin\r"):
            live.add(m[1] if (m := UID.search(f)) else b"")
        elif f.startswith(b"Event: Hangup\r") and (m := UID.search(f)):
            live.discard(m[1])
        if len(live) > peak:
            peak, at = len(live), i
    return peak, at


def queues_conf(path: Path) -> None:
    """asterisk_conf/queues.conf with every hotline queue also as <queue>-<g>, g < GROUPS."""
    text = fake_pbx.QUEUES_CONF.read_text(encoding="utf-8")
    blocks = re.split(r"(?m)^(?=\[)", text)
    extra = []
    for block in blocks:
        if m := re.match(r"\[(water|broadband|complaints)\](\([^)]*\))?", block):
            extra += [block.replace(f"[{m[1]}]", f"[{m[1]}-{g}]", 1) for g in range(GROUPS)]
    path.write_text(text + "\n" + "".join(extra), encoding="utf-8")


def probe_frames(n: int) -> tuple[bytes, bytes]:
    uid = f"p{n}-1795395517.{n}"
    head = (f"Privilege: agent,all\r\nTimestamp: 0.0\r\nSystemName: acdlab\r\n"
            f"Channel: Local/5559{n:05d}@lab-callers-probe{n};1\r\n"
            f"ChannelState: 6\r\nChannelStateDesc: Up\r\n"
            f"CallerIDNum: 5559{n:05d}\r\nCallerIDName: probe\r\nConnectedLineNum: 5559{n:05d}\r\n"
            f"ConnectedLineName: probe\r\nLanguage: en\r\nAccountCode: \r\nContext: queue-entry\r\n"
            f"Exten: probe\r\nPriority: 3\r\nUniqueid: {uid}\r\nLinkedid: {uid}\r\n"
            f"Queue: probe-{n % PROBE_QUEUES}\r\n")  # fmt: skip
    join = f"Event: QueueCallerJoin\r\n{head}Position: 1\r\nCount: 1\r\n\r\n"
    end = (f"Event: QueueCallerAbandon\r\n{head}Position: 1\r\nOriginalPosition: 1\r\nHoldTime: 0\r\n\r\n"
           f"Event: QueueCallerLeave\r\n{head}Position: 1\r\nCount: 0\r\n\r\n"
           f"Event: Hangup\r\n{head.replace(f'Queue: probe-{n % PROBE_QUEUES}' + chr(13) + chr(10), '')}"
           f"Cause: 16\r\nCause-txt: Normal Clearing\r\n\r\n")  # fmt: skip
    return join.encode(), end.encode()


def stamp(frame: bytes) -> bytes:
    return fake_pbx.TIMESTAMP.sub(b"%.6f" % time.time(), frame)


# -- one daemon -------------------------------------------------------------------------------------
@dataclass
class Result:
    label: str
    run: Run = field(default_factory=lambda: Run(journal=True))
    sse_ms: list[float] = field(default_factory=list)
    mqtt_ms: list[float] = field(default_factory=list)
    probes: int = 0
    lag_buckets: list[tuple[float, float]] = field(default_factory=list)  # (le, count over the load)
    lag_sum: float = 0.0
    scrapes: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes)
    rss0_kb: int = 0
    rss_peak_kb: int = 0
    rss_max_kb: int = 0
    cpu_pct: float = 0.0
    late_ms: list[float] = field(default_factory=list)  # the 5 ms ticker's lateness during the load


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def http_get(port: int, path: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read(-1)
    writer.close()
    return time.perf_counter() - started, data.split(b"\r\n\r\n", 1)[-1]


def lag_histogram(text: bytes) -> tuple[dict[float, float], float]:
    buckets: dict[float, float] = {}
    total = 0.0
    for line in text.decode(errors="replace").splitlines():
        if m := re.match(r'acd_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line):
            buckets[float(m[1])] = float(m[2])
        elif line.startswith("acd_event_loop_lag_seconds_sum "):
            total = float(line.split()[1])
    return buckets, total


class ProbeSeen:
    """When each probe showed: its queue's calls_waiting went from 0 to 1 or more (a probe queue is
    reused every PROBE_QUEUES x PROBE_EVERY_S, so the last probe sent into it is the one)."""

    def __init__(self, sent: dict[int, float]) -> None:
        self.sent = sent
        self.seen: dict[int, float] = {}
        self.waiting: dict[int, int] = {}

    def note(self, k: int, waiting: int, now: float) -> None:
        if waiting and not self.waiting.get(k):
            mine = [n for n in self.sent if n % PROBE_QUEUES == k]
            if mine:
                self.seen.setdefault(max(mine), now)
        self.waiting[k] = waiting


async def watch_sse(port: int, probes: ProbeSeen) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        while line := await reader.readline():
            if line.startswith(b"data: "):
                now = time.monotonic()
                queues = json.loads(line[6:])["queues"]
                for k in range(PROBE_QUEUES):
                    probes.note(k, int(queues.get(f"probe-{k}", {}).get("calls_waiting", 0)), now)
    finally:
        writer.close()


async def watch_mqtt(port: int, prefix: str, probes: ProbeSeen) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"scale-bench-{prefix}") as client:
        await client.subscribe(f"{prefix}/queue/+")
        async for message in client.messages:
            name = str(message.topic).split("/")[2]
            if name.startswith("probe-") and isinstance(message.payload, bytes | bytearray):
                now = time.monotonic()
                probes.note(int(name[6:]), int(json.loads(message.payload).get("calls_waiting", 0)), now)


def history_store(path: Path, visits: int) -> int:
    """A store holding `visits` finished visits (and their agent states) over the last 24 h,
    cloned from the recorded traces (recovery_store.py): what the daemon resumes its KPI windows
    from at start, so they hold a busy day as a live daemon's would. How many visits."""
    recovery_store.VISITS_PER_DAY = visits
    store = SqliteStore(path)
    now = time.time()
    recovery_store.write_history(store, now - 86_400, now - 60, 0)
    count = store.count("visits")
    store.close()
    return count


def start_daemon(work: Path, ami_port: int, http_port: int, broker: int, tree: Path, scan: bool,
                 history: Path | None) -> tuple[subprocess.Popen[bytes], IO[str]]:  # fmt: skip
    work.mkdir(parents=True)
    if history is not None:
        shutil.copyfile(history, work / "store.sqlite")
    config = work / "acdbridge.toml"
    config.write_text(
        daemon_toml(work, ami_port, http_port) + f'[journal]\nenabled = true\ndir = "{work / "journal"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker}\nclient_id = "acdbridge-{work.name}"\n'
        f'topic_prefix = "acd-{work.name}"\n'
    )
    log = (work / "daemon.log").open("w")
    proc = subprocess.Popen(
        [str(PYTHON), str(ROOT / "benchmarks" / "daemon_probe.py"), "--ticks", str(work / "ticks.json"),
         *(["--scan"] if scan else []), "run", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
        cwd=tree, env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(tree)},
    )  # fmt: skip
    return proc, log


async def run_one(label: str, tree: Path, scan: bool, frames: list[bytes], peak_at: int, rate: float,
                  work: Path, broker: int, history: Path | None) -> Result:  # fmt: skip
    res = Result(label)
    pbx = FakePbx()
    await pbx.start()
    http_port = free_port()
    proc, log = await asyncio.to_thread(start_daemon, work, pbx.port, http_port, broker, tree, scan, history)
    sent: dict[int, float] = {}
    sse, mqtt = ProbeSeen(sent), ProbeSeen(sent)
    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            session = await asyncio.wait_for(pbx.resynced(), 2 * START_TIMEOUT_S)
        except TimeoutError:
            log.flush()
            raise RuntimeError(f"the daemon did not log in and resync (log: {work / 'daemon.log'})") from None
        tasks += [
            asyncio.create_task(watch_sse(http_port, sse)),
            asyncio.create_task(watch_mqtt(broker, f"acd-{work.name}", mqtt)),
        ]
        await asyncio.sleep(2.0)  # start-up settles; the watchers connect
        lag0, _ = lag_histogram((await http_get(http_port, "/metrics"))[1])
        res.rss0_kb = rss_kb(proc.pid)
        done = asyncio.Event()

        def finish(end: bytes) -> None:
            session.write(stamp(end))

        async def probes() -> None:
            n = 0
            while not done.is_set():
                join, end = probe_frames(n)
                session.write(stamp(join))
                sent[n] = time.monotonic()
                asyncio.get_running_loop().call_later(PROBE_END_S, finish, end)
                n += 1
                await asyncio.sleep(PROBE_EVERY_S)

        async def sample() -> None:
            started = time.monotonic()
            peak_s = peak_at / rate
            next_scrape = started + SCRAPE_EVERY_S
            while not done.is_set():
                now = time.monotonic()
                rss = rss_kb(proc.pid)
                res.rss_max_kb = max(res.rss_max_kb, rss)
                if not res.rss_peak_kb and now - started >= peak_s:
                    res.rss_peak_kb = rss
                if now >= next_scrape:
                    seconds, body = await http_get(http_port, "/metrics")
                    res.scrapes.append((seconds, len(body)))
                    next_scrape = now + SCRAPE_EVERY_S
                await asyncio.sleep(0.1)

        cpu0 = cpu_seconds(proc.pid)
        side = [asyncio.create_task(probes()), asyncio.create_task(sample())]
        load_from = time.monotonic()
        res.run.send_s = await stream(session, frames, rate, [])
        res.run.cpu_s = cpu_seconds(proc.pid) - cpu0
        load_to = time.monotonic()
        res.run.events = len(frames)
        done.set()
        await asyncio.gather(*side)
        res.cpu_pct = 100 * res.run.cpu_s / res.run.send_s
        lag1, res.lag_sum = lag_histogram((await http_get(http_port, "/metrics"))[1])
        res.lag_buckets = [(le, lag1[le] - lag0.get(le, 0.0)) for le in sorted(lag1)]
        await asyncio.sleep(2.0)  # the last probes show
        res.probes = len(sent)
        res.sse_ms = [(sse.seen[n] - t) * 1000 for n, t in sent.items() if n in sse.seen]
        res.mqtt_ms = [(mqtt.seen[n] - t) * 1000 for n, t in sent.items() if n in mqtt.seen]
        await asyncio.sleep(longest_wrapup() + WRAP_MARGIN_S)  # wrap-ups end on the daemon's clock
        proc.send_signal(signal.SIGTERM)
        res.run.exit_status = await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        log.close()
        await pbx.close()
    assert pbx.session is not None
    ticks = json.loads((work / "ticks.json").read_text())
    res.late_ms = [
        late * 1000 for t, late in zip(ticks["t"], ticks["late"], strict=True) if load_from <= t <= load_to
    ]
    await asyncio.to_thread(collect, res.run, work, pbx.session.sent)
    if history is not None:  # the store also holds the history it started from
        res.run.stored -= history_count(history)
    return res


def history_count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM visits").fetchone()[0])


# -- the table --------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def lag_p99(buckets: list[tuple[float, float]]) -> tuple[str, int, int]:
    """(p99 as the smallest bucket bound holding 99 % of the observations, count above 50 ms, total)."""
    total = buckets[-1][1] if buckets else 0
    above = total - next((c for le, c in buckets if le >= LAG_BOUND_S), total)
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return (f"<= {le * 1000:g} ms" if le != math.inf else "> last bound"), int(above), int(total)
    return "n/a", int(above), int(total)


def rows(r: Result, calls: int) -> dict[str, str]:
    p99, above, total = lag_p99(r.lag_buckets)
    scrape_ms = [s * 1000 for s, _ in r.scrapes]
    per_call = (r.rss_peak_kb - r.rss0_kb) / calls if calls else math.nan
    late = r.late_ms
    return {
        "loop lateness p99 (5 ms ticker)": f"{pct(late, 99):.1f} ms (p50 {pct(late, 50):.1f}; "
        f"n={len(late):,})",
        "longest stall (5 ms ticker)": f"{max(late, default=math.nan):.0f} ms",
        "stalls > 50 ms (5 ms ticker)": f"{sum(1 for x in late if x > LAG_BOUND_S * 1000)}",
        "event-loop lag p99": f"{p99} (n={total})",
        "loop stalls > 50 ms": f"{above}",
        "event -> SSE p99": f"{pct(r.sse_ms, 99):.0f} ms (p50 {pct(r.sse_ms, 50):.0f}, max "
        f"{max(r.sse_ms, default=math.nan):.0f}; {len(r.sse_ms)}/{r.probes} probes seen)",
        "event -> MQTT p99": f"{pct(r.mqtt_ms, 99):.0f} ms (p50 {pct(r.mqtt_ms, 50):.0f}, max "
        f"{max(r.mqtt_ms, default=math.nan):.0f}; {len(r.mqtt_ms)}/{r.probes} probes seen)",
        "/metrics scrape time": f"max {max(scrape_ms, default=math.nan):.0f} ms (median "
        f"{pct(scrape_ms, 50):.0f}; n={len(scrape_ms)})",
        "/metrics scrape size": f"max {max((b for _, b in r.scrapes), default=0) / 1e6:.2f} MB",
        "memory per call in progress": f"{per_call:.1f} KB (RSS {r.rss0_kb / 1024:.0f} -> "
        f"{r.rss_peak_kb / 1024:.0f} MB at the peak; max {r.rss_max_kb / 1024:.0f} MB)",
        "daemon CPU at the surge": f"{r.cpu_pct:.0f} % ({r.run.cpu_s:.1f} s in {r.run.send_s:.1f} s; "
        f"{r.run.events / r.run.send_s:,.0f} events/s)",
        "every visit stored": f"{'yes' if r.run.stored == r.run.expected else 'NO'} "
        f"({r.run.stored:,}/{r.run.expected:,})",
    }


GOALS = {
    "loop lateness p99 (5 ms ticker)": "<= 10 ms",
    "longest stall (5 ms ticker)": "<= 50 ms",
    "stalls > 50 ms (5 ms ticker)": "0",
    "event-loop lag p99": "<= 10 ms",
    "loop stalls > 50 ms": "0",
    "event -> SSE p99": "<= 250 ms",
    "event -> MQTT p99": "<= 250 ms",
    "/metrics scrape time": "<= 200 ms",
    "/metrics scrape size": "<= 1 MB",
    "memory per call in progress": "<= 10 KB",
    "daemon CPU at the surge": "<= 25 % of a core",
    "every visit stored": "all",
}


async def main_async(args: argparse.Namespace) -> int:
    base = len(one_copy()[0])
    started = time.perf_counter()
    copies = 1
    frames = build(copies)
    peak, peak_at = in_progress(frames)
    per_copy_peak = max(1, peak)
    copies = max(1, math.ceil(args.calls / per_copy_peak * 1.25))  # staggered copies overlap less
    while True:
        frames = build(copies)
        peak, peak_at = in_progress(frames)
        if peak >= args.calls or copies > 2000:
            break
        copies = math.ceil(copies * args.calls / max(1, peak)) + 1
    agents = {m[1] for f in frames for m in AGENT.finditer(f)}
    names = {m[1] for f in frames if (m := re.search(rb"\r\nQueue: ([^\r]*)", f))}
    print(f"Python {platform.python_version()} on {platform.platform()}, os.cpu_count() = {os.cpu_count()}")
    print(f"load: {copies} copies x {base:,} frames = {len(frames):,} frames "
          f"({sum(map(len, frames)) / 1e6:.1f} MB), {len(names)} queue names, {len(agents)} agents "
          f"(interfaces), peak "
          f"{peak:,} calls in progress at frame {peak_at:,} ({peak_at / args.rate:.1f} s in); sent at "
          f"{args.rate:,.0f} events/s (~{len(frames) / args.rate:.0f} s) plus a probe every "
          f"{PROBE_EVERY_S:g} s; built in {time.perf_counter() - started:.1f} s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="acd-scale-"))
    conf = work / "queues.conf"
    queues_conf(conf)
    fake_pbx.QUEUES_CONF = conf
    broker_port = free_port()
    (work / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n")
    broker = await asyncio.create_subprocess_exec(
        "/usr/sbin/mosquitto", "-c", str(work / "mosquitto.conf"), stderr=asyncio.subprocess.DEVNULL
    )
    history = None
    if args.history_visits:
        history = work / "history.sqlite"
        held = await asyncio.to_thread(history_store, history, args.history_visits)
        print(f"history: every daemon starts from a store of {held:,} visits over the last 24 h")
    results: list[Result] = []
    trees = [("scan", ROOT, True), ("now", ROOT, False)]
    if args.only:
        trees = [t for t in trees if t[0] == args.only]
    if args.baseline:
        trees.insert(0, ("baseline", Path(args.baseline), False))
    try:
        await asyncio.sleep(0.5)
        for label, tree, scan in trees:
            with lab_lock(True):
                print(
                    f"  running {label} ({tree}{', full-scan KPI windows' if scan else ''}) ...", flush=True
                )
                r = await run_one(
                    label, tree, scan, frames, peak_at, args.rate, work / label, broker_port, history
                )
            results.append(r)
            for note in r.run.notes:
                print(f"    {label}: {note}")
            print(f"    {label}: lag buckets over the load {[(le, int(c)) for le, c in r.lag_buckets]}")
    finally:
        broker.terminate()
        await broker.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"  (kept {work})")
    table = {r.label: rows(r, peak) for r in results}
    labels = [r.label for r in results]
    print(f"\n| figure | goal | {' | '.join(labels)} |\n|---|---|{'---|' * len(labels)}")
    for name, goal in GOALS.items():
        print(f"| {name} | {goal} | {' | '.join(table[label][name] for label in labels)} |")
    print(f"\nCommand: `{shlex.join(sys.orig_argv)}`")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000, help="calls in progress at the peak")
    ap.add_argument("--rate", type=float, default=3500.0, help="event frames/s")
    ap.add_argument("--baseline", help="also run this checkout (e.g. a git worktree of an older commit)")
    ap.add_argument("--only", choices=("scan", "now"), help="run one code path only")
    ap.add_argument("--quick", action="store_true", help="--calls 300")
    ap.add_argument("--history-visits", type=int, default=0,
                    help="start each daemon from a store of this many visits in the last 24 h")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stores, logs, the bytes sent)")
    args = ap.parse_args()
    if args.quick:
        args.calls = 300
    if args.rate <= 0 or args.calls <= 0:
        ap.error("--rate > 0, --calls > 0")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
