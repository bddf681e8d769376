"""FastAGI round trips: acdbridge's FastAgiServer against a raw asyncio line server doing the same work.

Prints figures; it asserts nothing about timing. Run from the repository root:

    .venv/bin/python benchmarks/agi_bench.py [--clients N] [--sessions S] [--serial M]

Everything runs on loopback in one event loop. N fake-Asterisk clients each run S sessions one after
another: connect, send a full agi_* header block, answer every command line, and stop when the server
closes the socket. Each session is SET VARIABLE x5 + GET VARIABLE. The baseline server reads the header
block and does the same round trips with bare readuntil/write, parsing nothing, so the difference is
the cost of FastAgiServer itself (header parsing, routing, quoting, reply parsing, timeouts, stats,
logging context). Latency is per command, taken in the server from writing the command to having its
reply; with many clients it is mostly queueing in the shared loop, so a one-client pass follows."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` even without the editable install

from acdbridge.adapters.fastagi import AgiSession, FastAgiServer  # noqa: E402

HOST = "127.0.0.1"
RUNS = 3
SETS = 5  # SET VARIABLE per session, then one GET VARIABLE
VALUE = 'queue "sales" / priority 2'
REPLY_SET = b"200 result=1\n"
REPLY_GET = b"200 result=1 (" + VALUE.encode() + b")\n"
HEADERS = (
    b"agi_network: yes\nagi_network_script: hotline/water?x=1\nagi_request: agi://127.0.0.1:4573/hotline/water\n"
    b"agi_channel: PJSIP/alice-00000001\nagi_language: en\nagi_type: PJSIP\nagi_uniqueid: 1700000000.42\n"
    b"agi_version: 22.1.0\nagi_callerid: 100\nagi_calleridname: Alice\nagi_callingpres: 0\n"
    b"agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: 800\nagi_rdnis: unknown\n"
    b"agi_context: ivr\nagi_extension: 800\nagi_priority: 2\nagi_enhanced: 0.0\nagi_accountcode: \n"
    b"agi_threadid: 140234\nagi_arg_1: sales\nagi_arg_2: 2\n\n"
)


@dataclass
class Run:
    label: str
    sessions: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per command

    @property
    def commands(self) -> int:
        return len(self.latencies)

    def mean_us(self) -> float:
        return statistics.fmean(self.latencies) * 1e6

    def p95_us(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[18] * 1e6


async def fake_asterisk(port: int, sessions: int) -> None:
    for _ in range(sessions):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(HEADERS)
        while line := await reader.readline():
            writer.write(REPLY_GET if line.startswith(b"GET") else REPLY_SET)
        writer.close()
        await writer.wait_closed()


async def drive(run: Run, port: int, clients: int) -> None:
    gc.collect()
    started = time.perf_counter()
    await asyncio.gather(*(fake_asterisk(port, run.sessions // clients) for _ in range(clients)))
    run.seconds = time.perf_counter() - started


async def run_fastagi(clients: int, sessions: int) -> Run:
    run = Run("acdbridge FastAgiServer", sessions)

    async def hotline(s: AgiSession) -> None:
        for i in range(SETS):
            started = time.perf_counter()
            await s.set_variable(f"ACD_V{i}", VALUE)
            run.latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        if await s.get_variable("ACD_V0") != VALUE:
            raise AssertionError("GET VARIABLE came back wrong")
        run.latencies.append(time.perf_counter() - started)

    server = FastAgiServer({"hotline": hotline}, HOST, 0, max_sessions=clients + 10)
    await server.start()
    try:
        await drive(run, server.port, clients)
    finally:
        await server.close()
    stats = server.stats
    if (stats.completed, stats.failed, stats.commands) != (sessions, 0, sessions * (SETS + 1)):
        raise SystemExit(f"FastAgiServer did not complete every session cleanly: {stats}")
    return run


async def run_baseline(clients: int, sessions: int) -> Run:
    run = Run("raw asyncio line server (baseline)", sessions)
    lines = [f'SET VARIABLE "ACD_V{i}" "{VALUE}"\n'.encode() for i in range(SETS)] + [
        b'GET VARIABLE "ACD_V0"\n'
    ]

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\n") != b"\n":
            pass
        for line in lines:
            started = time.perf_counter()
            writer.write(line)
            await writer.drain()
            await reader.readuntil(b"\n")
            run.latencies.append(time.perf_counter() - started)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(session, HOST, 0)
    try:
        await drive(run, server.sockets[0].getsockname()[1], clients)
    finally:
        server.close()
        await server.wait_closed()
    return run


def measure(clients: int, sessions: int) -> tuple[Run, Run]:
    """The best run of each server by wall time, alternating so that drift hits both alike."""
    best: dict[str, Run] = {}
    for _ in range(RUNS):
        for bench in (run_baseline, run_fastagi):
            run = asyncio.run(bench(clients, clients * sessions))
            if run.label not in best or run.seconds < best[run.label].seconds:
                best[run.label] = run
    base, agi = best.values()
    return base, agi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50, help="concurrent fake-Asterisk connections")
    ap.add_argument("--sessions", type=int, default=20, help="sessions per client, one after another")
    ap.add_argument("--serial", type=int, default=300, help="sessions for the one-client (unloaded) pass")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"Python {platform.python_version()} on {platform.platform()}, os.cpu_count() = {os.cpu_count()}")
    print(f"each session: {SETS + 1} commands (SET VARIABLE x{SETS} + GET VARIABLE); best of {RUNS} runs\n")

    print("| Clients | Server | Sessions/s | Commands/s | Mean µs/command | p95 µs/command |")
    print("|---:|---|---:|---:|---:|---:|")
    summary = []
    for clients, sessions in ((args.clients, args.sessions), (1, args.serial)):
        base, agi = measure(clients, sessions)
        for run in (base, agi):
            rates = f"{run.sessions / run.seconds:,.0f} | {run.commands / run.seconds:,.0f}"
            print(f"| {clients} | {run.label} | {rates} | {run.mean_us():,.1f} | {run.p95_us():,.1f} |")
        mean, p95 = (agi.mean_us(), base.mean_us()), (agi.p95_us(), base.p95_us())
        summary.append(
            f"{clients} client(s) x {sessions} sessions: mean {mean[0] - mean[1]:+,.1f} µs "
            f"({mean[0] / mean[1]:.2f}x the baseline), p95 {p95[0] - p95[1]:+,.1f} µs "
            f"({p95[0] / p95[1]:.2f}x); wall time {agi.seconds / base.seconds:.2f}x"
        )
    print("\nAdded by FastAgiServer per command:\n- " + "\n- ".join(summary))
    print(f"Command: `{shlex.join(sys.orig_argv)}`")


if __name__ == "__main__":
    main()
